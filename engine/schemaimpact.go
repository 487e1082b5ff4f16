package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// This file is the schema dry run: what a schema change would do to the
// answers on the data stored now, before it is written.

// Defaults of SchemaImpactOptions fields left zero.
const (
	DefaultImpactMaxResources = 10_000
	DefaultImpactMaxSamples   = 100
)

// SchemaImpactOptions bound a dry run.
type SchemaImpactOptions struct {
	// MaxResources bounds the resources evaluated, under both schemas,
	// over every affected permission (0: DefaultImpactMaxResources). When
	// more are candidates the impact is Truncated: its counts are lower
	// bounds.
	MaxResources int
	// MaxSamples bounds the flips listed (0: DefaultImpactMaxSamples;
	// counts cover every flip found).
	MaxSamples int
}

// SchemaDryRun is what writing a schema would do, computed without
// writing it.
type SchemaDryRun struct {
	// Zookie names the revision the current data was read at.
	Zookie string
	// Changes lists the differences from the schema in force.
	Changes []schema.Change
	Impact  SchemaImpact
}

// SchemaImpact lists the results a schema change flips on the current
// data.
type SchemaImpact struct {
	// Permissions has one entry per relation or permission whose meaning
	// changed (in either schema it depends on something that changed),
	// present in both schemas, sorted by type and name; entries without
	// flips are kept, so that an empty impact says which questions were
	// asked.
	Permissions []PermissionImpact
	// Samples lists the first flips found, at most MaxSamples of them,
	// in the order of Permissions, then resource ID, then subject.
	Samples []ResultFlip
	// Resources counts the resources evaluated under both schemas.
	Resources int
	// Truncated is set when MaxResources stopped the run before every
	// candidate resource was evaluated: the counts are lower bounds.
	Truncated bool
}

// PermissionImpact counts the flips of one relation or permission.
type PermissionImpact struct {
	ResourceType string
	Permission   string
	// Granted counts results with no permission before and some after,
	// Revoked the reverse, Conditional those that only turned
	// conditional or unconditional. A wildcard result counts once.
	Granted, Revoked, Conditional int
	// Resources counts the resources of ResourceType evaluated.
	Resources int
	// Truncated is set when not every candidate resource was evaluated.
	Truncated bool
}

// ResultFlip is one (resource, permission, subject) result that differs
// between the current schema and the one a dry run tries: the same record
// as a PermissionChange between two revisions. Subject.ID may be "*": the
// change holds for every subject of the type but ExcludedIDs, whose own
// changes are listed separately.
type ResultFlip = PermissionChange

// DryRunSchema compiles text and reports, at the head revision, what
// WriteSchema would do with it: the refusal it would return (an invalid
// schema, an *UnsafeSchemaChangeError), or the changes and the results
// they flip. Nothing is written.
func (e *Engine) DryRunSchema(ctx context.Context, text string, opts SchemaImpactOptions) (SchemaDryRun, error) {
	if err := e.checkOpen(); err != nil {
		return SchemaDryRun{}, err
	}
	if opts.MaxResources <= 0 {
		opts.MaxResources = DefaultImpactMaxResources
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = DefaultImpactMaxSamples
	}
	// Compiled and held to the schema limits as a write would be.
	next, err := e.compileSchema(ctx, text)
	if err != nil {
		return SchemaDryRun{}, err
	}
	head, err := e.heads.head(ctx)
	if err != nil {
		return SchemaDryRun{}, err
	}
	cur, err := e.openAt(ctx, head)
	if err != nil {
		return SchemaDryRun{}, err
	}
	out := SchemaDryRun{Zookie: e.zookieOf(cur.rev)}
	if cur.c == nil {
		// A first schema: nothing is stored that it could judge.
		out.Changes = schema.Diff(nil, next)
		return out, nil
	}
	out.Changes = schema.Diff(cur.c.schema, next)
	now := e.now()
	uses, err := e.orphans(ctx, cur.reader, cur.c.schema, next, now)
	if err != nil {
		return SchemaDryRun{}, err
	}
	if len(uses) > 0 {
		return SchemaDryRun{}, &UnsafeSchemaChangeError{Uses: uses}
	}
	after := &view{rev: cur.rev, reader: cur.reader, c: e.newCompiled(next)}
	out.Impact, err = e.schemaImpact(ctx, impactSide{cur, now}, impactSide{after, now}, opts)
	if err != nil {
		return SchemaDryRun{}, err
	}
	return out, nil
}

// schemaImpact evaluates, for every relation and permission whose meaning
// differs between the two sides' schemas, the resources of its type that
// the store holds, under both.
func (e *Engine) schemaImpact(ctx context.Context, before, after impactSide, opts SchemaImpactOptions) (SchemaImpact, error) {
	var out SchemaImpact
	budget := opts.MaxResources
	candidates := map[string][]string{} // by resource type
	for _, key := range changedMeanings(before.v.c.schema, after.v.c.schema) {
		pi := PermissionImpact{ResourceType: key.typ, Permission: key.name}
		ids, ok := candidates[key.typ]
		if !ok {
			var err error
			if ids, err = resourceIDs(ctx, before.v.reader, key.typ, opts.MaxResources+1, before.now); err != nil {
				return out, err
			}
			candidates[key.typ] = ids
		}
		if len(ids) > budget {
			ids = ids[:budget]
			pi.Truncated, out.Truncated = true, true
		}
		budget -= len(ids)
		pi.Resources = len(ids)
		out.Resources += len(ids)
		err := e.compareSchemas(ctx, before, after, key.typ, key.name, ids, func(c ResultFlip) bool {
			switch {
			case c.Before == NoPermission:
				pi.Granted++
			case c.After == NoPermission:
				pi.Revoked++
			default:
				pi.Conditional++
			}
			if len(out.Samples) < opts.MaxSamples {
				out.Samples = append(out.Samples, c)
			}
			return true
		})
		if err != nil {
			return out, err
		}
		out.Permissions = append(out.Permissions, pi)
	}
	return out, nil
}

// resourceIDs lists, sorted, at most limit distinct IDs of objects of
// type typ that can have a permission: those with stored relationships as
// resources, and those named as subjects ("self" makes an object a
// subject of its own permissions).
func resourceIDs(ctx context.Context, r store.Reader, typ string, limit int, now time.Time) ([]string, error) {
	seen := map[string]bool{}
	for rel, err := range r.QueryRelationships(ctx, tuple.Filter{ResourceType: typ}, store.QueryOptions{Now: now}) {
		if err != nil {
			return nil, fmt.Errorf("engine: list %s resources: %w", typ, err)
		}
		seen[rel.Resource.ID] = true
		if len(seen) >= limit {
			break
		}
	}
	if len(seen) < limit {
		for rel, err := range r.ReverseQueryRelationships(ctx, tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: typ}}, store.QueryOptions{Now: now}) {
			if err != nil {
				return nil, fmt.Errorf("engine: list %s subjects: %w", typ, err)
			}
			if rel.Subject.ID != tuple.Wildcard {
				seen[rel.Subject.ID] = true
			}
			if len(seen) >= limit {
				break
			}
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// meaningKey names a relation or permission.
type meaningKey struct{ typ, name string }

// changedMeanings lists, sorted, the relations and permissions present in
// both schemas whose meaning may differ: their own definition changed
// (rewrite, allowed subject types, the caveats those name, the old name
// they are read under), or, transitively, something they refer to in
// either schema did or exists in one schema only.
func changedMeanings(prev, next *schema.Schema) []meaningKey {
	sig := func(s *schema.Schema, k meaningKey) (string, bool) {
		d := s.Definitions[k.typ]
		if d == nil || d.Relations[k.name] == nil {
			return "", false
		}
		r := d.Relations[k.name]
		if r.IsPermission {
			return "permission " + schema.RewriteString(r.Rewrite), true
		}
		var b strings.Builder
		b.WriteString("relation " + allowedList(r.Allowed) + " renamed_from " + r.RenamedFrom)
		for _, a := range r.Allowed {
			if c := a.Caveat; c != nil {
				fmt.Fprintf(&b, " caveat %s%v{%s}", c.Name, c.Params, c.Expression)
			}
		}
		return b.String(), true
	}
	deps := map[meaningKey][]meaningKey{}
	keys := map[meaningKey]bool{}
	for _, s := range []*schema.Schema{prev, next} {
		for _, d := range s.Definitions {
			for _, r := range d.Ordered {
				k := meaningKey{d.Name, r.Name}
				keys[k] = true
				deps[k] = append(deps[k], dependencies(r)...)
			}
		}
	}
	changed := map[meaningKey]bool{}
	for k := range keys {
		a, okA := sig(prev, k)
		b, okB := sig(next, k)
		if !okA || !okB || a != b {
			changed[k] = true
		}
	}
	for grew := true; grew; {
		grew = false
		for k := range keys {
			if changed[k] {
				continue
			}
			for _, d := range deps[k] {
				if changed[d] {
					changed[k] = true
					grew = true
					break
				}
			}
		}
	}
	var out []meaningKey
	for k := range changed {
		if _, ok := sig(prev, k); !ok {
			continue
		}
		if _, ok := sig(next, k); ok {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b meaningKey) int {
		if c := strings.Compare(a.typ, b.typ); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// dependencies lists what r's meaning is computed from: the relations and
// permissions its rewrite names (arrow targets included) and the subject
// sets its allowed types name.
func dependencies(r *schema.Relation) []meaningKey {
	var out []meaningKey
	for _, a := range r.Allowed {
		if a.Target != nil {
			out = append(out, meaningKey{a.Target.Definition.Name, a.Target.Name})
		}
	}
	var walk func(w *schema.Rewrite)
	walk = func(w *schema.Rewrite) {
		if w == nil {
			return
		}
		switch w.Kind {
		case schema.RewriteComputed:
			out = append(out, meaningKey{r.Definition.Name, w.Relation.Name})
		case schema.RewriteArrow:
			out = append(out, meaningKey{r.Definition.Name, w.Relation.Name})
			// Every subject type of the tupleset relation, whether or not
			// it has the target now: gaining or losing it changes the
			// arrow.
			for _, a := range w.Relation.Allowed {
				out = append(out, meaningKey{a.Type, w.TargetName})
			}
		}
		for _, ch := range w.Children {
			walk(ch)
		}
	}
	walk(r.Rewrite)
	return out
}

// impactSide is one of the two evaluations compareSchemas reads: a view
// (a snapshot and the schema evaluated there) and the instant that
// decides expiry.
type impactSide struct {
	v   *view
	now time.Time
}

func (s impactSide) params() eval.Params {
	return eval.Params{Reader: s.v.evalReader(), Now: s.now}
}

// compareSchemas evaluates typ#perm on each candidate resource at both
// sides and yields, in candidate order (then subject type, then the
// wildcard before subject IDs in order), every result that differs. It is
// the dry run's one place two evaluations are compared, kept apart so
// that it can become the engine's shared comparison of two evaluations
// (the one DiffPermissions uses) without touching the rest of the dry
// run. Each candidate costs one LookupSubjects per side and subject type.
func (e *Engine) compareSchemas(ctx context.Context, before, after impactSide, typ, perm string, candidates []string, yield func(ResultFlip) bool) error {
	types := map[string]bool{}
	for _, s := range []impactSide{before, after} {
		if r := s.v.c.schema.Definitions[typ].Relations[perm]; r != nil {
			for _, t := range r.SubjectTypes() {
				types[t] = true
			}
		}
	}
	for _, id := range candidates {
		res := tuple.ObjectRef{Type: typ, ID: id}
		for _, st := range slices.Sorted(maps.Keys(types)) {
			a, err := impactAnswers(ctx, before, res, perm, st)
			if err != nil {
				return err
			}
			b, err := impactAnswers(ctx, after, res, perm, st)
			if err != nil {
				return err
			}
			for _, c := range diffSubjects(a, b) {
				c.Resource, c.Permission, c.Subject.Type = res, perm, st
				if !yield(c) {
					return nil
				}
			}
		}
	}
	return nil
}

func impactAnswers(ctx context.Context, side impactSide, res tuple.ObjectRef, perm, subjectType string) (subjectAnswers, error) {
	out := subjectAnswers{byID: map[string]Permissionship{}}
	req := eval.LookupSubjectsRequest{Resource: res, Permission: perm, SubjectType: subjectType}
	for r, err := range side.v.c.eval.LookupSubjects(ctx, side.params(), req) {
		if err != nil {
			return out, fmt.Errorf("engine: lookup subjects of %s#%s: %w", res, perm, err)
		}
		out.add(r)
	}
	return out, nil
}
