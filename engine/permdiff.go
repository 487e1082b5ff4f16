package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"time"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// DefaultMaxDiffChanges bounds the relationship changes one
// DiffPermissions call reads between its two zookies.
const DefaultMaxDiffChanges = 100_000

// PermissionScope names the results of one permission that a diff (or a
// permission watch) covers: Permission on resources of ResourceType
// (ResourceID, when set, narrows to one resource), for subjects of
// SubjectType (with SubjectRelation for subject sets; SubjectID, when
// set, narrows to one subject). An empty SubjectType means every plain
// subject type the permission can hold.
type PermissionScope struct {
	ResourceType    string
	Permission      string
	ResourceID      string
	SubjectType     string
	SubjectRelation string
	SubjectID       string
}

func (s PermissionScope) validate() error {
	switch {
	case s.ResourceType == "" || s.Permission == "":
		return fmt.Errorf("%w: a resource type and a permission are required", ErrInvalidRequest)
	case s.SubjectType == "" && (s.SubjectID != "" || s.SubjectRelation != ""):
		return fmt.Errorf("%w: a subject id or relation needs a subject type", ErrInvalidRequest)
	case s.ResourceID == tuple.Wildcard:
		return fmt.Errorf("%w: the resource id cannot be %q", ErrInvalidRequest, tuple.Wildcard)
	}
	return nil
}

// PermissionChange is one (resource, permission, subject) result that
// differs between two evaluations. Before and After are the answers on
// each side: a grant is Before == NoPermission, a revocation After ==
// NoPermission, and a result that only turns conditional (or back) has
// neither side NoPermission.
//
// Subject.ID may be "*": the change holds for every subject of that type
// except ExcludedIDs, whose own answers are reported separately when they
// changed.
type PermissionChange struct {
	Resource    tuple.ObjectRef
	Permission  string
	Subject     tuple.SubjectRef
	ExcludedIDs []string
	Before      Permissionship
	After       Permissionship
}

// Granted reports whether the subject had no permission before.
func (c PermissionChange) Granted() bool { return c.Before == NoPermission }

// Revoked reports whether the subject has no permission after.
func (c PermissionChange) Revoked() bool { return c.After == NoPermission }

// permSide is one of the two evaluations comparePermissions reads: a view
// (a snapshot and the schema evaluated there), the clock instant that
// decides expiry and the caveat context.
type permSide struct {
	v   *view
	now time.Time
	ctx map[string]any
}

func (s permSide) params() eval.Params {
	return eval.Params{Reader: s.v.reader, Now: s.now, Context: s.ctx}
}

// comparePermissions evaluates the permission of scope on each candidate
// resource at both sides and yields, in candidate order (then subject
// kind, "*" first, then subject ID), every result that differs. It is
// the one place two evaluations are compared, whatever made them differ:
// DiffPermissions and WatchPermissions pass two snapshots of one schema
// and the candidates their changes reach (AffectedResources); a schema
// dry run passes one snapshot under two schemas. A side whose schema
// lacks the resource type or permission has no results.
//
// With a scope.SubjectID each candidate costs one check per side;
// otherwise one LookupSubjects per side and subject kind, so candidates
// should be the resources that can have changed, not every resource.
// Memory is bounded by one resource's subjects.
func (e *Engine) comparePermissions(ctx context.Context, before, after permSide, scope PermissionScope, candidates []string, yield func(PermissionChange) bool) error {
	kinds := scopeKinds(scope, before.v, after.v)
	for _, id := range candidates {
		res := tuple.ObjectRef{Type: scope.ResourceType, ID: id}
		for _, k := range kinds {
			a, err := e.sideResults(ctx, before, scope, res, k)
			if err != nil {
				return err
			}
			b, err := e.sideResults(ctx, after, scope, res, k)
			if err != nil {
				return err
			}
			for _, c := range diffSubjects(a, b) {
				c.Resource = res
				c.Permission = scope.Permission
				c.Subject.Type, c.Subject.Relation = k.Type, k.Relation
				if !yield(c) {
					return nil
				}
			}
		}
	}
	return nil
}

// scopeKinds lists the subject kinds a comparison covers: the scope's, or
// every plain subject type the permission can hold on either side.
func scopeKinds(scope PermissionScope, views ...*view) []eval.SubjectKind {
	if scope.SubjectType != "" {
		return []eval.SubjectKind{{Type: scope.SubjectType, Relation: scope.SubjectRelation}}
	}
	seen := map[eval.SubjectKind]bool{}
	for _, v := range views {
		if v == nil || v.c == nil {
			continue
		}
		for _, k := range v.c.eval.SubjectKinds(scope.ResourceType, scope.Permission) {
			if k.Relation == "" {
				seen[k] = true
			}
		}
	}
	return slices.SortedFunc(maps.Keys(seen), func(a, b eval.SubjectKind) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Relation, b.Relation))
	})
}

// subjectAnswers is one side's answer for one resource and subject kind:
// each listed subject's permissionship, and the wildcard's when present.
type subjectAnswers struct {
	byID     map[string]Permissionship
	wildcard Permissionship // NoPermission: no wildcard result
	excluded map[string]bool
}

// of is the answer for subject id: its own, else the wildcard's unless it
// is excluded.
func (s subjectAnswers) of(id string) Permissionship {
	if p, ok := s.byID[id]; ok {
		return p
	}
	if s.excluded[id] {
		return NoPermission
	}
	return s.wildcard
}

func (e *Engine) sideResults(ctx context.Context, side permSide, scope PermissionScope, res tuple.ObjectRef, k eval.SubjectKind) (subjectAnswers, error) {
	out := subjectAnswers{byID: map[string]Permissionship{}}
	if side.v == nil || side.v.c == nil {
		return out, nil
	}
	ev := side.v.c.eval
	if !hasPermission(ev, scope.ResourceType, scope.Permission) {
		return out, nil
	}
	if scope.SubjectID != "" {
		sub := tuple.SubjectRef{Type: k.Type, ID: scope.SubjectID, Relation: k.Relation}
		r, err := ev.Check(ctx, side.params(), eval.CheckRequest{Resource: res, Permission: scope.Permission, Subject: sub})
		if err != nil {
			return out, fmt.Errorf("engine: check %s#%s@%s at revision %d: %w", res, scope.Permission, sub, side.v.rev, err)
		}
		if r.Permissionship != NoPermission {
			if sub.ID == tuple.Wildcard {
				out.wildcard = r.Permissionship
			} else {
				out.byID[sub.ID] = r.Permissionship
			}
		}
		return out, nil
	}
	req := eval.LookupSubjectsRequest{Resource: res, Permission: scope.Permission, SubjectType: k.Type, SubjectRelation: k.Relation}
	for r, err := range ev.LookupSubjects(ctx, side.params(), req) {
		if err != nil {
			return out, fmt.Errorf("engine: lookup subjects of %s#%s at revision %d: %w", res, scope.Permission, side.v.rev, err)
		}
		out.add(r)
	}
	return out, nil
}

// add records one result of a LookupSubjects walk: the wildcard's (with
// the subjects it excludes) or one subject's.
func (s *subjectAnswers) add(r eval.SubjectResult) {
	if r.SubjectID == tuple.Wildcard {
		s.wildcard = r.Permissionship
		s.excluded = make(map[string]bool, len(r.ExcludedIDs))
		for _, x := range r.ExcludedIDs {
			s.excluded[x] = true
		}
		return
	}
	s.byID[r.SubjectID] = r.Permissionship
}

// hasPermission reports whether the schema of ev defines typ#perm.
func hasPermission(ev *eval.Evaluator, typ, perm string) bool {
	def := ev.Schema().Definitions[typ]
	return def != nil && def.Relations[perm] != nil
}

// diffSubjects compares two sides' answers for one resource and subject
// kind: the wildcard first, then every subject either side names.
func diffSubjects(a, b subjectAnswers) []PermissionChange {
	named := map[string]bool{}
	for _, s := range []subjectAnswers{a, b} {
		for id := range s.byID {
			named[id] = true
		}
		for id := range s.excluded {
			named[id] = true
		}
	}
	ids := slices.Sorted(maps.Keys(named))
	var out []PermissionChange
	if a.wildcard != b.wildcard {
		out = append(out, PermissionChange{Subject: tuple.SubjectRef{ID: tuple.Wildcard}, ExcludedIDs: ids, Before: a.wildcard, After: b.wildcard})
	}
	for _, id := range ids {
		if pa, pb := a.of(id), b.of(id); pa != pb {
			out = append(out, PermissionChange{Subject: tuple.SubjectRef{ID: id}, Before: pa, After: pb})
		}
	}
	return out
}

// DiffRequest asks which results of a permission changed between two
// zookies: From names the earlier revision, To the later (equal zookies
// give an empty diff).
type DiffRequest struct {
	From, To string
	Scope    PermissionScope
	// Context supplies caveat parameters, the same on both sides.
	Context map[string]any
}

// Diff is the answer of DiffPermissions: the revisions compared, what
// was read to find the candidates, and the changes.
type Diff struct {
	// FromZookie and ToZookie are the zookies compared.
	FromZookie, ToZookie string
	// Relationships counts the relationship changes committed after From
	// up to To; Candidates the resources they can have affected (each is
	// evaluated at both revisions).
	Relationships, Candidates int
	// Changes yields the differing results in resource ID order; an error
	// ends it.
	Changes iter.Seq2[PermissionChange, error]
}

// DiffPermissions returns which (resource, permission, subject) results
// changed between req.From and req.To. It reads the change sets committed
// between the two revisions, walks up from the relationships they changed
// to the resources whose permission they can alter (AffectedResources),
// and evaluates only those at both revisions.
//
// Both sides are evaluated at the engine's clock now, as a check at an
// exact snapshot is: a diff reports what writes changed. A relationship
// that expires between the two commits is hidden on both sides, or shown
// on both, so its expiry is never reported here (WatchPermissions reports
// expiry as it happens).
//
// It fails with ErrSnapshotExpired when From is older than the GC window,
// ErrFutureZookie when To is newer than the head, ErrInvalidRequest when
// From is later than To, and ErrSchemaChanged when a schema write lies
// between them (compare schemas with WriteSchema's dry run).
func (e *Engine) DiffPermissions(ctx context.Context, req DiffRequest) (*Diff, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if err := req.Scope.validate(); err != nil {
		return nil, err
	}
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, err
	}
	if req.From == "" || req.To == "" {
		return nil, fmt.Errorf("%w: a diff needs both zookies (from and to)", ErrInvalidRequest)
	}
	from, err := e.resolve(ctx, AtExactSnapshot(req.From))
	if err != nil {
		return nil, fmt.Errorf("engine: diff from: %w", err)
	}
	to, err := e.resolve(ctx, AtExactSnapshot(req.To))
	if err != nil {
		return nil, fmt.Errorf("engine: diff to: %w", err)
	}
	if from > to {
		return nil, fmt.Errorf("%w: diff from revision %d is later than to revision %d", ErrInvalidRequest, from, to)
	}
	now := e.now()
	d, err := e.diffRevisions(ctx, from, to, now, now, req.Scope, req.Context)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// diffRevisions is DiffPermissions between two resolved revisions, each
// side at its own clock instant.
func (e *Engine) diffRevisions(ctx context.Context, from, to store.Revision, nowFrom, nowTo time.Time, scope PermissionScope, cctx map[string]any) (*Diff, error) {
	a, err := e.openAt(ctx, from)
	if err != nil {
		return nil, err
	}
	b, err := e.openAt(ctx, to)
	if err != nil {
		return nil, err
	}
	if err := sameSchema(a, b); err != nil {
		return nil, err
	}
	changed, n, err := e.changedBetween(ctx, from, to)
	if err != nil {
		return nil, err
	}
	return e.diffViews(ctx, permSide{v: a, now: nowFrom, ctx: cctx}, permSide{v: b, now: nowTo, ctx: cctx}, scope, changed, n)
}

// diffViews finds the candidates that the changed (object, relation)
// pairs reach, walking at the later side, and prepares their comparison.
// Both sides must evaluate under one schema.
func (e *Engine) diffViews(ctx context.Context, before, after permSide, scope PermissionScope, changed []tuple.SubjectRef, n int) (*Diff, error) {
	ev := after.v.c.eval
	cands, err := ev.AffectedResources(ctx, after.params(), eval.AffectedRequest{ResourceType: scope.ResourceType, Permission: scope.Permission, Changed: changed})
	if err != nil {
		return nil, fmt.Errorf("engine: diff %s#%s: %w", scope.ResourceType, scope.Permission, err)
	}
	if scope.ResourceID != "" {
		if _, ok := slices.BinarySearch(cands, scope.ResourceID); ok {
			cands = []string{scope.ResourceID}
		} else {
			cands = nil
		}
	}
	if scope.SubjectType != "" {
		if err := ev.ValidateSubjectKind(scope.SubjectType, scope.SubjectRelation); err != nil {
			return nil, fmt.Errorf("engine: diff subject: %w", err)
		}
	}
	d := &Diff{FromZookie: e.zookieOf(before.v.rev), ToZookie: e.zookieOf(after.v.rev), Relationships: n, Candidates: len(cands)}
	d.Changes = func(yield func(PermissionChange, error) bool) {
		stopped := false
		err := e.comparePermissions(ctx, before, after, scope, cands, func(c PermissionChange) bool {
			stopped = !yield(c, nil)
			return !stopped
		})
		if err != nil && !stopped {
			yield(PermissionChange{}, err)
		}
	}
	return d, nil
}

// sameSchema refuses two views under different schemas. Only the ends
// matter: a schema written and reverted between them changes nothing
// either side evaluates.
func sameSchema(a, b *view) error {
	switch {
	case a.c == nil && b.c == nil:
		return fmt.Errorf("%w (at revision %d)", ErrNoSchema, b.rev)
	case a.c == nil || b.c == nil || a.c.schema.Source != b.c.schema.Source:
		return &SchemaChangedError{From: a.rev, To: b.rev}
	}
	return nil
}

// changedBetween returns the (object, relation) pairs whose relationships
// changed in the revisions after from up to to, and how many changes
// there were.
func (e *Engine) changedBetween(ctx context.Context, from, to store.Revision) ([]tuple.SubjectRef, int, error) {
	if from == to {
		return nil, 0, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := map[tuple.SubjectRef]bool{}
	var out []tuple.SubjectRef
	n := 0
	for cs, err := range e.watchStore(wctx, from) {
		if err != nil {
			if errors.Is(err, store.ErrRevisionCompacted) {
				return nil, 0, fmt.Errorf("engine: diff: changes after revision %d: snapshot expired: %w", from, err)
			}
			return nil, 0, fmt.Errorf("engine: diff: changes after revision %d: %w", from, err)
		}
		if cs.Revision > to {
			break
		}
		n += len(cs.Changes)
		if n > DefaultMaxDiffChanges {
			return nil, 0, &LimitError{Limit: "relationship changes per diff", Max: DefaultMaxDiffChanges, Got: n,
				Hint: "diff a shorter range of zookies"}
		}
		out = appendChanged(out, seen, cs.Changes)
		if cs.Revision == to {
			break
		}
	}
	return out, n, nil
}

// appendChanged appends the (object, relation) pair of each change not
// yet seen.
func appendChanged(out []tuple.SubjectRef, seen map[tuple.SubjectRef]bool, changes []store.Change) []tuple.SubjectRef {
	for _, c := range changes {
		r := c.Relationship
		k := tuple.SubjectRef{Type: r.Resource.Type, ID: r.Resource.ID, Relation: r.Relation}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// SchemaChangedError is the error of a diff or permission watch across a
// schema change: the two revisions evaluate under different schemas, so
// the relationship changes between them do not say what changed.
type SchemaChangedError struct {
	From, To store.Revision
}

func (e *SchemaChangedError) Error() string {
	return fmt.Sprintf("engine: the schema in force at revision %d differs from the one at revision %d: compare schemas with a schema dry run, or diff ranges without a schema write", e.From, e.To)
}

// Is makes a *SchemaChangedError match ErrSchemaChanged.
func (e *SchemaChangedError) Is(target error) bool { return target == ErrSchemaChanged }
