package eval

import (
	"context"

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
func (rq *request) arrow(ctx context.Context, f *frame, w *schema.Rewrite, sub tuple.SubjectRef) (result, error) {
	branches, acc, decided, err := rq.arrowBranches(ctx, f, w, sub)
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

// arrowBranches reads the tupleset relationships of w on f's object: one
// branch per relationship that can contribute. acc collects the
// dependencies of the relationships that decide nothing themselves; for
// ArrowAll, one of those decides the arrow ("no", returned as acc with
// decided set).
func (rq *request) arrowBranches(ctx context.Context, f *frame, w *schema.Rewrite, sub tuple.SubjectRef) (branches []fanBranch, acc result, decided bool, err error) {
	rels, err := rq.query(ctx, tuple.Filter{ResourceType: f.rel.Definition.Name, ResourceID: f.id, Relation: w.Relation.Name})
	if err != nil {
		return nil, result{}, false, err
	}
	acc = resNo
	branches = make([]fanBranch, 0, len(rels))
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
