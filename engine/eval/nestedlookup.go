package eval

import (
	"context"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// The lookups' walks read the nested-group index (nested.go) wherever
// they meet an indexed relation at a revision where its rows are
// complete, instead of following its subject-set edges one level at a
// time:
//
//   - LookupSubjects' forward walk (forwardWalk), reading T:x#r at depth
//     d, reads the closure rows of x (one range read): every member set
//     T:y#r at distance k is a node of the walk at depth d+k, whose own
//     relationships (the subjects it names directly) it reads as if it
//     had walked there, without the levels in between.
//   - The same walk, reading a recursive arrow's permission p on x at
//     depth d (a NestedArrow, nestedarrow.go), walks p's base on x and
//     reads the closure rows of x's tupleset: every ancestor y at
//     distance k is the node p on y at depth d+k, whose base it walks,
//     instead of following the tupleset's relationships level by level.
//   - The reverse walk up from a subject (LookupResources, and the
//     planner's walks up), reaching T:y#r at height h, reads the closure
//     rows naming y (one reverse range read): every T:x#r holding T:y#r
//     at distance k is reached at height h+k, exact when T:y#r was (the
//     indexed edges carry no caveat), instead of a reverse read per
//     level.
//
// Depths and heights are those of the shortest path, as the walks'
// breadth-first order gives them, so the depth limit decides the same
// requests (a subject met only deeper than the limit is left to Check).
// The index jumps ahead of that order, so the walks allow a node to be
// reached again by a shorter path (forwardWalk's push, reverseWalk's
// reach). No walk (nor Check) reads the index of a relation that the
// call's contextual relationships add edges to (the rows do not have
// them), nor at a revision without the marker.

// nestedUsable reports whether this request reads the index of rel: it
// is indexed, complete at the request's revision, and no contextual
// relationship of the call is an edge of it (T:x#r@T:y#r, which the rows
// do not follow; other contextual relationships of rel, plain members,
// are read through the overlay like stored ones).
func (rq *request) nestedUsable(ctx context.Context, rel *schema.Relation) bool {
	return rq.e.nested[rel.Index] && (rq.nestedEdges == nil || !rq.nestedEdges[rel.Index]) && rq.nestedReady(ctx, rel)
}

// contextualEdges marks, by relation index, the indexed relations that
// rels holds edges of; nil when none.
func (e *Evaluator) contextualEdges(rels []tuple.Relationship) []bool {
	var out []bool
	for i := range rels {
		r := &rels[i]
		if r.Subject.Type != r.Resource.Type || r.Subject.Relation != r.Relation {
			continue
		}
		rel, err := e.resolve(r.Resource.Type, r.Relation)
		if err != nil || !e.nested[rel.Index] {
			continue
		}
		if out == nil {
			out = make([]bool, len(e.nested))
		}
		out[rel.Index] = true
	}
	return out
}

// nestedNode is a node of a walk on an indexed relation.
type nestedNode struct {
	rel int
	id  string
}

// nestedForward is forwardWalk's use of the index: for every node of an
// indexed relation it has queued or covered, the smallest depth at which
// its relationships were (or will be) read.
type nestedForward struct {
	rq     *request
	usable map[int]bool
	best   map[nestedNode]int32
	used   bool
}

// newNestedForward returns forwardWalk's use of the index; it allocates
// nothing until the walk meets an indexed relation.
func newNestedForward(rq *request) nestedForward {
	return nestedForward{rq: rq}
}

// on reports, once per walk and relation, whether rel's index is read:
// that of an indexed relation, or that of the tupleset of a recursive
// arrow rel (a NestedArrow permission, whose index Check reads at the
// same requests: nestedArrowCheck).
func (nf *nestedForward) on(ctx context.Context, rel *schema.Relation) bool {
	na := nf.rq.nestedArrowOf(rel)
	if !nf.rq.e.nested[rel.Index] && na == nil {
		return false
	}
	if nf.usable == nil {
		nf.usable, nf.best = map[int]bool{}, map[nestedNode]int32{}
	}
	ok, seen := nf.usable[rel.Index]
	if !seen {
		if na != nil {
			ok = nf.rq.arrowClosureUsable(ctx, na)
		} else {
			ok = nf.rq.nestedUsable(ctx, rel)
		}
		nf.usable[rel.Index] = ok
	}
	return ok
}

// arrow returns rel's NestedArrow when the walk reads its tupleset's
// closure (on), nil otherwise.
func (nf *nestedForward) arrow(ctx context.Context, rel *schema.Relation) *NestedArrow {
	na := nf.rq.nestedArrowOf(rel)
	if na == nil || !nf.on(ctx, rel) {
		return nil
	}
	return na
}

// arrowClosureUsable reports whether this request reads the closure of
// na's tupleset: complete at the request's revision, and no contextual
// relationship reaches the tupleset (Check's rule, nestedArrowCheck).
func (rq *request) arrowClosureUsable(ctx context.Context, na *NestedArrow) bool {
	return (rq.uncached == nil || !rq.uncached[na.Parent.Index]) && rq.nestedReady(ctx, na.Parent)
}

// arrowAncestors reads the closure rows of na's tupleset on id and calls
// visit with each ancestor of id and its distance.
func (rq *request) arrowAncestors(ctx context.Context, na *NestedArrow, id string, visit func(y string, k int32)) error {
	typ := na.Permission.Definition.Name
	rows, err := rq.query(ctx, tuple.Filter{ResourceType: typ, ResourceID: id, Relation: NestedClosureRelation(na.Parent.Name), Subject: &tuple.SubjectFilter{Type: typ}})
	if err != nil {
		return err
	}
	rq.e.nestedArrowWalks.Add(1)
	for i := range rows {
		if k, ok := NestedDistance(&rows[i]); ok {
			visit(rows[i].Subject.ID, int32(k))
		}
	}
	return nil
}

// nestedArrowOf returns rel's NestedArrow when the index is on, nil
// otherwise.
func (rq *request) nestedArrowOf(rel *schema.Relation) *NestedArrow {
	if rq.e.nestedArrows == nil {
		return nil
	}
	return rq.e.nestedArrows[rel.Index]
}

// queue reports whether the walk queues rel of id at depth d: always for
// a node not seen yet (first is true), and again for one of an indexed
// relation that a closure covered only at a greater depth.
func (nf *nestedForward) queue(ctx context.Context, rel *schema.Relation, id string, d int32, first bool) bool {
	if !nf.on(ctx, rel) {
		return first
	}
	k := nestedNode{rel.Index, id}
	if old, ok := nf.best[k]; ok && old <= d {
		return false
	}
	nf.best[k] = d
	return true
}

// cover reads the closure rows of rel on id, a node the walk reads at
// depth d, and calls visit for each member set T:y#r whose depth d+k is
// smaller than any the walk has queued or covered it at; for a recursive
// arrow rel, the rows of its tupleset, each ancestor T:y at distance k
// being the node rel on y at depth d+k. It reports false, having read
// nothing, when rel's index is not read.
func (nf *nestedForward) cover(ctx context.Context, rel *schema.Relation, id string, d int32, visit func(id string, d int32) error) (bool, error) {
	if !nf.on(ctx, rel) {
		return false, nil
	}
	typ, closed := rel.Definition.Name, rel.Name
	if na := nf.rq.nestedArrowOf(rel); na != nil {
		closed = na.Parent.Name
		nf.rq.e.nestedArrowWalks.Add(1)
	}
	rows, err := nf.rq.query(ctx, tuple.Filter{ResourceType: typ, ResourceID: id, Relation: NestedClosureRelation(closed), Subject: &tuple.SubjectFilter{Type: typ}})
	if err != nil {
		return true, err
	}
	if !nf.used {
		nf.used = true
		nf.rq.e.nestedLookups.Add(1)
	}
	// Every depth is recorded before any member set is read, so that
	// the subject sets read (the edges between member sets) are known
	// to be covered and are not queued.
	type member struct {
		id string
		d  int32
	}
	todo := make([]member, 0, len(rows))
	for i := range rows {
		k, ok := NestedDistance(&rows[i])
		if !ok {
			continue
		}
		y, dy := rows[i].Subject.ID, d+int32(k)
		if old, ok := nf.best[nestedNode{rel.Index, y}]; ok && old <= dy {
			continue
		}
		nf.best[nestedNode{rel.Index, y}] = dy
		todo = append(todo, member{y, dy})
	}
	for _, m := range todo {
		if err := visit(m.id, m.d); err != nil {
			return true, err
		}
	}
	return true, nil
}

// nestedLeafFilter returns the subjects a forward walk for subjects
// (subType, subRel) reads on a member set of indexed relation rel that a
// closure covered: those of the kind asked for, or none (nil) when they
// are rel's own subject sets, the member sets themselves (each is in
// itself one step shallower than any edge naming it).
func nestedLeafFilter(rel *schema.Relation, subType, subRel string) *tuple.SubjectFilter {
	if subRel == rel.Name && subType == rel.Definition.Name {
		return nil
	}
	if subRel == "" {
		subRel = tuple.Ellipsis
	}
	return &tuple.SubjectFilter{Type: subType, Relation: subRel}
}

// nestedRowsAfter is the cursor from which a reverse read of the closure
// rows naming T:y starts: the subject's distance (its relation, "~k") is
// not known, so the filter cannot name it, and a scan from the subject
// alone would first pass every relationship naming T:y or T:y#r (the
// documents a group views, say). Every subject relation below "~" sorts
// before this key in the reverse order (subject type, ID, relation, then
// the resource), and every "~k" after it.
func nestedRowsAfter(typ, id string) *tuple.Key {
	return &tuple.Key{Subject: tuple.SubjectRef{Type: typ, ID: id, Relation: tuple.ReservedPrefix}}
}

// nestedReverse is the reverse walk's use of the index: for every node of
// an indexed relation that a closure read reached, the best value
// (exact first, then the smallest height) it was reached with, so that
// a node whose ancestors a closure read already reached as well is not
// read again.
type nestedReverse struct {
	usable  map[int]bool
	covered map[nestedNode]revVal
}

// better reports whether a is a better value than b for the same node:
// exact beats inexact, and among exact ones the smaller height.
func better(a, b revVal) bool {
	if a.exact != b.exact {
		return a.exact
	}
	return a.exact && a.h < b.h
}

// nestedUp reads, for nd (a node of the walk on an indexed relation), the
// closure rows naming it and reaches every object whose relation holds
// it, at nd's height plus the distance. It reports whether it did (or a
// closure read already reached them as well): then the walk does not
// follow nd's relation's edges into itself.
func (w *reverseWalk) nestedUp(ctx context.Context, nd reverseNode) (bool, error) {
	rel := nd.rel
	if !w.rq.e.nested[rel.Index] {
		return false, nil
	}
	nr := w.nested
	if nr == nil {
		nr = &nestedReverse{usable: map[int]bool{}, covered: map[nestedNode]revVal{}}
		w.nested = nr
	}
	ok, seen := nr.usable[rel.Index]
	if !seen {
		ok = w.rq.nestedUsable(ctx, rel)
		nr.usable[rel.Index] = ok
	}
	if !ok {
		return false, nil
	}
	here := revVal{exact: nd.exact, h: nd.h}
	if c, ok := nr.covered[nestedNode{rel.Index, nd.id}]; ok && !better(here, c) {
		return true, nil // a closure read reached its ancestors at least as well
	}
	if w.memErr != nil {
		return true, w.memErr
	}
	if w.over || (w.budget > 0 && w.reached > w.budget) {
		return true, errBudget
	}
	typ := rel.Definition.Name
	f := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: typ, ID: nd.id}, ResourceType: typ, Relation: NestedClosureRelation(rel.Name)}
	opts := store.QueryOptions{After: nestedRowsAfter(typ, nd.id)}
	var rows []tuple.Relationship
	if b := w.rq.batch; b != nil {
		var err error
		if rows, err = b.AppendReverseRelationships(ctx, w.buf[:0], f, opts); err != nil {
			return true, err
		}
		w.buf = nil // reach below may not call reverse, but keep the rule of reverse
	} else {
		for r, err := range w.rq.reader.ReverseQueryRelationships(ctx, f, opts) {
			if err != nil {
				return true, err
			}
			rows = append(rows, r)
		}
	}
	w.rq.e.nestedLookups.Add(1)
	for i := range rows {
		k, ok := NestedDistance(&rows[i])
		if !ok {
			continue
		}
		v := revVal{exact: nd.exact, h: nd.h + int32(k)}
		n := nestedNode{rel.Index, rows[i].Resource.ID}
		if c, ok := nr.covered[n]; !ok || better(v, c) {
			nr.covered[n] = v
		}
		w.reach(rel, n.id, v.exact, v.h)
	}
	if w.rq.batch != nil {
		clear(rows)
		w.buf = rows[:0]
	}
	return true, nil
}
