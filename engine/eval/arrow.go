package eval

import (
	"context"
	"maps"
	"slices"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// arrow evaluates tupleset->target: each (unexpired) relationship of the
// tupleset relation contributes its caveat and the target on its subject.
// tupleset->target (any) holds when one contribution does; with ArrowAll
// there must be a relationship and every contribution must hold, so that a
// relationship whose caveat is false, or whose subject's type lacks the
// target, makes the answer "no" (as SpiceDB's intersection arrow).
// Wildcard subjects, which the schema can only allow beside plain ones,
// are not followed.
//
// Which side the walk starts from is planned per object: the tupleset
// relationships are read up to the evaluator's probe; when there are more
// (the resource side is wide, as for a document in thousands of folders),
// a plain arrow whose targets are pure is decided from the subject's side
// instead (arrowFromSubject). The store's statistics, when it keeps them,
// can decide either way without the probe (see planstats.go).
func (rq *request) arrow(ctx context.Context, f *frame, w *schema.Rewrite, sub tuple.SubjectRef) (result, error) {
	fl := tuple.Filter{ResourceType: f.rel.Definition.Name, ResourceID: f.id, Relation: w.Relation.Name}
	var rels []tuple.Relationship
	var err error
	if probe := rq.e.arrowProbe; probe > 0 && !w.ArrowAll && rq.arrowTargetsPure(w, sub) {
		switch rq.statsPlan(fl.ResourceType, fl.Relation, sub) {
		case statsSubject:
			if res, ok, err := rq.arrowFromSubject(ctx, f, w, sub, PlanArrowSubjectStats); err != nil || ok {
				return res, err
			}
		case statsResource:
			rq.count(PlanResourceStats)
		default:
			// Scratch: used up by arrowBranches or dropped below.
			rels, err = rq.queryScratch(ctx, fl, probe+1)
			if err != nil {
				return result{}, err
			}
			if len(rels) > probe {
				if res, ok, err := rq.arrowFromSubject(ctx, f, w, sub, PlanArrowSubjectProbe); err != nil || ok {
					return res, err
				}
				rels = nil // read them all below
			}
		}
	}
	if rels == nil {
		if rels, err = rq.queryScratch(ctx, fl, 0); err != nil {
			return result{}, err
		}
	}
	branches, acc, decided, err := rq.arrowBranches(w, sub, rels)
	if err != nil || decided {
		return acc, err
	}
	if w.ArrowAll && len(branches) == 0 {
		return acc, nil
	}
	var res result
	if w.ArrowAll {
		res, err = rq.allBranches(ctx, f, branches, sub)
	} else {
		res, err = rq.anyBranch(ctx, f, branches, sub)
	}
	if err != nil {
		return result{}, err
	}
	res.deps(acc)
	return res, nil
}

// arrowBranches turns the tupleset relationships rels of w into one
// branch per relationship that can contribute. acc collects the
// dependencies of the relationships that decide nothing themselves; for
// ArrowAll, one of those decides the arrow ("no", returned as acc with
// decided set).
func (rq *request) arrowBranches(w *schema.Rewrite, sub tuple.SubjectRef, rels []tuple.Relationship) (branches []fanBranch, acc result, decided bool, err error) {
	acc = resNo
	branches = rq.takeBranches(len(rels))
	for i := range rels {
		r := &rels[i]
		if r.Subject.ID == tuple.Wildcard {
			continue
		}
		target := w.Targets[r.Subject.Type]
		cv, err := rq.caveat(r)
		if err != nil {
			return nil, result{}, false, err
		}
		if cv.perm == NoPermission || target == nil || !rq.e.an.canContain(target, sub.Type, sub.Relation) {
			if w.ArrowAll {
				// One contribution is "no" whatever its target says:
				// so is the conjunction, until this relationship
				// expires.
				no := resNo
				no.deps(cv)
				return nil, no, true, nil
			}
			acc.deps(cv)
			continue
		}
		branches = append(branches, fanBranch{target: target, id: r.Subject.ID, cv: cv})
	}
	return branches, acc, false, nil
}

// arrowTargetsPure reports whether every target of w that can contain sub
// is pure, so that a walk up from sub decides it exactly; false when none
// can (the arrow is "no" without reading much either way).
func (rq *request) arrowTargetsPure(w *schema.Rewrite, sub tuple.SubjectRef) bool {
	some := false
	for _, target := range w.Targets {
		if !rq.e.an.canContain(target, sub.Type, sub.Relation) {
			continue
		}
		if !rq.e.an.pure[target.Index] {
			return false
		}
		some = true
	}
	return some
}

// arrowFromSubject decides the plain arrow w on f's object from the
// subject's side: the objects whose target contains sub, found by one walk
// up from sub per target (reverseMembers), each followed by a point read
// of the tupleset relationship from f's object to it. The cost grows with
// what the subject can reach, not with the tupleset. ok is false when a
// walk gave up (over budget) or a grant lies beyond the depth limit; the
// caller then evaluates top-down.
func (rq *request) arrowFromSubject(ctx context.Context, f *frame, w *schema.Rewrite, sub tuple.SubjectRef, p Plan) (res result, ok bool, err error) {
	if res, ok, err = rq.arrowVia(ctx, f, w, sub); ok {
		rq.planned(f, p)
	}
	return res, ok, err
}

// arrowVia is arrowFromSubject without counting the plan: the walks up
// from sub are shared by the request (reverseMembers), so deciding the
// arrow on many objects costs one walk and point reads per object.
func (rq *request) arrowVia(ctx context.Context, f *frame, w *schema.Rewrite, sub tuple.SubjectRef) (res result, ok bool, err error) {
	acc := resNo
	for _, typ := range slices.Sorted(maps.Keys(w.Targets)) {
		target := w.Targets[typ]
		if !rq.e.an.canContain(target, sub.Type, sub.Relation) {
			continue
		}
		m, ok := rq.reverseMembers(ctx, target, sub)
		if !ok {
			return result{}, false, nil
		}
		var done bool
		rel := w.Relation.Name
		// Arrows follow the subject object whatever its relation, and
		// never a wildcard subject.
		acc, done, ok, err = rq.grantsVia(ctx, f, m, acc, func(id string) (tuple.Filter, bool) {
			return tuple.Filter{ResourceType: f.rel.Definition.Name, ResourceID: f.id, Relation: rel,
				Subject: &tuple.SubjectFilter{Type: typ, ID: id}}, id != tuple.Wildcard
		})
		if err != nil || !ok {
			return result{}, false, err
		}
		if done {
			break
		}
	}
	return acc, true, nil
}
