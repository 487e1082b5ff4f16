package eval

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Streamed LookupResources of a recursive arrow. A NestedArrow permission
// p on T (manage = admin + parent->manage) holds on x exactly when its
// base holds on x or on an ancestor of x, so its answers are the base's
// objects B and every descendant of each. The base alone is a permission
// that streams (streamplan.go: its leaves, scanned and merged), and the
// index's closure rows T:d#~parent@T:y#~k, read in reverse from y, name
// every descendant d of y with its distance k. The reverse index orders
// them by distance before the resource, so the rows of one distance are
// one scan sorted by resource ID: the lookup reads B (held, as the
// intermediate sets of streamplan.go are), then merges one fixed scan per
// object of B with one closure scan per object y of B and distance k,
// each starting strictly after the cursor, and yields each resource as
// the merge reads it. What it holds is B and the open scans, whatever the
// size of the answer.
//
// The distances below y are contiguous (the node at distance j on a
// shortest path from d up to y is at distance j from y), so the scans of
// y are those of k = 1, 2, ... up to the first distance with no row,
// found by a one-row probe per distance. A descendant is certain when y
// is and y's height plus k is within the depth limit, as the walk's
// shortest path would be; when y has descendants beyond that (a probe
// finds a row at the first distance past it), the walk decides, as it
// would any path that deep. A candidate the base does not certainly
// grant is decided by Check. The plan is taken only at a revision where
// the index is complete and when no contextual relationship reaches the
// tupleset (Check's rule, nestedArrowCheck), for a subject that is not a
// subject set of p itself (which is in itself without the base), and
// when B and the scans fit maxStreamScans; otherwise the lookup is
// walked.

// streamArrowResources is LookupResources of a NestedArrow permission by
// the plan above. It reports false, having yielded nothing, when the plan
// does not apply.
func (rq *request) streamArrowResources(ctx context.Context, req LookupResourcesRequest, goal *schema.Relation, yield func(ResourceResult, error) bool) bool {
	if rq.e.nestedArrows == nil {
		return false
	}
	na := rq.e.nestedArrows[goal.Index]
	sub := req.Subject
	typ := req.ResourceType
	if na == nil || (sub.Type == typ && sub.Relation == goal.Name) || (rq.uncached != nil && rq.uncached[na.Parent.Index]) {
		return false
	}
	if !rq.nestedReady(ctx, na.Parent) {
		return false
	}
	leaves, ok := rq.e.streamLeavesOf(goal, na.Base, sub)
	if !ok {
		return false
	}
	w, ok, err := rq.intermediates(ctx, typ, sub, leaves)
	if err != nil {
		yield(ResourceResult{}, err)
		return true
	}
	if !ok || leafScanCount(leaves, w) > maxStreamScans {
		return false
	}
	base, ok, err := rq.arrowBase(ctx, typ, leaves, w)
	if err != nil {
		yield(ResourceResult{}, err)
		return true
	}
	if !ok {
		return false
	}
	// The distances below each base object, probed before any scan is
	// opened: a base too deep, or too many scans, is walked. A base
	// object below another that is scanned and at least as certain
	// needs no scans of its own: its descendants are the other's, all
	// within the depth limit from there.
	maxDepth := int32(rq.e.opts.MaxDepth)
	closureRel := NestedClosureRelation(na.Parent.Name)
	anc, err := rq.baseAncestors(ctx, typ, closureRel, base)
	if err != nil {
		yield(ResourceResult{}, err)
		return true
	}
	// The certain ones first, then those with fewer ancestors among
	// the base (the roots of its trees), so that a base object is
	// covered by one already scanned, even in a cycle.
	order := make([]int, len(base))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		if base[i].certain != base[j].certain {
			if base[i].certain {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(len(anc[i]), len(anc[j])), strings.Compare(base[i].id, base[j].id))
	})
	depths := make([]int, len(base))
	scanned := make([]bool, len(base))
	n := 0
	for _, i := range order {
		b := base[i]
		if slices.ContainsFunc(anc[i], func(a int) bool { return scanned[a] && (base[a].certain || !b.certain) }) {
			continue
		}
		scanned[i] = true
		for k := 1; ; k++ {
			found, err := rq.closureAt(ctx, typ, closureRel, b.id, k)
			if err != nil {
				yield(ResourceResult{}, err)
				return true
			}
			if !found {
				break
			}
			if b.h+int32(k) > maxDepth {
				return false
			}
			depths[i] = k
		}
		n += depths[i]
		if n > maxStreamScans {
			return false
		}
	}
	if err := rq.mem.charge(int64(n)*streamScanBytes + int64(len(base))*walkNodeBytes); err != nil {
		yield(ResourceResult{}, err)
		return true
	}
	rq.e.streamed.Add(1)
	rq.e.streamedArrows.Add(1)
	if w != nil {
		rq.e.streamedWalks.Add(1)
	}
	resID := func(r *tuple.Relationship) string { return r.Resource.ID }
	scans := make([]*scan, 0, len(base)+n)
	for i, b := range base {
		if req.After == "" || b.id > req.After {
			scans = append(scans, &scan{fixed: b.id, certain: b.certain})
		}
		for k := 1; k <= depths[i]; k++ {
			s := tuple.SubjectRef{Type: typ, ID: b.id, Relation: tuple.ReservedPrefix + strconv.Itoa(k)}
			opts := store.QueryOptions{}
			if req.After != "" {
				opts.After = &tuple.Key{Resource: tuple.ObjectRef{Type: typ, ID: req.After}, Relation: closureRel, Subject: s}
			}
			f := tuple.ReverseFilter{Subject: tuple.SubjectFilter(s), ResourceType: typ, Relation: closureRel}
			sc := newScan(rq.reader.ReverseQueryRelationships(ctx, f, opts), resID)
			// Within the depth limit (probed above): as certain as y.
			sc.certain = b.certain
			scans = append(scans, sc)
		}
	}
	rq.e.nestedLookups.Add(1)
	answers(ctx, rq, scans, "", req.After, req.Limit, 0, false, func(ctx context.Context, rq *request, id string, _ bool) (CheckResult, error) {
		r, err := rq.check(ctx, nil, goal, id, sub)
		return r.checkResult(), err
	}, resourceResult, yield)
	return true
}

// baseObject is an object on which a NestedArrow's base may hold: certain
// when a relationship certainly grants it, at height h (the relations on
// the shortest such path, the permission's included).
type baseObject struct {
	id      string
	certain bool
	h       int32
}

// arrowBase reads every scan of leaves (the base's) to its end and
// returns the objects they name in ID order, each with its best path
// (certain first, then the lowest). It reports false when there are more
// than maxStreamScans of them (the walk holds as many).
func (rq *request) arrowBase(ctx context.Context, typ string, leaves []streamLeaf, w *reverseWalk) ([]baseObject, bool, error) {
	scans, heights := rq.leafScans(ctx, typ, "", leaves, w)
	defer func() {
		for _, s := range scans {
			s.close()
		}
	}()
	best := map[string]baseObject{}
	for i, s := range scans {
		for {
			if err := s.advance(); err != nil {
				return nil, false, err
			}
			if !s.ok {
				break
			}
			o := baseObject{id: s.key, certain: s.certain && (s.next == nil || s.cur.Caveat == nil), h: heights[i]}
			old, seen := best[o.id]
			if seen && (old.certain && !o.certain || old.certain == o.certain && old.h <= o.h) {
				continue
			}
			best[o.id] = o
			if len(best) > maxStreamScans {
				return nil, false, nil
			}
		}
	}
	out := make([]baseObject, 0, len(best))
	for _, o := range best {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b baseObject) int { return strings.Compare(a.id, b.id) })
	return out, true, nil
}

// closureAt reports whether some object of typ lies below id at distance
// k by the closure rows of relation closureRel.
func (rq *request) closureAt(ctx context.Context, typ, closureRel, id string, k int) (bool, error) {
	f := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: typ, ID: id, Relation: tuple.ReservedPrefix + strconv.Itoa(k)}, ResourceType: typ, Relation: closureRel}
	for _, err := range rq.reader.ReverseQueryRelationships(ctx, f, store.QueryOptions{Limit: 1}) {
		return err == nil, err
	}
	return false, nil
}

// baseAncestors returns, for each object of base (sorted by ID), the
// indexes of the others that are its ancestors (one read of its closure
// rows each; none when base has one object).
func (rq *request) baseAncestors(ctx context.Context, typ, closureRel string, base []baseObject) ([][]int, error) {
	out := make([][]int, len(base))
	if len(base) < 2 {
		return out, nil
	}
	for i, b := range base {
		rows, err := rq.query(ctx, tuple.Filter{ResourceType: typ, ResourceID: b.id, Relation: closureRel, Subject: &tuple.SubjectFilter{Type: typ}})
		if err != nil {
			return nil, err
		}
		for r := range rows {
			if _, ok := NestedDistance(&rows[r]); !ok {
				continue
			}
			if j, found := slices.BinarySearchFunc(base, rows[r].Subject.ID, func(o baseObject, id string) int { return strings.Compare(o.id, id) }); found {
				out[i] = append(out[i], j)
			}
		}
	}
	return out, nil
}
