package eval

import (
	"context"
	"slices"
	"sync"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Streamed LookupSubjects of any shape: the forward mirror of
// streamplan.go. A permission's subjects come from the direct
// relationships (naming subjects of the requested kind) of the stored
// relations the forward walk reaches: on the resource itself, on the
// subject sets it names (group:eng#member, nested ones in turn) and on
// the objects its arrows reach (parent->view's folders). Those
// intermediate nodes are usually few, so the lookup first walks forward
// from the resource only to them, reading only the relationships that
// lead further (subject sets that can contain the subjects asked for,
// arrows' tuplesets), never the direct subjects, and then reads the
// subjects from one sorted scan per node that accepts them, merged by
// subject ID (merge, answers): what it holds is the nodes and one
// relationship per scan, whatever the size of the answer, and a page
// starts every scan strictly after the cursor.
//
// A subject reached by a path of unions, computed references and plain
// arrows through uncaveated relationships within the depth limit is
// certain; any other (under an intersection, an exclusion or an
// arrow-all, through a caveat, too deep) is decided by Check, as the
// walk confirms its candidates.
//
// Contextual relationships stream too: the forward walk's queries and
// the scans read through store.Overlay, which merges them in index order
// after the cursor, and the Checks of the candidates' chunks read through
// it too (chunkRequest). (The plan was first kept off them only as the
// direct plan of stream.go was, while the contextual differential test
// compared unpaged LookupSubjects alone; it now pages them too.)
//
// A node that holds the subject type's wildcard makes the wildcard a
// candidate, which comes first and lists the subjects it excludes: the
// page that starts with it decides it and, when it is granted, every
// candidate in one pass over the scans, keeping only the excluded ones
// (its answer); then the scans are opened again and the rest streamed
// (wildcardResult). A page after the cursor streams as any other.
//
// The walk (lookup.go) is taken instead when the intermediate nodes are
// more than maxStreamScans or the lookup's node budget. A scoped request
// (Within) takes this plan for one of its sides (scope.go: streamWithin),
// or the walk.

// subjectNode is a (stored or rewritten) relation on an object, reached
// by the forward walk of a streamed LookupSubjects.
type subjectNode struct {
	rel *schema.Relation
	id  string
}

// streamSubjectsPlan is LookupSubjects by the streamed plan through
// intermediate nodes. It reports false, having yielded nothing, when the
// plan does not apply.
func (rq *request) streamSubjectsPlan(ctx context.Context, req LookupSubjectsRequest, goal *schema.Relation, yield func(SubjectResult, error) bool) bool {
	if !rq.streams() || req.Within != nil {
		return false
	}
	plan, ok, err := rq.planSubjects(ctx, goal, req.Resource.ID, req.SubjectType, req.SubjectRelation)
	if err == nil && !ok {
		return false
	}
	if err == nil {
		err = plan.charge(rq)
	}
	if err != nil {
		yield(SubjectResult{}, err)
		return true
	}
	rq.e.streamed.Add(1)
	rq.e.streamedSubjectWalks.Add(1)
	decide := func(ctx context.Context, rq *request, id string, _ bool) (CheckResult, error) {
		r, err := rq.check(ctx, nil, goal, req.Resource.ID, tuple.SubjectRef{Type: req.SubjectType, ID: id, Relation: req.SubjectRelation})
		return r.checkResult(), err
	}
	after, emitted := req.After, 0
	if plan.wild {
		rq.e.streamedSubjectWilds.Add(1)
		if after == "" {
			// The page that starts with the wildcard.
			res, ok := rq.wildcardResult(ctx, plan, decide, req.SubjectType, yield)
			if !ok {
				return true
			}
			if res.Permissionship != NoPermission {
				if !yield(res, nil) {
					return true
				}
				emitted++
				if req.Limit > 0 && emitted >= req.Limit {
					return true
				}
			}
		}
	}
	if after == tuple.Wildcard {
		after = ""
	}
	answers(ctx, rq, plan.open(ctx, rq, after), tuple.Wildcard, after, req.Limit, emitted, false, decide, subjectResult, yield)
	return true
}

// wildcardResult decides the wildcard of a plan that holds it and, when
// it has the permission, the subjects it excludes: every candidate the
// scans yield that Check rejects, in order. Those are held (they are
// part of the wildcard's answer) and charged; the rest are read and
// decided, a chunk at a time, and dropped (answers), to be read and
// decided again after the wildcard is yielded. It reports false, having
// yielded the error, when one failed.
func (rq *request) wildcardResult(ctx context.Context, plan *subjectPlan, decide func(context.Context, *request, string, bool) (CheckResult, error), subType string, yield func(SubjectResult, error) bool) (SubjectResult, bool) {
	wr, err := decide(ctx, rq, tuple.Wildcard, false)
	if err != nil {
		yield(SubjectResult{}, err)
		return SubjectResult{}, false
	}
	res := subjectResult(tuple.Wildcard, wr)
	if wr.Permissionship == NoPermission {
		return res, true
	}
	var (
		mu       sync.Mutex
		excluded []string
		failed   error
	)
	answers(ctx, rq, plan.open(ctx, rq, ""), tuple.Wildcard, "", 0, 0, false, func(ctx context.Context, crq *request, id string, certain bool) (CheckResult, error) {
		r, err := decide(ctx, crq, id, certain)
		if err == nil && r.Permissionship == NoPermission {
			mu.Lock()
			defer mu.Unlock()
			if err = rq.mem.charge(walkNodeBytes); err == nil {
				excluded = append(excluded, id)
			}
		}
		return r, err
	}, subjectResult, func(_ SubjectResult, err error) bool {
		failed = err
		return err == nil
	})
	if failed != nil {
		yield(SubjectResult{}, failed)
		return SubjectResult{}, false
	}
	slices.Sort(excluded) // decided on several workers
	res.ExcludedIDs = excluded
	return res, true
}

// subjectResult is the SubjectResult of a streamed LookupSubjects.
func subjectResult(id string, res CheckResult) SubjectResult {
	return SubjectResult{SubjectID: id, Permissionship: res.Permissionship, MissingContext: res.MissingContext}
}

// subjectPlan is the streamed plan of the subjects of kind (subType,
// subRel) of one relation on one object: the stored nodes that hold them,
// and the subject sets that are answers in themselves.
type subjectPlan struct {
	subType, subRel string
	leaves          []subjectLeaf
	fixed           []subjectLeaf // id: the subject's ID; rel nil
	// wild: a node holds the subject type's wildcard.
	wild bool
}

// subjectLeaf is a stored node whose direct subjects are candidates
// (certain: an uncaveated one is an answer), or a fixed subject.
type subjectLeaf struct {
	subjectNode
	certain bool
}

// open opens one sorted scan of each of the plan's nodes (and one fixed
// scan of each fixed subject) strictly after the cursor after; merge
// closes them.
func (p *subjectPlan) open(ctx context.Context, rq *request, after string) []*scan {
	srel := p.subRel
	if srel == "" {
		srel = tuple.Ellipsis
	}
	var scans []*scan
	for _, f := range p.fixed {
		if after == "" || f.id > after {
			scans = append(scans, &scan{fixed: f.id, certain: f.certain})
		}
	}
	subID := func(r *tuple.Relationship) string { return r.Subject.ID }
	for _, l := range p.leaves {
		opts := store.QueryOptions{Now: rq.now}
		if after != "" {
			opts.After = &tuple.Key{Resource: tuple.ObjectRef{Type: l.rel.Definition.Name, ID: l.id}, Relation: l.rel.Name,
				Subject: tuple.SubjectRef{Type: p.subType, ID: after, Relation: p.subRel}}
		}
		f := tuple.Filter{ResourceType: l.rel.Definition.Name, ResourceID: l.id, Relation: l.rel.Name,
			Subject: &tuple.SubjectFilter{Type: p.subType, Relation: srel}}
		sc := newScan(rq.reader.QueryRelationships(ctx, f, opts), subID)
		sc.certain = l.certain
		scans = append(scans, sc)
	}
	return scans
}

// charge charges the scans the plan holds open at a time, once, by the
// caller that takes the plan (a plan may be opened twice, one pass after
// the other, and a plan not taken holds nothing).
func (p *subjectPlan) charge(rq *request) error {
	return rq.mem.charge(int64(len(p.leaves)) * streamScanBytes)
}

// planSubjects walks forward from goal on resID to the nodes that hold
// subjects of kind (subType, subRel) (see above). It reports false when
// the plan does not apply: too many nodes.
func (rq *request) planSubjects(ctx context.Context, goal *schema.Relation, resID, subType, subRel string) (*subjectPlan, bool, error) {
	maxDepth := int32(rq.e.opts.MaxDepth)
	budget := rq.e.opts.MaxLookupNodes
	if budget <= 0 || budget > maxStreamScans {
		budget = maxStreamScans
	}

	type visit struct {
		subjectNode
		depth int32
		exact bool
		// covered: a recursive arrow's node reached by the closure of
		// a node below it, which covers its ancestors too.
		covered bool
	}
	var (
		queue   []visit
		leaves  []subjectLeaf
		fixed   []subjectLeaf // subject sets in themselves, self
		visited = map[subjectNode]bool{}
		err     error
		tooMany bool
		wild    bool
		// arrows: whether the walk reads a recursive arrow's closure
		// (nestedlookup.go), by relation index.
		arrows      map[int]*NestedArrow
		pushCovered func(r *schema.Relation, id string, d int32, exact, covered bool)
	)
	push := func(r *schema.Relation, id string, d int32, exact bool) {
		pushCovered(r, id, d, exact, false)
	}
	pushCovered = func(r *schema.Relation, id string, d int32, exact, covered bool) {
		n := subjectNode{r, id}
		if r == nil || err != nil || tooMany || visited[n] || !rq.e.an.canContain(r, subType, subRel) {
			// A node already visited was visited by a path no longer
			// (breadth first); one visited inexactly stays so, its
			// subjects decided by Check.
			return
		}
		if len(visited) >= budget {
			tooMany = true
			return
		}
		if err = rq.mem.charge(walkNodeBytes); err != nil {
			return
		}
		visited[n] = true
		queue = append(queue, visit{n, d, exact, covered})
	}
	addFixed := func(id string, d int32, exact bool) {
		fixed = append(fixed, subjectLeaf{subjectNode{id: id}, exact && d <= maxDepth})
	}
	var walk func(n visit, w *schema.Rewrite, exact bool) error
	walk = func(n visit, w *schema.Rewrite, exact bool) error {
		switch w.Kind {
		case schema.RewriteComputed:
			push(w.Relation, n.id, n.depth+1, exact)
		case schema.RewriteSelf:
			selfMentions(func(id string) { addFixed(id, n.depth, exact) }, n.rel.Definition, n.id, subType, subRel)
		case schema.RewriteArrow:
			rels, qerr := rq.query(ctx, tuple.Filter{ResourceType: n.rel.Definition.Name, ResourceID: n.id, Relation: w.Relation.Name})
			if qerr != nil {
				return qerr
			}
			for _, r := range rels {
				if r.Subject.ID != tuple.Wildcard {
					push(w.Targets[r.Subject.Type], r.Subject.ID, n.depth+1, exact && !w.ArrowAll && r.Caveat == nil)
				}
			}
		case schema.RewriteUnion:
			for _, c := range w.Children {
				if err := walk(n, c, exact); err != nil {
					return err
				}
			}
		case schema.RewriteIntersection, schema.RewriteExclusion:
			// Every branch may hold or remove candidates: all of them
			// are read, and their subjects decided by Check.
			for _, c := range w.Children {
				if err := walk(n, c, false); err != nil {
					return err
				}
			}
		}
		return nil
	}
	push(goal, resID, 1, true)
	for head := 0; head < len(queue) && err == nil && !tooMany; head++ {
		if err = ctx.Err(); err != nil {
			break
		}
		n := queue[head]
		if subRel != "" && n.rel.Name == subRel && n.rel.Definition.Name == subType {
			// A subject set is in itself, with no relation on the path.
			addFixed(n.id, n.depth-1, n.exact)
		}
		if na := rq.nestedArrowOf(n.rel); na != nil {
			if arrows == nil {
				arrows = map[int]*NestedArrow{}
			}
			use, seen := arrows[n.rel.Index]
			if !seen {
				if rq.arrowClosureUsable(ctx, na) {
					use = na
				}
				arrows[n.rel.Index] = use
			}
			if use != nil {
				// A recursive arrow on the index: its base here, and its
				// ancestors (each at its distance, as exact as n: the
				// tupleset's edges are plain) from the closure, in place
				// of its arrow's levels; a node the closure reached has
				// its ancestors covered already.
				for _, w := range na.Base {
					if err = walk(n, w, n.exact); err != nil {
						break
					}
				}
				if err == nil && !n.covered {
					err = rq.arrowAncestors(ctx, na, n.id, func(y string, k int32) {
						pushCovered(n.rel, y, n.depth+k, n.exact, true)
					})
				}
				continue
			}
		}
		if n.rel.Rewrite != nil {
			if werr := walk(n, n.rel.Rewrite, n.exact); werr != nil {
				err = werr
			}
			continue
		}
		direct, wildcard := false, false
		seenSets := map[[2]string]bool{}
		for _, a := range n.rel.Allowed {
			switch {
			case err != nil:
			case a.Relation != "":
				if a.Type == subType && a.Relation == subRel {
					direct = true
				}
				key := [2]string{a.Type, a.Relation}
				if a.Target == nil || seenSets[key] || !rq.e.an.canContain(a.Target, subType, subRel) {
					continue
				}
				seenSets[key] = true
				rels, qerr := rq.query(ctx, tuple.Filter{ResourceType: n.rel.Definition.Name, ResourceID: n.id, Relation: n.rel.Name,
					Subject: &tuple.SubjectFilter{Type: a.Type, Relation: a.Relation}})
				if qerr != nil {
					err = qerr
					continue
				}
				for _, r := range rels {
					if r.Subject.ID != tuple.Wildcard {
						push(a.Target, r.Subject.ID, n.depth+1, n.exact && r.Caveat == nil)
					}
				}
			case a.Type == subType && subRel == "":
				direct = true
				wildcard = wildcard || a.Wildcard
			}
		}
		if err != nil {
			break
		}
		if wildcard {
			rels, qerr := rq.query(ctx, tuple.Filter{ResourceType: n.rel.Definition.Name, ResourceID: n.id, Relation: n.rel.Name,
				Subject: &tuple.SubjectFilter{Type: subType, ID: tuple.Wildcard, Relation: tuple.Ellipsis}})
			if qerr != nil {
				err = qerr
				break
			}
			wild = wild || len(rels) > 0
		}
		if direct {
			leaves = append(leaves, subjectLeaf{n.subjectNode, n.exact && n.depth <= maxDepth})
		}
	}
	if err != nil {
		return nil, true, err
	}
	if tooMany || len(leaves)+len(fixed) > maxStreamScans {
		return nil, false, nil
	}
	return &subjectPlan{subType: subType, subRel: subRel, leaves: leaves, fixed: fixed, wild: wild}, true, nil
}
