package eval

import (
	"cmp"
	"context"
	"slices"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// AffectedRequest asks which resources of ResourceType may have a
// different Permission once the stored relationships of Changed change.
type AffectedRequest struct {
	ResourceType string
	Permission   string
	// Changed names each (object, relation) whose relationships were
	// added, removed or replaced, written as the subject set
	// type:id#relation (the relation of the changed relationships, on
	// their resource). Pairs the schema does not know are ignored: no
	// permission of this schema reads them.
	Changed []tuple.SubjectRef
}

// AffectedResources returns, sorted, the IDs of the resources of
// req.ResourceType whose req.Permission (for any subject) can differ
// between p's snapshot and another snapshot that differs from it only in
// the relationships of req.Changed, both evaluated at p.Now.
//
// It walks up from each changed pair through the influence graph: the
// reverse walk of LookupResources (same machinery, same reverse index),
// widened to negative positions (an exclusion's subtracted operand, an
// intersection's later children) and to arrows' tuplesets. That is
// complete from either side: a result on resource X can differ only if
// evaluating it reads a changed pair, and the walk from that pair, over
// the edges present at p's snapshot, reaches X (see docs/api.md,
// DiffPermissions). It is an over-approximation; callers evaluate the
// candidates at both snapshots.
func (e *Evaluator) AffectedResources(ctx context.Context, p Params, req AffectedRequest) ([]string, error) {
	goal, err := e.resolve(req.ResourceType, req.Permission)
	if err != nil {
		return nil, err
	}
	rq, err := e.newRequest(p)
	if err != nil {
		return nil, err
	}
	defer rq.done()
	an := e.an
	w := &reverseWalk{rq: rq, g: &an.influence, relevant: an.influenced.of(goal.Index), vals: make([]map[string]revVal, len(an.rels))}
	for _, c := range req.Changed {
		def := e.s.Definitions[c.Type]
		if def == nil {
			continue
		}
		if rel := def.Relations[c.Relation]; rel != nil {
			w.reach(rel, c.ID, false, 0)
		}
	}
	if err := w.propagate(ctx); err != nil {
		return nil, err
	}
	found := w.vals[goal.Index]
	ids := make([]string, 0, len(found))
	for id := range found {
		if id != tuple.Wildcard {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// SubjectKind is a kind of subject a permission can hold: plain objects
// of Type (Relation "") or the subject sets Type#Relation.
type SubjectKind struct {
	Type, Relation string
}

// SubjectKinds lists, sorted, the kinds of subject that can have
// permission on resources of resourceType; nil when the schema lacks
// either.
func (e *Evaluator) SubjectKinds(resourceType, permission string) []SubjectKind {
	rel, err := e.resolve(resourceType, permission)
	if err != nil {
		return nil
	}
	// The kinds owned by every relation rel reaches through positive
	// references.
	seen := map[kind]bool{}
	var out []SubjectKind
	reach := e.an.relevant.of(rel.Index)
	for i, owned := range e.an.owned {
		if !reach.has(i) {
			continue
		}
		for _, k := range owned {
			if !seen[k] {
				seen[k] = true
				out = append(out, SubjectKind{Type: k.typ, Relation: k.rel})
			}
		}
	}
	slices.SortFunc(out, func(a, b SubjectKind) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Relation, b.Relation))
	})
	return out
}

// ValidateSubjectKind checks that the schema defines type typ and, when
// rel is set, its relation rel.
func (e *Evaluator) ValidateSubjectKind(typ, rel string) error {
	def := e.s.Definitions[typ]
	switch {
	case def == nil:
		return &UnknownDefinitionError{Name: typ}
	case rel != "" && def.Relations[rel] == nil:
		return &UnknownRelationError{Definition: typ, Relation: rel}
	}
	return nil
}

// ExpiringRelations lists, sorted, the relations that can alter
// permission on resourceType and whose relationships may carry an
// expiration: where time alone can change the permission.
func (e *Evaluator) ExpiringRelations(resourceType, permission string) []SubjectKind {
	goal, err := e.resolve(resourceType, permission)
	if err != nil {
		return nil
	}
	var out []SubjectKind
	influenced := e.an.influenced.of(goal.Index)
	for i, r := range e.an.rels {
		if !influenced.has(i) || r == nil {
			continue
		}
		for _, as := range r.Allowed {
			if as.Expiration {
				out = append(out, SubjectKind{Type: r.Definition.Name, Relation: r.Name})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b SubjectKind) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Relation, b.Relation))
	})
	return out
}
