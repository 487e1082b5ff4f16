package eval

import (
	"cmp"
	"context"
	"maps"
	"slices"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Recursive arrows read the nested-group index too. A permission
//
//	permission manage = admin + parent->manage + enterprise->administer
//
// on definition T, whose tupleset parent names plain objects of T (no
// caveats, expirations or wildcards), holds on x exactly when its other
// branches (its base: admin + enterprise->administer) hold on x or on an
// object y above x by parent edges. The index keeps the closure of the
// parent edges as it keeps a self-nesting relation's (nested.go): rows
//
//	T:x#~parent@T:y#~k
//
// for every ancestor y of x at shortest distance k, with the same marker
// and stale rows, written by the same code (engine/nested.go: the edges
// T:x#parent@T:y are those of one relation, as T:x#member@T:y#member
// are). A check of manage on x then reads x's ancestors with one range
// read and evaluates the base on x and on each ancestor, nearest first,
// instead of dispatching manage once per level.
//
// The answer is the walk's: the base of y is evaluated in a frame as
// deep as the walk's shortest path to y puts it, so a grant counts within
// the depth limit exactly when the walk finds it; a "no" (or a
// conditional answer) is given only when every path the walk could take,
// at most one level per ancestor, fits the limit with the deepest base
// below it, and otherwise, as on any error, the walk decides.

// NestedArrow is a permission whose recursion over a tupleset the index
// answers (see NestedArrows).
type NestedArrow struct {
	// Permission is p, a union holding Parent->p.
	Permission *schema.Relation
	// Parent is the tupleset relation; its closure is indexed.
	Parent *schema.Relation
	// Base are the union's other operands (nested unions flattened),
	// none of which can reach Permission.
	Base []*schema.Rewrite
}

// NestedArrows returns the permissions of s whose recursion the index
// answers: a permission p on T whose rewrite is a union (possibly nested)
// of operands among which the only ones that can reach p are arrows
// parent->p (any, not all), where parent is a relation of T, not renamed,
// whose allowed subjects are all plain objects without caveats or
// expirations, T among them, and p exists on no other type parent allows.
func NestedArrows(s *schema.Schema) []NestedArrow {
	var out []NestedArrow
	for _, typ := range slices.Sorted(maps.Keys(s.Definitions)) {
		for _, p := range s.Definitions[typ].Ordered {
			if na, ok := nestedArrowOf(p); ok {
				out = append(out, na)
			}
		}
	}
	return out
}

// nestedArrowOf returns p's NestedArrow when p has the shape.
func nestedArrowOf(p *schema.Relation) (NestedArrow, bool) {
	if !p.IsPermission || p.Rewrite == nil || p.Rewrite.Kind != schema.RewriteUnion {
		return NestedArrow{}, false
	}
	var ops []*schema.Rewrite
	var flatten func(w *schema.Rewrite)
	flatten = func(w *schema.Rewrite) {
		if w.Kind == schema.RewriteUnion {
			for _, c := range w.Children {
				flatten(c)
			}
			return
		}
		ops = append(ops, w)
	}
	flatten(p.Rewrite)
	na := NestedArrow{Permission: p}
	for _, w := range ops {
		if w.Kind == schema.RewriteArrow && !w.ArrowAll && w.TargetName == p.Name && w.Targets[p.Definition.Name] == p {
			if len(w.Targets) != 1 || (na.Parent != nil && na.Parent != w.Relation) {
				// p on another type the tupleset names (the recursion
				// leaves T), or two tuplesets: no one closure.
				return NestedArrow{}, false
			}
			na.Parent = w.Relation
			continue
		}
		na.Base = append(na.Base, w)
	}
	if na.Parent == nil || !indexedTupleset(na.Parent, p) {
		return NestedArrow{}, false
	}
	for _, w := range na.Base {
		if reaches(w, p) {
			return NestedArrow{}, false
		}
	}
	return na, true
}

// indexedTupleset reports whether rel's edges can be indexed for the
// recursion of p: plain objects only, unconditional, its own type among
// them, and no other of them with p (whose recursion would leave T).
func indexedTupleset(rel, p *schema.Relation) bool {
	if rel.IsPermission || rel.RenamedFrom != "" || rel.Definition != p.Definition {
		return false
	}
	own := false
	for _, a := range rel.Allowed {
		if a.Relation != "" || a.Wildcard || a.Caveat != nil || a.Expiration {
			return false
		}
		if a.Type == rel.Definition.Name {
			own = true
		}
	}
	return own
}

// reaches reports whether evaluating w can evaluate p.
func reaches(w *schema.Rewrite, p *schema.Relation) bool {
	var start []*schema.Relation
	var walk func(w *schema.Rewrite)
	walk = func(w *schema.Rewrite) {
		if w == nil {
			return
		}
		if w.Relation != nil {
			start = append(start, w.Relation)
		}
		if w.Kind == schema.RewriteArrow {
			start = appendArrowTargets(start, w)
		}
		for _, c := range w.Children {
			walk(c)
		}
	}
	walk(w)
	seen := map[*schema.Relation]bool{}
	for len(start) > 0 {
		r := start[len(start)-1]
		start = start[:len(start)-1]
		if r == p {
			return true
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		start = append(start, allReferences(r)...)
	}
	return false
}

// newNestedArrows returns, by relation index, the permissions a check
// answers from the index (nil entries: walked).
func newNestedArrows(s *schema.Schema, on bool) []*NestedArrow {
	if !on {
		return nil
	}
	out := make([]*NestedArrow, s.NumRelations)
	for _, na := range NestedArrows(s) {
		out[na.Permission.Index] = &na
	}
	return out
}

// nestedArrowCheck answers f's permission, when it is a NestedArrow and
// the index of its tupleset is complete at the request's revision, with
// the base evaluated on f's object and then on each of its ancestors. The
// result is the rewrite's (compute adds this relation's height). ok is
// false when the walk must decide: contextual relationships that could
// add parent edges, a subject set of the permission itself (in itself
// without a step, which the base does not see), a store error, an error
// of the base, an ancestor too deep to evaluate without a grant found, or
// a "no" that the walk could not give within the depth limit.
func (rq *request) nestedArrowCheck(ctx context.Context, f *frame, sub tuple.SubjectRef) (result, bool) {
	if rq.e.nestedArrows == nil {
		return result{}, false
	}
	na := rq.e.nestedArrows[f.rel.Index]
	if na == nil || (rq.uncached != nil && rq.uncached[na.Parent.Index]) {
		return result{}, false
	}
	typ := f.rel.Definition.Name
	if sub.Type == typ && sub.Relation == f.rel.Name {
		return result{}, false
	}
	ready, gen := rq.nestedGen(ctx, na.Parent)
	if !ready {
		return result{}, false
	}
	limit := rq.e.opts.MaxDepth
	// The base on f's object first, as the walk would: a grant there
	// needs no ancestor.
	acc, err := rq.nestedBase(ctx, f, na, sub)
	if err != nil {
		return result{}, false
	}
	if acc.perm == HasPermission {
		rq.e.nestedArrowAnswers.Add(1)
		return acc, true
	}
	hBase := acc.h // the highest base evaluated
	type ancestor struct {
		id string
		k  int
	}
	var anc []ancestor
	if mem := rq.closureIndex(na.Parent, gen, 1); mem != nil {
		mem.Each(f.id, func(id string, k int) { anc = append(anc, ancestor{id: id, k: k}) })
	} else {
		rows, err := rq.query(ctx, tuple.Filter{ResourceType: typ, ResourceID: f.id, Relation: NestedClosureRelation(na.Parent.Name),
			Subject: &tuple.SubjectFilter{Type: typ}})
		if err != nil {
			return result{}, false
		}
		anc = make([]ancestor, 0, len(rows))
		for i := range rows {
			if k, ok := NestedDistance(&rows[i]); ok {
				anc = append(anc, ancestor{id: rows[i].Subject.ID, k: k})
			}
		}
	}
	slices.SortFunc(anc, func(a, b ancestor) int { return cmp.Or(cmp.Compare(a.k, b.k), cmp.Compare(a.id, b.id)) })
	sides := rq.baseSides(ctx, na, sub)
	for _, a := range anc {
		depth := f.depth + int32(a.k)
		if int(depth) > limit {
			// The walk's frame of p on a.id fails on the depth: no
			// grant from here on counts, and a "no" is the walk's to
			// give (or fail).
			return result{}, false
		}
		r, err := rq.ancestorBase(ctx, f, na, sides, a.id, depth, sub)
		if err != nil {
			// The error names a path that lacks the levels between f
			// and the ancestor: the walk fails with its own.
			return result{}, false
		}
		hBase = max(hBase, r.h)
		r.h += int32(a.k)
		if acc = or(acc, r); acc.perm == HasPermission {
			rq.e.nestedArrowAnswers.Add(1)
			return acc, true
		}
	}
	// Every base was ruled out (or is conditional): the walk would have
	// followed paths of up to one level per ancestor, each ending in a
	// base at most hBase high.
	acc.h = int32(len(anc)) + hBase
	if !acc.fits(f.depth, limit-1) {
		return result{}, false
	}
	rq.e.nestedArrowAnswers.Add(1)
	return acc, true
}

// nestedBase evaluates the base of na on f's object, stopping at the
// first grant.
func (rq *request) nestedBase(ctx context.Context, f *frame, na *NestedArrow, sub tuple.SubjectRef) (result, error) {
	return rq.fold(ctx, fold{op: disjunction, n: len(na.Base), f: f, sub: sub, rewrites: na.Base})
}

// baseSide is how an operand of a base is decided on the ancestors:
// from the walk up from the subject, shared by every ancestor, or (nil)
// by evaluating the operand on each.
type baseSide struct {
	// none: the operand cannot contain the subject at all.
	none bool
	// m is the walk up over a pure computed relation.
	m *revSet
	// arrows are the walks up over a plain arrow's pure targets.
	arrows []arrowSide
}

// arrowSide is the walk up from the subject over an arrow's target on
// one type, with the objects it found in order.
type arrowSide struct {
	typ string
	m   *revSet
	ids []string
}

// baseSides plans na's base operands for sub once per check: an operand
// that the walk up from sub decides (a pure computed relation, or a plain
// arrow to pure targets, as the planner's arrowFromSubject) reads that
// walk, which the request keeps (reverseMembers), on every ancestor,
// instead of dispatching a check per ancestor.
func (rq *request) baseSides(ctx context.Context, na *NestedArrow, sub tuple.SubjectRef) []*baseSide {
	out := make([]*baseSide, len(na.Base))
	for i, w := range na.Base {
		switch {
		case w.Kind == schema.RewriteComputed && rq.e.an.pure[w.Relation.Index]:
			if !rq.e.an.canContain(w.Relation, sub.Type, sub.Relation) {
				out[i] = &baseSide{none: true}
				continue
			}
			if m, ok := rq.reverseMembers(ctx, w.Relation, sub); ok {
				out[i] = &baseSide{m: m}
			}
		case w.Kind == schema.RewriteArrow && !w.ArrowAll && rq.arrowTargetsPure(w, sub):
			side := &baseSide{}
			for _, typ := range slices.Sorted(maps.Keys(w.Targets)) {
				target := w.Targets[typ]
				if !rq.e.an.canContain(target, sub.Type, sub.Relation) {
					continue
				}
				m, ok := rq.reverseMembers(ctx, target, sub)
				if !ok {
					side = nil
					break
				}
				side.arrows = append(side.arrows, arrowSide{typ: typ, m: m, ids: slices.Sorted(maps.Keys(m.ids))})
			}
			if side != nil {
				out[i] = side
			}
		}
	}
	return out
}

// ancestorBase evaluates the base of na on ancestor id, whose frame of
// the permission would lie at depth, below f, stopping at the first
// grant: the operands sides decides read their walks up (and, for an
// arrow, the tupleset relationship to each object found); the others are
// evaluated in a frame at that depth.
func (rq *request) ancestorBase(ctx context.Context, f *frame, na *NestedArrow, sides []*baseSide, id string, depth int32, sub tuple.SubjectRef) (result, error) {
	var fy *frame
	limit := rq.e.opts.MaxDepth
	acc := resNo
	for i, w := range na.Base {
		res, ok, err := rq.sideResult(ctx, sides[i], f.rel.Definition.Name, w, id, depth, limit)
		if err != nil {
			return result{}, err
		}
		if !ok {
			if fy == nil {
				fy = &frame{parent: f, rel: f.rel, id: id, depth: depth, seq: rq.seq.Add(1), st: f.st, local: f.local, pinned: f.pinned}
			}
			if res, err = rq.rewrite(ctx, fy, w, sub); err != nil {
				return result{}, err
			}
		}
		if acc = or(acc, res); acc.perm == HasPermission {
			break
		}
	}
	return acc, nil
}

// sideResult decides operand w on object id of type typ, whose
// permission frame lies at depth, from side; ok is false when side is
// nil or a grant lies beyond the depth limit (the operand is then
// evaluated in a frame).
func (rq *request) sideResult(ctx context.Context, side *baseSide, typ string, w *schema.Rewrite, id string, depth int32, limit int) (result, bool, error) {
	switch {
	case side == nil:
		return result{}, false, nil
	case side.none:
		return resNo, true, nil
	case side.m != nil:
		// As directFromSubject, for the computed relation's frame.
		in, known := side.m.member(id, depth+1, limit)
		if !known {
			return result{}, false, nil
		}
		res := resNo
		res.h = 1
		if in {
			res = resYes
			res.h = side.m.ids[id].h
		}
		res.expires = side.m.expires
		return res, true, nil
	}
	// As grantsVia: a read of the tupleset relationships to each object
	// whose target holds the subject.
	acc := resNo
	for _, as := range side.arrows {
		acc.deps(result{expires: as.m.expires, cut: noCut})
		for _, x := range as.ids {
			if x == tuple.Wildcard {
				continue
			}
			in, known := as.m.member(x, depth+1, limit)
			if !in {
				continue
			}
			// Arrows follow the subject object whatever its relation.
			rels, err := rq.query(ctx, tuple.Filter{ResourceType: typ, ResourceID: id, Relation: w.Relation.Name,
				Subject: &tuple.SubjectFilter{Type: as.typ, ID: x}})
			if err != nil {
				return result{}, false, err
			}
			if len(rels) > 0 && !known {
				return result{}, false, nil
			}
			t := resYes
			t.h = as.m.ids[x].h
			for i := range rels {
				cv, err := rq.caveat(&rels[i])
				if err != nil {
					return result{}, false, err
				}
				if acc = or(acc, and(cv, t)); acc.perm == HasPermission {
					return acc, true, nil
				}
			}
		}
	}
	return acc, true, nil
}
