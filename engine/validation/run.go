package validation

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Options configure Run.
type Options struct {
	// Now is the clock that decides which relationships have expired
	// (nil: time.Now).
	Now func() time.Time
	// NoCrossChecks skips comparing Check, Expand, LookupResources and
	// LookupSubjects with each other; only the file's expectations are
	// checked.
	NoCrossChecks bool
	// NewStore opens the empty store to load the file into; Run closes it.
	// nil means a fresh in-memory store.
	NewStore func() (engine.Store, error)
	// CacheBytes sizes the engine's result cache; 0 runs without one, so
	// that every answer is computed afresh.
	CacheBytes int64
	// Contextual, when set, picks relationships of the file (i counts
	// them in file order) that are not written to the store but passed
	// as contextual relationships to every read instead: the file's
	// expectations must hold all the same. The writes section is not run
	// then: a write judges invariants on stored relationships only.
	Contextual func(i int, r tuple.Relationship) bool
	// NoNestedIndex runs the engine without the nested-group index
	// (engine.Options.NoNestedIndex): every answer is walked.
	NoNestedIndex bool
}

// Result is the outcome of running one file.
type Result struct {
	Path string
	// Assertions, Validations and Writes count what was run.
	Assertions  int
	Validations int
	Writes      int
	Failures    []Failure
}

// OK reports whether everything passed.
func (r *Result) OK() bool { return len(r.Failures) == 0 }

// Failure is one unmet expectation or one entry that could not be loaded.
type Failure struct {
	Pos Pos
	Msg string
	// Explain is the path that led to a wrong answer, from Expand, one
	// step per line; empty when there is nothing to show.
	Explain string
}

// String renders the failure and its explanation, indented.
func (f Failure) String() string {
	s := f.Pos.String() + ": " + f.Msg
	if f.Explain != "" {
		s += "\n" + indent(f.Explain, "    ")
	}
	return s
}

// Run loads f into a fresh engine over an in-memory store and checks every
// assertion and expected-subject list. Problems with the file's content
// (a schema that does not compile, a relationship the schema refuses) are
// failures too; the error result is for everything else.
func Run(ctx context.Context, f *File, opts Options) (*Result, error) {
	res := &Result{Path: f.Path}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	newStore := opts.NewStore
	if newStore == nil {
		newStore = func() (engine.Store, error) {
			return engine.OpenStore(ctx, engine.StoreOptions{Kind: engine.StoreMemory, Now: now})
		}
	}
	st, err := newStore()
	if err != nil {
		return nil, fmt.Errorf("validation: open store: %w", err)
	}
	defer st.Close()
	cacheBytes := opts.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = -1 // engine.Options: negative disables
	}
	eng, err := engine.Open(ctx, st, engine.Options{Now: now, CacheBytes: cacheBytes, NoNestedIndex: opts.NoNestedIndex})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	r := &runner{f: f, eng: eng, res: res, cross: !opts.NoCrossChecks, pick: opts.Contextual}
	if !r.loadSchema(ctx) {
		return res, nil
	}
	if err := r.loadRelationships(ctx); err != nil {
		return nil, err
	}
	for _, a := range f.Assertions {
		if err := r.assert(ctx, a); err != nil {
			return nil, err
		}
	}
	for _, exp := range f.Expected {
		if err := r.validate(ctx, exp); err != nil {
			return nil, err
		}
	}
	// Writes come last: those that commit change what the checks above
	// would see. With contextual relationships they are not run: writes
	// (and the invariants they are judged by) see only what is stored.
	for _, w := range f.Writes {
		if opts.Contextual != nil {
			break
		}
		r.write(ctx, w)
	}
	sort.SliceStable(res.Failures, func(i, j int) bool {
		a, b := res.Failures[i].Pos, res.Failures[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return res, nil
}

type runner struct {
	f     *File
	eng   *engine.Engine
	res   *Result
	cross bool // compare the query APIs with each other
	// pick and contextual: see Options.Contextual.
	pick       func(int, tuple.Relationship) bool
	contextual []tuple.Relationship
}

func (r *runner) fail(pos Pos, explain, format string, args ...any) {
	r.res.Failures = append(r.res.Failures, Failure{Pos: pos, Msg: fmt.Sprintf(format, args...), Explain: explain})
}

// invariantLine matches an invariant declaration, which is one line.
var invariantLine = regexp.MustCompile(`(?m)^[ \t]*invariant[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*=[^\n]*$`)

// loadSchema writes the schema, mapping compile errors to file lines
// (without its invariants when relationships are contextual).
func (r *runner) loadSchema(ctx context.Context) bool {
	text := r.f.Schema
	if r.pick != nil {
		// Invariants are judged on stored relationships, and the stored
		// part of a split is no state a write made: with contextual
		// relationships the file's reads are tested, without them.
		text = invariantLine.ReplaceAllString(text, "")
	}
	_, _, err := r.eng.WriteSchema(ctx, "validation", text)
	if err == nil {
		return true
	}
	var list schema.ErrorList
	if !errors.As(err, &list) {
		r.fail(r.f.SchemaPos, "", "schema: %v", err)
		return false
	}
	for _, e := range list {
		pos := r.f.SchemaPos
		if e.Pos.IsValid() {
			pos.Line += e.Pos.Line - 1
		}
		msg := e.Msg
		if e.Pos.IsValid() && pos.File == r.f.Path && r.f.SchemaPos.Line != 1 {
			// Inline schema: the column is relative to the indented block.
			msg = fmt.Sprintf("schema line %d:%d: %s", e.Pos.Line, e.Pos.Column, e.Msg)
		}
		r.fail(pos, "", "%s", msg)
	}
	return false
}

// loadRelationships writes the relationships in batches; a relationship
// the schema refuses is reported at its line and the rest still load.
func (r *runner) loadRelationships(ctx context.Context) error {
	seen := map[tuple.Key]Pos{}
	var pending []Relationship
	for i, rel := range r.f.Relationships {
		if first, dup := seen[rel.Key()]; dup {
			r.fail(rel.Pos, "", "relationship %s repeats the one at line %d", rel.Key(), first.Line)
			continue
		}
		seen[rel.Key()] = rel.Pos
		if r.pick != nil && r.pick(i, rel.Relationship) {
			r.contextual = append(r.contextual, rel.Relationship)
			continue
		}
		pending = append(pending, rel)
	}
	batch := r.eng.Limits().MaxUpdatesPerWrite
	for len(pending) > 0 {
		n := min(batch, len(pending))
		chunk := pending[:n]
		ups := make([]engine.Update, len(chunk))
		for i, rel := range chunk {
			ups[i] = engine.Update{Op: engine.OpTouch, Relationship: rel.Relationship}
		}
		_, err := r.eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "validation", Updates: ups})
		var (
			re *engine.RelationshipError
			ie *engine.InvariantError
		)
		switch {
		case err == nil:
			pending = pending[n:]
		case errors.As(err, &re) && re.Index >= 0 && re.Index < n:
			bad := chunk[re.Index]
			r.fail(bad.Pos, "", "relationship %s: %v: %s", bad.Relationship, re.Reason, re.Detail)
			// Drop the bad one and retry the rest of the chunk.
			pending = append(pending[:re.Index:re.Index], pending[re.Index+1:]...)
		case errors.As(err, &ie) && ie.Index >= 0 && ie.Index < n:
			bad := chunk[ie.Index]
			r.fail(bad.Pos, "", "relationship %s breaks invariant %s (%s) on %s: %s", bad.Relationship, ie.Invariant, ie.Condition, ie.Object, ie.Detail)
			pending = append(pending[:ie.Index:ie.Index], pending[ie.Index+1:]...)
		default:
			return fmt.Errorf("validation: loading relationships: %w", err)
		}
	}
	return nil
}

func (r *runner) assert(ctx context.Context, a Assertion) error {
	r.res.Assertions++
	resp, err := r.eng.Check(ctx, engine.CheckRequest{
		Consistency:  engine.FullyConsistent(),
		CheckRequest: engine.CheckQuery{Resource: a.Resource, Permission: a.Permission, Subject: a.Subject},
		Context:      a.Context,
		Contextual:   r.contextual,
	})
	if err != nil {
		if isInputError(err) {
			r.fail(a.Pos, "", "%s %s: %v", a.Kind, a.Text, err)
			return nil
		}
		return err
	}
	want := map[AssertionKind]engine.Permissionship{
		AssertTrue: engine.HasPermission, AssertFalse: engine.NoPermission, AssertCaveated: engine.ConditionalPermission,
	}[a.Kind]
	if resp.Permissionship == want {
		if !r.cross {
			return nil
		}
		return r.lookupAgrees(ctx, a, want)
	}
	got := describePermissionship(resp.Permissionship)
	if len(resp.MissingContext) > 0 {
		got += fmt.Sprintf(" (missing context: %s)", strings.Join(resp.MissingContext, ", "))
	}
	r.fail(a.Pos, r.explain(ctx, a.Resource, a.Permission, a.Subject, a.Context),
		"%s %s: got %s", a.Kind, strings.TrimSpace(a.Text), got)
	return nil
}

// lookupAgrees checks that LookupResources, asked which resources of the
// type the subject has the permission on, gives the same answer for the
// assertion's resource as Check did. Wildcard subjects are not looked up.
func (r *runner) lookupAgrees(ctx context.Context, a Assertion, want engine.Permissionship) error {
	if a.Subject.IsWildcard() {
		return nil
	}
	seq, _, err := r.eng.LookupResources(ctx, engine.LookupResourcesRequest{
		Consistency: engine.FullyConsistent(),
		LookupResourcesRequest: engine.LookupResourcesQuery{
			ResourceType: a.Resource.Type, Permission: a.Permission, Subject: a.Subject,
		},
		Context:    a.Context,
		Contextual: r.contextual,
	})
	if err != nil {
		return err
	}
	// Without a limit the lookup yields every result, so reaching the
	// end without meeting the ID means no permission.
	got := engine.NoPermission
	for res, err := range seq {
		if err != nil {
			if isInputError(err) {
				r.fail(a.Pos, "", "%s %s: lookup: %v", a.Kind, a.Text, err)
				return nil
			}
			return err
		}
		if res.ResourceID == a.Resource.ID {
			got = res.Permissionship
			break
		}
		if res.ResourceID > a.Resource.ID {
			break // results come in ascending ID order
		}
	}
	if got != want {
		r.fail(a.Pos, "", "%s %s: Check agrees, but LookupResources answers %s for this resource",
			a.Kind, strings.TrimSpace(a.Text), describePermissionship(got))
	}
	return nil
}

// isInputError reports errors caused by the file's content (an unknown
// type or permission), which are failures rather than aborts.
func isInputError(err error) bool {
	for _, target := range []error{engine.ErrCaveat, engine.ErrUnknownDefinition, engine.ErrUnknownRelation, engine.ErrMaxDepth, engine.ErrInvalidRequest, engine.ErrLimitExceeded, tuple.ErrInvalid} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func describePermissionship(p engine.Permissionship) string {
	switch p {
	case engine.HasPermission:
		return "permission"
	case engine.ConditionalPermission:
		return "conditional permission"
	}
	return "no permission"
}

// explain renders the paths of the Expand tree of resource#permission that
// reach subject, or the tree's top levels when none does.
func (r *runner) explain(ctx context.Context, res tuple.ObjectRef, perm string, sub tuple.SubjectRef, cctx map[string]any) string {
	tree, _, err := r.eng.Expand(ctx, engine.ExpandRequest{
		Consistency:   engine.FullyConsistent(),
		ExpandRequest: engine.ExpandQuery{Resource: res, Permission: perm},
		Context:       cctx,
		Contextual:    r.contextual,
	})
	if err != nil {
		return "expand failed: " + err.Error()
	}
	if len(pathsTo(tree, sub)) == 0 {
		return fmt.Sprintf("%s is not among the subjects of %s#%s:\n%s", sub, res, perm, r.treeOf(tree, sub))
	}
	return r.treeOf(tree, sub)
}

// treeOf explains, from an expansion already made, how sub is reached, or
// shows the top of the tree when it is not.
func (r *runner) treeOf(tree *engine.Tree, sub tuple.SubjectRef) string {
	paths := pathsTo(tree, sub)
	if len(paths) == 0 {
		return strings.TrimRight(renderTree(tree, 4), "\n")
	}
	const maxPaths = 5
	if len(paths) > maxPaths {
		paths = append(paths[:maxPaths], fmt.Sprintf("... and %d more paths", len(paths)-maxPaths))
	}
	return "path: " + strings.Join(paths, "\npath: ")
}

func (r *runner) validate(ctx context.Context, exp Expected) error {
	r.res.Validations++
	tree, _, err := r.eng.Expand(ctx, engine.ExpandRequest{
		Consistency:   engine.FullyConsistent(),
		ExpandRequest: engine.ExpandQuery{Resource: exp.Resource, Permission: exp.Permission},
		Contextual:    r.contextual,
	})
	if err != nil {
		if isInputError(err) {
			r.fail(exp.Pos, "", "validation %s#%s: %v", exp.Resource, exp.Permission, err)
			return nil
		}
		return err
	}
	got := subjectsOf(tree)
	name := exp.Resource.String() + "#" + exp.Permission
	listed := map[string]bool{}
	for _, es := range exp.Subjects {
		key := es.Subject.String()
		listed[key] = true
		m, ok := got[key]
		if !ok {
			r.fail(es.Pos, r.treeOf(tree, es.Subject), "%s: expected subject [%s] was not found", name, key)
			continue
		}
		if m.caveated != es.Caveated {
			r.fail(es.Pos, "", "%s: subject [%s] is %s, expected %s", name, key, caveatWord(m.caveated), caveatWord(es.Caveated))
		}
		if want, have := exceptionSet(es.Exceptions), m.exceptionList(); want != have {
			r.fail(es.Pos, "", "%s: subject [%s] has exceptions {%s}, expected {%s}", name, key, have, want)
		}
		if len(es.Via) > 0 {
			if want, have := viaSet(es.Via), m.viaList(); want != have {
				r.fail(es.Pos, "", "%s: subject [%s] is <%s>, expected <%s>", name, key, have, want)
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(got)) {
		if !listed[key] {
			m := got[key]
			r.fail(exp.Pos, r.treeOf(tree, m.subject), "%s: subject %s is <%s> but is not listed", name, m.render(key), m.viaList())
		}
	}
	if !r.cross {
		return nil
	}
	return r.crossCheck(ctx, exp, got)
}

// crossCheck asks Check about every plain subject the expansion found: the
// two must agree, or the engine is inconsistent with itself. Wildcards and
// subject sets are left out (Check asks about one subject).
func (r *runner) crossCheck(ctx context.Context, exp Expected, got memberSet) error {
	name := exp.Resource.String() + "#" + exp.Permission
	for _, key := range slices.Sorted(maps.Keys(got)) {
		m := got[key]
		// A caveated subject may hold, not hold, or need context: the
		// expansion does not evaluate caveats (as in SpiceDB), so there is
		// nothing to compare.
		if m.subject.IsWildcard() || m.subject.Relation != "" || m.caveated {
			continue
		}
		resp, err := r.eng.Check(ctx, engine.CheckRequest{
			Consistency:  engine.FullyConsistent(),
			CheckRequest: engine.CheckQuery{Resource: exp.Resource, Permission: exp.Permission, Subject: m.subject},
			Contextual:   r.contextual,
		})
		if err != nil {
			if isInputError(err) {
				r.fail(exp.Pos, "", "%s: check of %s: %v", name, key, err)
				continue
			}
			return err
		}
		if resp.Permissionship != engine.HasPermission {
			r.fail(exp.Pos, r.explain(ctx, exp.Resource, exp.Permission, m.subject, nil),
				"%s: the expansion lists %s but Check answers %s for it", name, m.render(key), describePermissionship(resp.Permissionship))
		}
	}
	return r.crossLookup(ctx, exp, got)
}

// crossLookup compares, for every subject type the expansion found as
// plain objects, the subjects LookupSubjects reports as having the
// permission: each must be in the expansion, and each uncaveated subject
// of the expansion must be among them.
func (r *runner) crossLookup(ctx context.Context, exp Expected, got memberSet) error {
	name := exp.Resource.String() + "#" + exp.Permission
	types := map[string]bool{}
	for _, m := range got {
		if m.subject.Relation == "" {
			types[m.subject.Type] = true
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(types)) {
		seq, _, err := r.eng.LookupSubjects(ctx, engine.LookupSubjectsRequest{
			Consistency:           engine.FullyConsistent(),
			LookupSubjectsRequest: engine.LookupSubjectsQuery{Resource: exp.Resource, Permission: exp.Permission, SubjectType: typ},
			Contextual:            r.contextual,
		})
		if err != nil {
			return err
		}
		found := map[string]bool{}
		for res, err := range seq {
			if err != nil {
				if isInputError(err) {
					r.fail(exp.Pos, "", "%s: lookup of %s subjects: %v", name, typ, err)
					break
				}
				return err
			}
			if res.SubjectID == tuple.Wildcard || res.Permissionship != engine.HasPermission {
				continue
			}
			key := typ + ":" + res.SubjectID
			found[key] = true
			if _, ok := got[key]; !ok {
				r.fail(exp.Pos, "", "%s: LookupSubjects reports %s, which the expansion does not list", name, key)
			}
		}
		for _, key := range slices.Sorted(maps.Keys(got)) {
			m := got[key]
			if m.subject.Type == typ && m.subject.Relation == "" && !m.subject.IsWildcard() && !m.caveated && !found[key] {
				r.fail(exp.Pos, "", "%s: the expansion lists %s but LookupSubjects does not report it", name, m.render(key))
			}
		}
	}
	return nil
}

func caveatWord(c bool) string {
	if c {
		return "caveated"
	}
	return "not caveated"
}

func exceptionSet(xs []Exception) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = x.Subject.String()
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func viaSet(vs []ObjectRelation) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	sort.Strings(parts)
	parts = compactStrings(parts)
	return strings.Join(parts, ">/<")
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
