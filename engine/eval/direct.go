package eval

import (
	"context"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// direct evaluates a relation: its stored relationships naming sub (or
// sub's wildcard), then its subject sets that can contain sub.
func (rq *request) direct(ctx context.Context, f *frame, sub tuple.SubjectRef) (result, error) {
	if res, ok := rq.directFromSubject(ctx, f, sub); ok {
		return res, nil
	}
	acc, err := rq.directPoints(ctx, f, sub)
	if err != nil {
		return result{}, err
	}
	if acc.perm == HasPermission {
		return acc, nil
	}
	branches, err := rq.subjectSetBranches(ctx, f, sub, &acc)
	if err != nil {
		return result{}, err
	}
	if len(branches) == 0 {
		return acc, nil
	}
	sets, err := rq.anyBranch(ctx, f, branches, sub)
	if err != nil {
		return result{}, err
	}
	return or(acc, sets), nil
}

// directFromSubject answers f's relation from the subject's side, when the
// analysis chose a walk up from sub for it (reverseCheck) and the walk
// decides within the depth limit.
func (rq *request) directFromSubject(ctx context.Context, f *frame, sub tuple.SubjectRef) (result, bool) {
	if !rq.e.an.reverseCheck[f.rel.Index] {
		return result{}, false
	}
	m, ok := rq.reverseMembers(ctx, f.rel, sub)
	if !ok {
		return result{}, false
	}
	in, known := m.member(f.id, f.depth, rq.e.opts.MaxDepth)
	if !known {
		return result{}, false
	}
	res := resNo
	if in {
		// The walk's height counts this relation, which compute adds.
		res = resYes
		res.h = m.ids[f.id].h - 1
	}
	res.expires = m.expires
	return res, true
}

// directPoints reads the relationships of f's relation that name sub
// itself or, for a plain subject, its type's wildcard: the kinds the
// relation allows. It stops at the first read that grants.
func (rq *request) directPoints(ctx context.Context, f *frame, sub tuple.SubjectRef) (result, error) {
	info := &rq.e.an.direct[f.rel.Index]
	var exact, wild bool
	if sub.Relation == "" {
		if sub.ID == tuple.Wildcard {
			exact = info.wildcard[sub.Type]
		} else {
			exact = info.plain[sub.Type]
			wild = info.wildcard[sub.Type]
		}
	} else {
		exact = info.sets[kind{sub.Type, sub.Relation}]
	}
	acc := resNo
	if exact {
		if err := rq.pointRead(ctx, f, sub, sub.ID, &acc); err != nil || acc.perm == HasPermission {
			return acc, err
		}
	}
	if wild {
		if err := rq.pointRead(ctx, f, sub, tuple.Wildcard, &acc); err != nil || acc.perm == HasPermission {
			return acc, err
		}
	}
	return acc, nil
}

// pointRead adds to acc the relationships of f's relation naming subject
// id of sub's type and relation.
func (rq *request) pointRead(ctx context.Context, f *frame, sub tuple.SubjectRef, id string, acc *result) error {
	srel := sub.Relation
	if srel == "" {
		srel = tuple.Ellipsis
	}
	fl := tuple.Filter{ResourceType: f.rel.Definition.Name, ResourceID: f.id, Relation: f.rel.Name,
		Subject: &tuple.SubjectFilter{Type: sub.Type, ID: id, Relation: srel}}
	rels, err := rq.query(ctx, fl)
	if err != nil {
		return err
	}
	for i := range rels {
		cv, err := rq.caveat(&rels[i])
		if err != nil {
			return err
		}
		*acc = or(*acc, cv)
	}
	return nil
}

// subjectSetBranches reads the subject sets of f's relation that can
// contain sub: one branch per relationship whose caveat is not false. The
// dependencies of the others are merged into acc.
func (rq *request) subjectSetBranches(ctx context.Context, f *frame, sub tuple.SubjectRef, acc *result) ([]fanBranch, error) {
	rel := f.rel
	var branches []fanBranch
	for _, us := range rq.e.an.direct[rel.Index].usersets {
		if !rq.e.an.canContain(us.target, sub.Type, sub.Relation) {
			continue
		}
		fl := tuple.Filter{ResourceType: rel.Definition.Name, ResourceID: f.id, Relation: rel.Name,
			Subject: &tuple.SubjectFilter{Type: us.typ, Relation: us.rel}}
		rels, err := rq.query(ctx, fl)
		if err != nil {
			return nil, err
		}
		for i := range rels {
			r := &rels[i]
			if r.Subject == sub || r.Subject.ID == tuple.Wildcard {
				continue // counted by the point reads
			}
			cv, err := rq.caveat(r)
			if err != nil {
				return nil, err
			}
			if cv.perm == NoPermission {
				acc.deps(cv)
				continue
			}
			branches = append(branches, fanBranch{target: us.target, id: r.Subject.ID, cv: cv})
		}
	}
	return branches, nil
}
