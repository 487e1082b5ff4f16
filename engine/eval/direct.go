package eval

import (
	"context"
	"maps"
	"slices"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// direct evaluates a relation: its stored relationships naming sub (or
// sub's wildcard), then its subject sets that can contain sub.
func (rq *request) direct(ctx context.Context, f *frame, sub tuple.SubjectRef) (result, error) {
	if res, ok := rq.directFromSubject(ctx, f, sub); ok {
		return res, nil
	}
	// One read for the point reads and the subject sets both, when the
	// relation is narrow; else one for each.
	rels, narrow, err := rq.narrowRead(ctx, f, sub)
	if err != nil {
		return result{}, err
	}
	var acc result
	if narrow {
		acc, err = rq.pointsIn(f, rels, sub)
	} else {
		acc, err = rq.directPoints(ctx, f, sub)
	}
	if err != nil || acc.perm == HasPermission {
		return acc, err
	}
	branches, err := rq.subjectSetBranches(ctx, f, sub, &acc, rels, narrow)
	if err != nil {
		return result{}, err
	}
	if len(branches) == 0 || acc.perm == HasPermission {
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
	if res, ok := rq.nestedCheck(ctx, f, sub); ok {
		return res, true
	}
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
	exact, wild := rq.e.an.direct[f.rel.Index].points(sub)
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

// narrowRead reads all of f's relationships at once, when the planner's
// statistics say that objects of f's relation hold few each (narrowByStats)
// and a check would otherwise read twice: once by key for sub (or its
// wildcard) and once for the subject sets that can contain sub. ok is
// false when the plan does not apply, or when f's object holds more than
// the plan reads (then the two reads decide; the statistics are a mean).
// The answer is in the scratch buffer: the caller uses it up before its
// next query.
func (rq *request) narrowRead(ctx context.Context, f *frame, sub tuple.SubjectRef) ([]tuple.Relationship, bool, error) {
	if rq.stats == nil || rq.e.narrowFanout <= 0 || !rq.statsOrders().narrow[f.rel.Index] {
		return nil, false, nil
	}
	info := &rq.e.an.direct[f.rel.Index]
	if exact, wild := info.points(sub); !exact && !wild {
		return nil, false, nil
	}
	sets := false
	for _, us := range info.usersets {
		if rq.e.an.canContain(us.target, sub.Type, sub.Relation) {
			sets = true
			break
		}
	}
	if !sets {
		return nil, false, nil
	}
	// Never more than the probe would read of one kind: subjectSetBranches
	// then walks every kind from the resource, as it would after probing.
	limit := narrowLimit
	if probe := rq.e.arrowProbe; probe > 0 {
		limit = min(limit, probe)
	}
	fl := tuple.Filter{ResourceType: f.rel.Definition.Name, ResourceID: f.id, Relation: f.rel.Name}
	rels, err := rq.queryScratch(ctx, fl, limit+1)
	if err != nil || len(rels) > limit {
		return nil, false, err
	}
	rq.count(PlanNarrowRead)
	return rels, true, nil
}

// pointsIn is directPoints over rels, all of f's relationships.
func (rq *request) pointsIn(f *frame, rels []tuple.Relationship, sub tuple.SubjectRef) (result, error) {
	exact, wild := rq.e.an.direct[f.rel.Index].points(sub)
	star := tuple.SubjectRef{Type: sub.Type, ID: tuple.Wildcard}
	acc := resNo
	for i := range rels {
		r := &rels[i]
		if !(exact && r.Subject == sub || wild && r.Subject == star) {
			continue
		}
		cv, err := rq.caveat(r)
		if err != nil {
			return result{}, err
		}
		if acc = or(acc, cv); acc.perm == HasPermission {
			break
		}
	}
	return acc, nil
}

// points reports which relationships of the relation name sub for a
// check: sub itself (exact), and its type's wildcard (wild, for a plain
// subject), each when the relation allows it.
func (info *directInfo) points(sub tuple.SubjectRef) (exact, wild bool) {
	switch {
	case sub.Relation != "":
		return info.sets[kind{sub.Type, sub.Relation}], false
	case sub.ID == tuple.Wildcard:
		return info.wildcard[sub.Type], false
	}
	return info.plain[sub.Type], info.wildcard[sub.Type]
}

// pointRead adds to acc the relationships of f's relation naming subject
// id of sub's type and relation: at most one, read by key when the reader
// can (store.PointReader).
func (rq *request) pointRead(ctx context.Context, f *frame, sub tuple.SubjectRef, id string, acc *result) error {
	if rq.points != nil {
		k := tuple.Key{Resource: tuple.ObjectRef{Type: f.rel.Definition.Name, ID: f.id}, Relation: f.rel.Name,
			Subject: tuple.SubjectRef{Type: sub.Type, ID: id, Relation: sub.Relation}}
		r, found, err := rq.points.ReadRelationship(ctx, k, rq.now)
		if err != nil || !found {
			return err
		}
		cv, err := rq.caveat(&r)
		if err != nil {
			return err
		}
		*acc = or(*acc, cv)
		return nil
	}
	srel := sub.Relation
	if srel == "" {
		srel = tuple.Ellipsis
	}
	fl := tuple.Filter{ResourceType: f.rel.Definition.Name, ResourceID: f.id, Relation: f.rel.Name,
		Subject: &tuple.SubjectFilter{Type: sub.Type, ID: id, Relation: srel}}
	rels, err := rq.queryScratch(ctx, fl, 0)
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
// dependencies of the others are merged into acc. Subject sets of one kind
// are read up to the planner's probe; past it, when their target is pure,
// they are decided from the subject's side instead (usersetFromSubject),
// into acc. With read, all is every relationship of f's relation, read by
// narrowRead: no more of any kind than the probe reads, and never wide by
// the statistics, so that each kind is walked from the resource.
func (rq *request) subjectSetBranches(ctx context.Context, f *frame, sub tuple.SubjectRef, acc *result, all []tuple.Relationship, read bool) ([]fanBranch, error) {
	rel := f.rel
	var branches []fanBranch
	for _, us := range rq.e.an.direct[rel.Index].usersets {
		if !rq.e.an.canContain(us.target, sub.Type, sub.Relation) {
			continue
		}
		fl := tuple.Filter{ResourceType: rel.Definition.Name, ResourceID: f.id, Relation: rel.Name,
			Subject: &tuple.SubjectFilter{Type: us.typ, Relation: us.rel}}
		var rels []tuple.Relationship
		var err error
		if read {
			rels = all
		} else if probe := rq.e.arrowProbe; probe > 0 && rq.e.an.pure[us.target.Index] {
			switch rq.statsPlan(fl.ResourceType, fl.Relation, sub) {
			case statsSubject:
				res, ok, err := rq.usersetFromSubject(ctx, f, us, sub, PlanSubjectSetsSubjectStats)
				if err != nil {
					return nil, err
				}
				if ok {
					*acc = or(*acc, res)
					continue
				}
			case statsResource:
				rq.count(PlanResourceStats)
			default:
				// Scratch: used up below or dropped.
				if rels, err = rq.queryScratch(ctx, fl, probe+1); err != nil {
					return nil, err
				}
				if len(rels) > probe {
					res, ok, err := rq.usersetFromSubject(ctx, f, us, sub, PlanSubjectSetsSubjectProbe)
					if err != nil {
						return nil, err
					}
					if ok {
						*acc = or(*acc, res)
						continue
					}
					rels = nil // read them all below
				}
			}
		}
		if rels == nil && !read {
			if rels, err = rq.queryScratch(ctx, fl, 0); err != nil {
				return nil, err
			}
		}
		if branches == nil {
			branches = rq.takeBranches(len(rels))
		}
		for i := range rels {
			r := &rels[i]
			if r.Subject == sub || r.Subject.ID == tuple.Wildcard {
				continue // counted by the point reads
			}
			if read && (r.Subject.Type != us.typ || r.Subject.Relation != us.rel) {
				continue // another kind
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

// usersetFromSubject decides the subject sets us.typ:X#us.rel of f's
// relation from the subject's side, as arrowFromSubject does for an arrow:
// one walk up from sub over us's target, then a point read of f's
// relationship to each subject set the walk found. The subject set sub
// itself and wildcards are left to directPoints. ok is false when the
// walk gave up or a grant lies beyond the depth limit.
func (rq *request) usersetFromSubject(ctx context.Context, f *frame, us userset, sub tuple.SubjectRef, p Plan) (res result, ok bool, err error) {
	m, ok := rq.reverseMembers(ctx, us.target, sub)
	if !ok {
		return result{}, false, nil
	}
	res, _, ok, err = rq.grantsVia(ctx, f, m, resNo, func(id string) (tuple.Filter, bool) {
		set := tuple.SubjectRef{Type: us.typ, ID: id, Relation: us.rel}
		// The subject set sub itself and wildcards are counted by the
		// point reads.
		return tuple.Filter{ResourceType: f.rel.Definition.Name, ResourceID: f.id, Relation: f.rel.Name,
			Subject: &tuple.SubjectFilter{Type: us.typ, ID: id, Relation: us.rel}}, id != tuple.Wildcard && set != sub
	})
	if ok {
		rq.planned(f, p)
	}
	return res, ok, err
}

// grantsVia folds into acc what the objects a walk up from the subject
// found (m) grant on f's object: for each member id that read(id) admits,
// one point read of f's relationship to it, the member checked one frame
// below f. It is the shared tail of arrowFromSubject and
// usersetFromSubject. done is true once acc is a plain yes; ok is false
// when a grant lies beyond the depth limit (the caller then evaluates
// top-down).
func (rq *request) grantsVia(ctx context.Context, f *frame, m *revSet, acc result, read func(id string) (tuple.Filter, bool)) (res result, done, ok bool, err error) {
	acc.deps(result{expires: m.expires, cut: noCut})
	for _, id := range slices.Sorted(maps.Keys(m.ids)) {
		fl, admit := read(id)
		if !admit {
			continue
		}
		in, known := m.member(id, f.depth+1, rq.e.opts.MaxDepth)
		if !in {
			continue
		}
		rels, err := rq.queryScratch(ctx, fl, 0)
		if err != nil {
			return result{}, false, false, err
		}
		if len(rels) > 0 && !known {
			return result{}, false, false, nil
		}
		t := resYes
		t.h = m.ids[id].h
		for i := range rels {
			cv, err := rq.caveat(&rels[i])
			if err != nil {
				return result{}, false, false, err
			}
			if acc = or(acc, and(cv, t)); acc.perm == HasPermission {
				return acc, true, true, nil
			}
		}
	}
	return acc, false, true, nil
}
