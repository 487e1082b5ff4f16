package eval

import (
	"context"

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
// The walk (lookup.go) is taken instead when: the request has
// contextual relationships or a scope (Within); a node reached accepts
// the wildcard of the subject type and holds it (the wildcard lists the
// subjects it excludes, which needs every subject decided); the
// intermediate nodes are more than maxStreamScans or the lookup's node
// budget.

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
	if !rq.streams() || rq.overlay || req.Within != nil {
		return false
	}
	subType, subRel := req.SubjectType, req.SubjectRelation
	srel := subRel
	if srel == "" {
		srel = tuple.Ellipsis
	}
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
	// leaf is a stored node whose direct subjects are candidates.
	type leaf struct {
		subjectNode
		certain bool
	}
	var (
		queue   []visit
		leaves  []leaf
		fixed   []*scan // subject sets in themselves, self
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
		if req.After == "" || subjectOrder(id, req.After) > 0 {
			fixed = append(fixed, &scan{fixed: id, certain: exact && d <= maxDepth})
		}
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
	push(goal, req.Resource.ID, 1, true)
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
			if len(rels) > 0 {
				wild = true
				break
			}
		}
		if direct {
			leaves = append(leaves, leaf{n.subjectNode, n.exact && n.depth <= maxDepth})
		}
	}
	if err != nil {
		yield(SubjectResult{}, err)
		return true
	}
	if tooMany || wild || len(leaves)+len(fixed) > maxStreamScans {
		return false
	}
	if err := rq.mem.charge(int64(len(leaves)) * streamScanBytes); err != nil {
		yield(SubjectResult{}, err)
		return true
	}
	rq.e.streamed.Add(1)
	rq.e.streamedSubjectWalks.Add(1)
	after := req.After
	if after == tuple.Wildcard {
		after = ""
	}
	subID := func(r *tuple.Relationship) string { return r.Subject.ID }
	scans := fixed
	for _, l := range leaves {
		opts := store.QueryOptions{Now: rq.now}
		if after != "" {
			opts.After = &tuple.Key{Resource: tuple.ObjectRef{Type: l.rel.Definition.Name, ID: l.id}, Relation: l.rel.Name,
				Subject: tuple.SubjectRef{Type: subType, ID: after, Relation: subRel}}
		}
		f := tuple.Filter{ResourceType: l.rel.Definition.Name, ResourceID: l.id, Relation: l.rel.Name,
			Subject: &tuple.SubjectFilter{Type: subType, Relation: srel}}
		sc := newScan(rq.reader.QueryRelationships(ctx, f, opts), subID)
		sc.certain = l.certain
		scans = append(scans, sc)
	}
	answers(ctx, rq, scans, tuple.Wildcard, after, req.Limit, 0, func(ctx context.Context, rq *request, id string) (CheckResult, error) {
		r, err := rq.check(ctx, nil, goal, req.Resource.ID, tuple.SubjectRef{Type: subType, ID: id, Relation: subRel})
		return r.checkResult(), err
	}, func(id string, res CheckResult) SubjectResult {
		return SubjectResult{SubjectID: id, Permissionship: res.Permissionship, MissingContext: res.MissingContext}
	}, yield)
	return true
}
