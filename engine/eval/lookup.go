package eval

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// confirmChunk is how many lookup results are decided together: large
// enough to keep the workers busy, small enough that a Limit of a few
// results does not check thousands of candidates.
const confirmChunk = 128

// reverseNode is a (relation, object) the reverse walk has reached, with
// the height of the path that reached it (see revVal).
type reverseNode struct {
	rel   *schema.Relation
	id    string
	exact bool
	h     int32
}

// revVal is what a reverse walk knows of one (relation, object): whether
// the subject is in it certainly (exact: reached through unions of
// uncaveated relationships) or only maybe (a candidate to confirm with
// Check), and for an exact one the height of the shortest such path: the
// number of relations a top-down check starting here visits down to the
// relationship naming the subject (0 for a subject set in itself, 1 for a
// relation naming the subject). A check at frame depth d answers yes from
// it only when d-1+h is within Options.MaxDepth, as the top-down walk
// would: a path is as deep whichever end it is walked from.
type revVal struct {
	exact bool
	h     int32
}

// reverseWalk is the state of a walk from a subject up to the relations
// that contain it, over the reverse index: LookupResources walks up to the
// requested permission; reverse checks (see reverseCheck) walk one
// recursive relation. The walk is breadth first, so the first exact visit
// of a node comes by its shortest exact path.
type reverseWalk struct {
	rq       *request
	g        *reverseGraph
	relevant bitset
	vals     []map[string]revVal
	queue    []reverseNode
	// budget, when positive, bounds the nodes reached; the walk then
	// fails with errBudget.
	budget  int
	reached int
	// over is set when a node was left out for the budget.
	over bool
	// memErr is set when a node did not fit in the memory budget; the
	// walk then fails with it.
	memErr error
	// expires is the earliest expiration among the relationships read.
	expires time.Time
	// buf is reused by reverse's batch reads.
	buf []tuple.Relationship
	// nested is the walk's use of the nested-group index (nestedUp).
	nested *nestedReverse
}

// errBudget stops a walk that grew too large: a reverse check, whose
// caller falls back to the top-down evaluation, or one side of a scoped
// lookup, whose planner takes the other side. It never leaves the package.
var errBudget = errors.New("eval: walk budget exhausted")

func newReverseWalk(rq *request, goal *schema.Relation) *reverseWalk {
	an := rq.e.an
	return &reverseWalk{rq: rq, g: &an.positive, relevant: an.relevant.of(goal.Index), vals: make([]map[string]revVal, len(an.rels))}
}

// reach records that rel of id may contain the subject (certainly when
// exact) by a path of height h, and queues the node when that is news.
func (w *reverseWalk) reach(rel *schema.Relation, id string, exact bool, h int32) {
	if !w.relevant.has(rel.Index) {
		return
	}
	m := w.vals[rel.Index]
	if m == nil {
		m = make(map[string]revVal)
		w.vals[rel.Index] = m
	}
	old, ok := m[id]
	if ok && (old.exact || !exact) && !(exact && h < old.h) {
		// Known as well. (A shorter exact path comes after a longer
		// one only where the nested-group index jumped ahead of the
		// breadth-first order: see nestedUp.)
		return
	}
	if !ok && w.budget > 0 && w.reached >= w.budget {
		w.over = true // run fails with errBudget: nothing more is held
		return
	}
	if !ok && w.memErr == nil {
		w.memErr = w.rq.mem.charge(walkNodeBytes)
	}
	if w.memErr != nil {
		return
	}
	m[id] = revVal{exact: exact, h: h}
	if !ok {
		// Distinct nodes, whatever the order of the visits (an upgrade
		// to exact holds nothing more).
		w.reached++
	}
	w.queue = append(w.queue, reverseNode{rel: rel, id: id, exact: exact, h: h})
}

// reverse calls fn with each relationship on rel whose subject matches sf.
func (w *reverseWalk) reverse(ctx context.Context, sf tuple.SubjectFilter, rel *schema.Relation, fn func(r *tuple.Relationship)) error {
	if w.memErr != nil {
		return w.memErr
	}
	if w.over || (w.budget > 0 && w.reached > w.budget) {
		return errBudget
	}
	f := tuple.ReverseFilter{Subject: sf, ResourceType: rel.Definition.Name, Relation: rel.Name}
	if b := w.rq.batch; b != nil {
		// fn only queues; take the buffer anyway, so that a call of
		// reverse inside fn could not overwrite what is being read.
		rels, err := b.AppendReverseRelationships(ctx, w.buf[:0], f, store.QueryOptions{Now: w.rq.now})
		w.buf = nil
		if err != nil {
			return err
		}
		for i := range rels {
			w.expires = minTime(w.expires, rels[i].Expiration)
			fn(&rels[i])
		}
		clear(rels) // drop the strings for the GC
		w.buf = rels[:0]
		return nil
	}
	for r, err := range w.rq.reader.ReverseQueryRelationships(ctx, f, store.QueryOptions{Now: w.rq.now}) {
		if err != nil {
			return err
		}
		w.expires = minTime(w.expires, r.Expiration)
		fn(&r)
	}
	return nil
}

// run walks from sub up through every relevant relation.
func (w *reverseWalk) run(ctx context.Context, sub tuple.SubjectRef) error {
	an := w.rq.e.an
	// Seeds: a subject set is in itself; a plain subject is in the
	// relations whose relationships name it or its type's wildcard.
	var err error
	if sub.Relation != "" {
		if rel, rerr := w.rq.e.resolve(sub.Type, sub.Relation); rerr == nil {
			w.reach(rel, sub.ID, true, 0)
		}
	} else {
		seed := func(sf tuple.SubjectFilter, rels []*schema.Relation) error {
			for _, rel := range rels {
				if !w.relevant.has(rel.Index) {
					continue
				}
				err := w.reverse(ctx, sf, rel, func(r *tuple.Relationship) {
					w.reach(rel, r.Resource.ID, r.Caveat == nil, 1)
				})
				if err != nil {
					return err
				}
			}
			return nil
		}
		if sub.ID != tuple.Wildcard {
			err = seed(tuple.SubjectFilter{Type: sub.Type, ID: sub.ID, Relation: tuple.Ellipsis}, an.plainParents[sub.Type])
		}
		w.selfSeeds(sub)
		if err == nil {
			err = seed(tuple.SubjectFilter{Type: sub.Type, ID: tuple.Wildcard, Relation: tuple.Ellipsis}, an.wildcardParents[sub.Type])
		}
	}
	if err != nil {
		return err
	}
	return w.propagate(ctx)
}

// propagate walks up from every queued node through the walk's graph.
func (w *reverseWalk) propagate(ctx context.Context) error {
	var err error
	for head := 0; err == nil && head < len(w.queue); head++ {
		if err = ctx.Err(); err != nil {
			break
		}
		nd := w.queue[head]
		if v := w.vals[nd.rel.Index][nd.id]; v.exact != nd.exact || (nd.exact && v.h != nd.h) {
			continue // upgraded since; the better visit propagates
		}
		h := nd.h + 1 // each step up is one more relation on the path
		i := nd.rel.Index
		// The index reaches the relation's own ancestors at once.
		indexed, err1 := w.nestedUp(ctx, nd)
		if err1 != nil {
			err = err1
			break
		}
		for _, pe := range w.g.userset[i] {
			if err != nil || !w.relevant.has(pe.parent.Index) || (indexed && pe.parent == nd.rel) {
				continue
			}
			sf := tuple.SubjectFilter{Type: nd.rel.Definition.Name, ID: nd.id, Relation: nd.rel.Name}
			err = w.reverse(ctx, sf, pe.parent, func(r *tuple.Relationship) {
				w.reach(pe.parent, r.Resource.ID, nd.exact && r.Caveat == nil, h)
			})
		}
		for _, pe := range w.g.computed[i] {
			w.reach(pe.parent, nd.id, nd.exact && pe.exact, h)
		}
		for _, pe := range w.g.arrow[i] {
			if err != nil || !w.relevant.has(pe.parent.Index) {
				continue
			}
			// Arrows follow the subject object whatever its relation:
			// one read per relation the tupleset accepts on the object's
			// type, each a seek to that subject relation and the
			// tupleset (streamplan.go).
			eachArrowSubjectRel(pe.tupleset, nd.rel.Definition.Name, func(srel string) {
				if err != nil {
					return
				}
				sf := tuple.SubjectFilter{Type: nd.rel.Definition.Name, ID: nd.id, Relation: srel}
				err = w.reverse(ctx, sf, pe.tupleset, func(r *tuple.Relationship) {
					w.reach(pe.parent, r.Resource.ID, nd.exact && pe.exact && r.Caveat == nil, h)
				})
			})
		}
	}
	switch {
	case w.memErr != nil:
		err = w.memErr
	case err == nil && w.over:
		err = errBudget
	}
	return err
}

func (rq *request) lookupResources(ctx context.Context, req LookupResourcesRequest, yield func(ResourceResult, error) bool) {
	goal, err := rq.e.resolve(req.ResourceType, req.Permission)
	if err == nil {
		err = rq.e.validateSubject(req.Subject)
	}
	if err == nil && req.Limit < 0 {
		err = invalidRequest("negative limit %d", req.Limit)
	}
	if err != nil {
		yield(ResourceResult{}, err)
		return
	}
	if req.Through != nil {
		rq.lookupThrough(ctx, req, goal, yield)
		return
	}
	if rq.streamResources(ctx, req, goal, nil, yield) {
		return
	}
	w := newReverseWalk(rq, goal)
	w.budget = rq.e.opts.MaxLookupNodes
	if err := w.run(ctx, req.Subject); err != nil {
		if errors.Is(err, errBudget) {
			err = &LookupTooLargeError{Max: w.budget}
		}
		yield(ResourceResult{}, err)
		return
	}
	found := w.vals[goal.Index]
	rq.confirmResources(ctx, req, goal, afterSorted(slices.Collect(maps.Keys(found)), req.After), found, nil, yield)
}

// confirmResources decides the candidates ids (sorted, after req.After) a
// chunk at a time and yields those with the permission, up to req.Limit.
// found, when not nil, is the reverse walk's knowledge of them: a
// candidate it certainly reached within the depth limit needs no Check.
// keep, when not nil, drops candidates before they are decided.
func (rq *request) confirmResources(ctx context.Context, req LookupResourcesRequest, goal *schema.Relation, ids []string, found map[string]revVal, keep func(context.Context, string) (bool, error), yield func(ResourceResult, error) bool) {
	emitted := 0
	for start := 0; start < len(ids); start += confirmChunk {
		chunk := ids[start:min(start+confirmChunk, len(ids))]
		if keep != nil {
			kept := make([]string, 0, len(chunk))
			for _, id := range chunk {
				ok, err := keep(ctx, id)
				if err != nil {
					yield(ResourceResult{}, err)
					return
				}
				if ok {
					kept = append(kept, id)
				}
			}
			chunk = kept
		}
		results := make([]CheckResult, len(chunk))
		var todo []int
		for j, id := range chunk {
			// A resource whose shortest certain path is within the
			// limit is an answer; one only deeper is confirmed with
			// Check, which fails on the path as it would for the caller.
			if v, ok := found[id]; ok && v.exact && int(v.h) <= rq.e.opts.MaxDepth {
				results[j] = CheckResult{Permissionship: HasPermission}
			} else {
				todo = append(todo, j)
			}
		}
		if err := rq.confirm(ctx, len(todo), func(ctx context.Context, k int) error {
			j := todo[k]
			res, err := rq.check(ctx, nil, goal, chunk[j], req.Subject)
			results[j] = res.checkResult()
			return err
		}); err != nil {
			yield(ResourceResult{}, err)
			return
		}
		for j, id := range chunk {
			if results[j].Permissionship == NoPermission {
				continue
			}
			if !yield(ResourceResult{ResourceID: id, Permissionship: results[j].Permissionship, MissingContext: results[j].MissingContext}, nil) {
				return
			}
			emitted++
			if req.Limit > 0 && emitted >= req.Limit {
				return
			}
		}
	}
}

// confirm runs fn for 0..n-1 on up to Concurrency goroutines and returns
// the error of the lowest index that failed.
func (rq *request) confirm(ctx context.Context, n int, fn func(context.Context, int) error) error {
	workers := min(rq.e.opts.Concurrency, n)
	if workers <= 1 {
		for k := range n {
			if err := fn(ctx, k); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, n)
	next := make(chan int)
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for k := range next {
				errs[k] = fn(ctx, k)
			}
		}()
	}
	for k := range n {
		next <- k
	}
	close(next)
	for range workers {
		<-done
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (rq *request) lookupSubjects(ctx context.Context, req LookupSubjectsRequest, yield func(SubjectResult, error) bool) {
	rel, err := rq.e.resolve(req.Resource.Type, req.Permission)
	if err == nil && (req.Resource.ID == "" || req.Resource.ID == tuple.Wildcard) {
		err = invalidRequest("resource %q needs a concrete id", req.Resource.String())
	}
	if err == nil {
		if rq.e.s.Definitions[req.SubjectType] == nil {
			err = &UnknownDefinitionError{Name: req.SubjectType}
		} else if req.SubjectRelation != "" && rq.e.s.Definitions[req.SubjectType].Relations[req.SubjectRelation] == nil {
			err = &UnknownRelationError{Definition: req.SubjectType, Relation: req.SubjectRelation}
		}
	}
	if err == nil && req.Limit < 0 {
		err = invalidRequest("negative limit %d", req.Limit)
	}
	if err != nil {
		yield(SubjectResult{}, err)
		return
	}
	var within *subjectSide
	if req.Within != nil {
		w, release, err := rq.withinSide(ctx, req)
		if err != nil {
			yield(SubjectResult{}, err)
			return
		}
		defer release()
		if rq.streamWithin(ctx, req, rel, w, yield) {
			return
		}
		within = w
	} else if rq.streamSubjects(ctx, req, rel, yield) || rq.streamSubjectsPlan(ctx, req, rel, yield) {
		return
	}
	// Every subject that can be an answer is met by the walk, so the
	// walk is done in full on every page; only the Checks that confirm
	// subjects are limited to the page's.
	perm, within, cands, err := rq.subjectCandidates(ctx, req, rel, within)
	if err != nil {
		yield(SubjectResult{}, err)
		return
	}
	ids := make([]string, 0, len(cands))
	for _, id := range cands {
		if req.After == "" || subjectOrder(id, req.After) > 0 {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, subjectOrder)
	// Only unions below, no caveats: a subject met within the depth
	// limit is a member (subjectSide.sure). One met only deeper is left
	// to Check, which fails on that path as it would for the caller.
	confirm := func(chunk []string, results []CheckResult) error {
		return rq.decideSubjects(ctx, req, perm, within, chunk, results)
	}
	// The wildcard comes first and lists the subjects it excludes, so a
	// page that has it decides every subject. Other pages decide theirs
	// a chunk at a time, a chunk the size of what the page still lacks
	// (at least one per worker), so a page costs the Checks of its own
	// subjects and those rejected among them. Without a limit all is
	// decided before the first result, as it always was.
	whole := req.Limit == 0 || (len(ids) > 0 && ids[0] == tuple.Wildcard)
	emitted := 0
	for start := 0; start < len(ids); {
		end := len(ids)
		if !whole {
			end = min(end, start+min(confirmChunk, max(req.Limit-emitted, rq.e.opts.Concurrency)))
		}
		chunk := ids[start:end]
		start = end
		results := make([]CheckResult, len(chunk))
		if err := confirm(chunk, results); err != nil {
			yield(SubjectResult{}, err)
			return
		}
		for k, id := range chunk {
			cr := results[k]
			if cr.Permissionship == NoPermission {
				continue
			}
			sr := SubjectResult{SubjectID: id, Permissionship: cr.Permissionship, MissingContext: cr.MissingContext}
			if id == tuple.Wildcard {
				for k2, other := range chunk {
					if other != tuple.Wildcard && results[k2].Permissionship == NoPermission {
						sr.ExcludedIDs = append(sr.ExcludedIDs, other)
					}
				}
			}
			if !yield(sr, nil) {
				return
			}
			emitted++
			if req.Limit > 0 && emitted >= req.Limit {
				return
			}
		}
	}
}

// subjectOrder is the order of LookupSubjects' results: the wildcard
// first, whatever the byte order of IDs, then IDs in byte order.
func subjectOrder(a, b string) int {
	if a == tuple.Wildcard || b == tuple.Wildcard {
		return boolCmp(b == tuple.Wildcard, a == tuple.Wildcard)
	}
	return strings.Compare(a, b)
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// forwardWalk visits every (relation, object) reachable from rel on id,
// through all branches of every rewrite, and returns the IDs of the
// subjects of the requested kind it meets: every subject that can have the
// permission, and every one an exclusion or intersection can remove. Each
// ID maps to the fewest relations a top-down check from rel visits to meet
// it (see Options.MaxDepth); the walk is breadth first, so the first visit
// of a node is by its shortest path. budget, when positive, bounds the
// nodes visited and the subjects met: past it the walk fails with
// errBudget (the scope planner then takes the other side).
func (rq *request) forwardWalk(ctx context.Context, rel *schema.Relation, id, subType, subRel string, budget int) (map[string]int32, error) {
	type node struct {
		rel *schema.Relation
		id  string
	}
	type visit struct {
		node
		depth int32 // relations on the path to it, itself included
	}
	mentioned := map[string]int32{}
	var memErr error // a node or subject past the memory budget
	mention := func(id string, d int32) {
		old, ok := mentioned[id]
		if !ok && memErr == nil {
			memErr = rq.mem.charge(walkNodeBytes)
		}
		if memErr == nil && (!ok || d < old) {
			mentioned[id] = d
		}
	}
	visited := map[node]bool{}
	overBudget := false
	var queue []visit
	maxNodes := rq.e.opts.MaxLookupNodes
	nf := newNestedForward(rq)
	// see marks n visited, charged and counted as the walk's nodes are.
	see := func(n node) bool {
		if memErr = rq.mem.charge(walkNodeBytes); memErr != nil {
			return false
		}
		visited[n] = true
		if budget > 0 && len(visited) > budget {
			overBudget = true
		}
		return true
	}
	push := func(r *schema.Relation, id string, d int32) {
		n := node{r, id}
		if r == nil || memErr != nil || !rq.e.an.canContain(r, subType, subRel) || !nf.queue(ctx, r, id, d, !visited[n]) {
			return
		}
		if !visited[n] && !see(n) {
			return
		}
		queue = append(queue, visit{n, d})
	}
	// read reads the relationships of stored relation r on id, a node at
	// depth d, naming subjects sf selects (nil: any), and meets their
	// subjects.
	// Under a budget, a read stops past it: one node with more
	// relationships is over budget (a scope planner's walk must not read
	// a large group whole to learn that it is large).
	readLimit := 0
	if budget > 0 {
		readLimit = budget + 1
	}
	query := func(f tuple.Filter) ([]tuple.Relationship, error) {
		rels, err := rq.queryLimit(ctx, f, readLimit)
		if readLimit > 0 && len(rels) >= readLimit {
			overBudget = true
		}
		return rels, err
	}
	read := func(r *schema.Relation, id string, d int32, sf *tuple.SubjectFilter) error {
		rels, err := query(tuple.Filter{ResourceType: r.Definition.Name, ResourceID: id, Relation: r.Name, Subject: sf})
		if err != nil || overBudget {
			return err // over budget: the walk fails, holding no more
		}
		for _, r := range rels {
			s := r.Subject
			if s.Type == subType && s.Relation == subRel {
				mention(s.ID, d)
			}
			if s.Relation != "" {
				if def := rq.e.s.Definitions[s.Type]; def != nil {
					push(def.Relations[s.Relation], s.ID, d+1)
				}
			}
		}
		return nil
	}
	// selfSet records that a subject set is in itself, before any frame
	// for it (n at depth d).
	selfSet := func(r *schema.Relation, id string, d int32) {
		if subRel != "" && r.Name == subRel && r.Definition.Name == subType {
			mention(id, d-1)
		}
	}
	push(rel, id, 1)
	var walk func(n visit, w *schema.Rewrite) error
	walk = func(n visit, w *schema.Rewrite) error {
		switch w.Kind {
		case schema.RewriteComputed:
			push(w.Relation, n.id, n.depth+1)
		case schema.RewriteSelf:
			// The object is in its own self, read at this relation.
			selfMentions(func(id string) { mention(id, n.depth) }, n.rel.Definition, n.id, subType, subRel)
		case schema.RewriteArrow:
			rels, err := query(tuple.Filter{ResourceType: n.rel.Definition.Name, ResourceID: n.id, Relation: w.Relation.Name})
			if err != nil {
				return err
			}
			for _, r := range rels {
				if r.Subject.ID != tuple.Wildcard {
					push(w.Targets[r.Subject.Type], r.Subject.ID, n.depth+1)
				}
			}
		case schema.RewriteUnion, schema.RewriteIntersection, schema.RewriteExclusion:
			for _, c := range w.Children {
				if err := walk(n, c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	walkBase := func(n visit, na *NestedArrow) error {
		for _, w := range na.Base {
			if err := walk(n, w); err != nil {
				return err
			}
		}
		return nil
	}
	// limits fails the walk when it has grown too large, before each
	// node it reads.
	limits := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if overBudget || (budget > 0 && len(mentioned) > budget) {
			return errBudget
		}
		if maxNodes > 0 && len(visited)+len(mentioned) > maxNodes {
			return &LookupTooLargeError{Max: maxNodes}
		}
		return nil
	}
	// covered visits the nodes that the index's closure rows of n name
	// (nf.cover), each seen and counted as the walk's nodes are, within
	// the walk's limits, and then by then.
	covered := func(n visit, then func(m visit) error) error {
		_, err := nf.cover(ctx, n.rel, n.id, n.depth, func(id string, d int32) error {
			if err := limits(); err != nil {
				return err
			}
			m := node{n.rel, id}
			if !visited[m] && !see(m) {
				return memErr
			}
			selfSet(n.rel, id, d)
			return then(visit{m, d})
		})
		return err
	}
	for head := 0; head <= len(queue); head++ {
		if memErr != nil {
			return nil, memErr
		}
		// Checked once more after the last node: whether the walk fails
		// depends on what it reached, not on the order it read it in
		// (the nested-group index reads it in another).
		if err := limits(); err != nil {
			return nil, err
		}
		if head == len(queue) {
			break
		}
		n := queue[head]
		selfSet(n.rel, n.id, n.depth)
		if na := nf.arrow(ctx, n.rel); na != nil {
			// A recursive arrow on the index: its base here, then on
			// every ancestor the closure names (nestedlookup.go), in
			// place of its arrow's levels.
			if err := walkBase(n, na); err != nil {
				return nil, err
			}
			if err := covered(n, func(m visit) error { return walkBase(m, na) }); err != nil {
				return nil, err
			}
			continue
		}
		if n.rel.Rewrite != nil {
			if err := walk(n, n.rel.Rewrite); err != nil {
				return nil, err
			}
			continue
		}
		// The nested-group index: the member sets of n, at any depth,
		// read as the walk would reach them (nestedlookup.go), before
		// n's own relationships, which name some of them. Their subject
		// sets are all member sets of n: only the subjects asked for
		// are read, none when those are the member sets themselves.
		sf := nestedLeafFilter(n.rel, subType, subRel)
		if err := covered(n, func(m visit) error {
			if sf == nil {
				return nil
			}
			return read(n.rel, m.id, m.depth, sf)
		}); err != nil {
			return nil, err
		}
		if err := read(n.rel, n.id, n.depth, nil); err != nil {
			return nil, err
		}
	}
	return mentioned, nil
}
