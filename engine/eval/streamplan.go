package eval

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Streamed LookupResources of any shape. A permission's answers on objects
// of the resource type come, one step down from the type, from three
// kinds of stored relationship: those naming the subject itself (or its
// type's wildcard), those naming a subject set the subject is in
// (doc#viewer@group:eng#member), and an arrow's tupleset relationships
// naming an object on which the arrow's target holds (doc#parent@folder:x
// for parent->view). The objects in between (the groups containing the
// subject, the folders it can view) are usually few, so the lookup first
// computes them with the reverse walk (lookup.go), which holds them, and
// then reads the resources from one sorted reverse scan per intermediate
// object, merged by resource ID as merge does: what it holds is the
// intermediate set and one relationship per scan, whatever the size of
// the answer, and a page starts every scan strictly after the cursor.
//
// The plan (streamLeaves) flattens the permission's rewrite on the
// resource type: computed references and unions are followed; an
// intersection's candidates come from its first child and an exclusion's
// from its base, each then decided by Check (as the walk confirms them);
// an arrow-all's are decided by Check too. A candidate reached by a path
// of unions of uncaveated relationships within the depth limit is certain
// (the walk's rule: revVal), any other is decided by Check.
//
// The walk is taken instead when the plan does not apply: a subject that
// is a wildcard; a rewrite deeper than the depth limit on the resource
// type; an intermediate set whose walk would reach relations of the
// resource type itself (a recursive arrow such as folder#view =
// parent->view, or a nested subject set of the resource type), which
// would hold the answer anyway; or an intermediate set so large that it
// needs more than maxStreamScans scans (each scan is a store iterator).
// A recursive arrow whose tupleset the nested-group index keeps streams
// from the index's closure instead (streamarrow.go).

// maxStreamScans bounds the store scans one streamed lookup holds open;
// a lookup that would need more is walked (lookup.go).
const maxStreamScans = 1024

// streamScanBytes is what one open scan is charged to the memory budget:
// a store iterator and its coroutine (see docs/operations.md).
const streamScanBytes = 16 << 10

// leafKind says where a streamed lookup's leaf reads its resources.
type leafKind uint8

const (
	// leafSubject scans rel for a relationship naming subject.
	leafSubject leafKind = iota
	// leafSet scans rel for subject sets target's type#target's name on
	// each object of target holding the subject.
	leafSet
	// leafArrow scans the tupleset rel for relationships naming (with
	// any of subRels) each object of target holding the subject.
	leafArrow
	// leafSelf is the subject itself, of the resource type: in a
	// permission using self, or a subject set in its own relation.
	leafSelf
)

// streamLeaf is one source of a streamed lookup's candidates.
type streamLeaf struct {
	kind    leafKind
	rel     *schema.Relation
	subject tuple.SubjectRef // leafSubject
	target  *schema.Relation // leafSet, leafArrow
	subRels []string         // leafArrow: the tupleset's subject relations on target's type ("" plain)
	// depth is the relations on the path from the goal to rel, both
	// included: the height of a relationship naming the subject.
	depth int32
	// exact: every step from the goal is a union, computed reference
	// or plain arrow, so an uncaveated relationship is an answer.
	exact bool
}

// streamLeaves flattens goal's rewrite on the resource type into the
// leaves that can yield candidates for sub, and reports whether the plan
// applies (see above).
func (e *Evaluator) streamLeaves(goal *schema.Relation, sub tuple.SubjectRef) ([]streamLeaf, bool) {
	return e.streamLeavesOf(goal, nil, sub)
}

// streamLeavesOf is streamLeaves of goal, or, when base is not nil, of
// the union of the rewrites base on goal's objects (a NestedArrow's base:
// goal's rewrite without its recursion), at goal's depth.
func (e *Evaluator) streamLeavesOf(goal *schema.Relation, base []*schema.Rewrite, sub tuple.SubjectRef) ([]streamLeaf, bool) {
	// seen: the least depth at which a relation was visited, exactly
	// and at all; a later visit no better adds nothing.
	type depths struct{ exact, any int32 }
	seen := map[*schema.Relation]depths{}
	var leaves []streamLeaf
	ok := true
	var visit func(r *schema.Relation, d int32, exact bool)
	var rewrite func(r *schema.Relation, w *schema.Rewrite, d int32, exact bool)
	visit = func(r *schema.Relation, d int32, exact bool) {
		if !ok || r == nil {
			return
		}
		if int(d) > e.opts.MaxDepth {
			ok = false // the walk's candidates and errors there
			return
		}
		old, dup := seen[r]
		if dup && (old.exact <= d || (!exact && old.any <= d)) {
			return
		}
		if !dup {
			old = depths{exact: 1 << 30, any: 1 << 30}
		}
		old.any = min(old.any, d)
		if exact {
			old.exact = min(old.exact, d)
		}
		seen[r] = old
		if sub.Relation != "" && r.Name == sub.Relation && r.Definition.Name == sub.Type {
			// A subject set is in itself, with no relation on the path.
			leaves = append(leaves, streamLeaf{kind: leafSelf, rel: r, subject: sub, depth: d - 1, exact: exact})
		}
		if r.Rewrite != nil {
			rewrite(r, r.Rewrite, d, exact)
			return
		}
		for _, a := range r.Allowed {
			switch {
			case a.Relation != "":
				if a.Target == nil || !e.an.canContain(a.Target, sub.Type, sub.Relation) {
					continue
				}
				leaves = append(leaves, streamLeaf{kind: leafSet, rel: r, target: a.Target, depth: d, exact: exact})
			case sub.Relation != "" || a.Type != sub.Type:
			case a.Wildcard:
				leaves = append(leaves, streamLeaf{kind: leafSubject, rel: r, subject: tuple.SubjectRef{Type: sub.Type, ID: tuple.Wildcard}, depth: d, exact: exact})
			default:
				leaves = append(leaves, streamLeaf{kind: leafSubject, rel: r, subject: sub, depth: d, exact: exact})
			}
		}
	}
	rewrite = func(r *schema.Relation, w *schema.Rewrite, d int32, exact bool) {
		if !ok {
			return
		}
		switch w.Kind {
		case schema.RewriteNil:
		case schema.RewriteComputed:
			visit(w.Relation, d+1, exact)
		case schema.RewriteSelf:
			if sub.Relation == "" && sub.Type == r.Definition.Name {
				leaves = append(leaves, streamLeaf{kind: leafSelf, rel: r, subject: sub, depth: d, exact: exact})
			}
		case schema.RewriteArrow:
			for _, typ := range slices.Sorted(maps.Keys(w.Targets)) {
				t := w.Targets[typ]
				if !e.an.canContain(t, sub.Type, sub.Relation) {
					continue
				}
				var subRels []string
				eachArrowSubjectRel(w.Relation, typ, func(srel string) {
					if srel == tuple.Ellipsis {
						srel = ""
					}
					subRels = append(subRels, srel)
				})
				leaves = append(leaves, streamLeaf{kind: leafArrow, rel: w.Relation, target: t, subRels: subRels, depth: d, exact: exact && !w.ArrowAll})
			}
		case schema.RewriteUnion:
			for _, c := range w.Children {
				rewrite(r, c, d, exact)
			}
		case schema.RewriteIntersection, schema.RewriteExclusion:
			// Every result of an intersection is in its first child, and
			// of an exclusion in its base: candidates come from there.
			if len(w.Children) > 0 {
				rewrite(r, w.Children[0], d, false)
			}
		default:
			ok = false
		}
	}
	if base == nil {
		visit(goal, 1, true)
	} else {
		seen[goal] = depths{exact: 1, any: 1}
		for _, w := range base {
			rewrite(goal, w, 1, true)
		}
	}
	if !ok {
		return nil, false
	}
	return leaves, true
}

// intermediates runs the reverse walk up to the targets of leaves and
// returns it (nil when no leaf has a target). It reports false when the
// walk would reach relations of the resource type (see above).
func (rq *request) intermediates(ctx context.Context, typ string, sub tuple.SubjectRef, leaves []streamLeaf) (*reverseWalk, bool, error) {
	an := rq.e.an
	var relevant bitset
	for _, l := range leaves {
		if l.target == nil {
			continue
		}
		if relevant == nil {
			relevant = newBitset(len(an.rels))
		}
		for i, b := range an.relevant.of(l.target.Index) {
			relevant[i] |= b
		}
	}
	if relevant == nil {
		return nil, true, nil
	}
	for _, r := range rq.e.s.Definitions[typ].Ordered {
		if relevant.has(r.Index) {
			return nil, false, nil
		}
	}
	w := &reverseWalk{rq: rq, g: &an.positive, relevant: relevant, vals: make([]map[string]revVal, len(an.rels))}
	w.budget = rq.e.opts.MaxLookupNodes
	if err := w.run(ctx, sub); err != nil {
		if errors.Is(err, errBudget) {
			err = &LookupTooLargeError{Max: w.budget}
		}
		return nil, true, err
	}
	return w, true, nil
}

// streamResources is LookupResources by the streamed plan. It reports
// false, having yielded nothing, when the plan does not apply. With st
// (a scoped lookup whose scope is the large side, see lookupThrough),
// every candidate is tested for the scope before it is decided: the
// scope filters the stream, and nothing of the answer is held.
func (rq *request) streamResources(ctx context.Context, req LookupResourcesRequest, goal *schema.Relation, st *scopeTest, yield func(ResourceResult, error) bool) bool {
	sub := req.Subject
	if !rq.streams() || sub.ID == tuple.Wildcard {
		return false
	}
	// The recursive arrow's plan has no scope test: a scoped lookup of
	// one walks (lookupThrough) as before.
	if st == nil && rq.streamArrowResources(ctx, req, goal, yield) {
		return true
	}
	leaves, ok := rq.e.streamLeaves(goal, sub)
	if !ok {
		return false
	}
	w, ok, err := rq.intermediates(ctx, req.ResourceType, sub, leaves)
	if err != nil {
		yield(ResourceResult{}, err)
		return true
	}
	if !ok {
		return false
	}
	n := leafScanCount(leaves, w)
	if n > maxStreamScans {
		return false
	}
	if err := rq.mem.charge(int64(n) * streamScanBytes); err != nil {
		yield(ResourceResult{}, err)
		return true
	}
	rq.e.streamed.Add(1)
	if w != nil {
		rq.e.streamedWalks.Add(1)
	}
	if st != nil {
		rq.e.streamedThrough.Add(1)
	}
	scans, _ := rq.leafScans(ctx, req.ResourceType, req.After, leaves, w)
	answers(ctx, rq, scans, "", req.After, req.Limit, 0, st != nil, func(ctx context.Context, rq *request, id string, certain bool) (CheckResult, error) {
		if st != nil {
			in, err := st.in(ctx, rq, tuple.ObjectRef{Type: req.ResourceType, ID: id})
			if err != nil || !in {
				return CheckResult{}, err
			}
			if certain {
				return CheckResult{Permissionship: HasPermission}, nil
			}
		}
		r, err := rq.check(ctx, nil, goal, id, sub)
		return r.checkResult(), err
	}, resourceResult, yield)
	return true
}

// resourceResult is a streamed LookupResources' result for the resource
// id, decided res.
func resourceResult(id string, res CheckResult) ResourceResult {
	return ResourceResult{ResourceID: id, Permissionship: res.Permissionship, MissingContext: res.MissingContext}
}

// leafScanCount is the number of scans leafScans opens.
func leafScanCount(leaves []streamLeaf, w *reverseWalk) int {
	n := 0
	for _, l := range leaves {
		switch l.kind {
		case leafSet:
			n += len(w.vals[l.target.Index])
		case leafArrow:
			n += len(w.vals[l.target.Index]) * len(l.subRels)
		default:
			n++
		}
	}
	return n
}

// leafScans opens the scans of leaves for the subject (leaves' own, or
// the objects w found on their targets), each reading resources of typ
// strictly after the cursor after ("" none), and returns them with the
// height of each (the relations on the path from the goal down to a
// relationship the scan yields, both included).
func (rq *request) leafScans(ctx context.Context, typ, after string, leaves []streamLeaf, w *reverseWalk) ([]*scan, []int32) {
	maxDepth := int32(rq.e.opts.MaxDepth)
	resID := func(r *tuple.Relationship) string { return r.Resource.ID }
	n := leafScanCount(leaves, w)
	scans, heights := make([]*scan, 0, n), make([]int32, 0, n)
	// open adds a reverse scan of rel for the subject s (its relation
	// "" when plain), whose relationships are certain when certain and
	// uncaveated.
	open := func(rel *schema.Relation, s tuple.SubjectRef, certain bool, h int32) {
		sf := tuple.SubjectFilter(s)
		if sf.Relation == "" {
			sf.Relation = tuple.Ellipsis
		}
		opts := store.QueryOptions{Now: rq.now}
		if after != "" {
			opts.After = &tuple.Key{Resource: tuple.ObjectRef{Type: typ, ID: after}, Relation: rel.Name, Subject: s}
		}
		f := tuple.ReverseFilter{Subject: sf, ResourceType: typ, Relation: rel.Name}
		sc := newScan(rq.reader.ReverseQueryRelationships(ctx, f, opts), resID)
		sc.certain = certain
		scans, heights = append(scans, sc), append(heights, h)
	}
	for _, l := range leaves {
		switch l.kind {
		case leafSubject:
			open(l.rel, l.subject, l.exact && l.depth <= maxDepth, l.depth)
		case leafSelf:
			if after == "" || l.subject.ID > after {
				scans = append(scans, &scan{fixed: l.subject.ID, certain: l.exact && l.depth <= maxDepth})
				heights = append(heights, l.depth)
			}
		case leafSet, leafArrow:
			for id, v := range w.vals[l.target.Index] {
				h := v.h + l.depth
				certain := l.exact && v.exact && h <= maxDepth
				if l.kind == leafSet {
					open(l.rel, tuple.SubjectRef{Type: l.target.Definition.Name, ID: id, Relation: l.target.Name}, certain, h)
					continue
				}
				for _, srel := range l.subRels {
					open(l.rel, tuple.SubjectRef{Type: l.target.Definition.Name, ID: id, Relation: srel}, certain, h)
				}
			}
		}
	}
	return scans, heights
}

// eachArrowSubjectRel calls fn with each subject relation (tuple.Ellipsis
// for plain objects) that tupleset accepts on objects of typ, once each:
// an arrow over tupleset follows those relationships naming an object of
// typ. The schema accepts nothing else (a write naming another is
// refused, and so is a schema change orphaning stored ones), so reading
// these is reading all, each with a seek in the reverse index, which
// orders a subject's relationships by subject relation before resource
// type: a read naming none would scan every relationship naming the
// object, of every resource type.
func eachArrowSubjectRel(tupleset *schema.Relation, typ string, fn func(srel string)) {
	for i, a := range tupleset.Allowed {
		if a.Type != typ || a.Wildcard || slices.ContainsFunc(tupleset.Allowed[:i], func(b *schema.AllowedSubject) bool {
			return b.Type == typ && !b.Wildcard && b.Relation == a.Relation
		}) {
			continue
		}
		if a.Relation == "" {
			fn(tuple.Ellipsis)
		} else {
			fn(a.Relation)
		}
	}
}
