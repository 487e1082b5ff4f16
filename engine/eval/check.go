package eval

import (
	"context"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

func (rq *request) checkRoot(ctx context.Context, req CheckRequest) (CheckResult, error) {
	rel, err := rq.e.root(req)
	if err != nil {
		return CheckResult{}, err
	}
	st := new(checkStats)
	res, err := rq.checkAt(ctx, nil, st, rel, req.Resource.ID, req.Subject, false)
	if err != nil {
		return CheckResult{}, err
	}
	cr := res.checkResult()
	cr.Dispatches = int(st.dispatches.Load())
	cr.Depth = int(st.depth.Load())
	return cr, nil
}

// root validates req and returns the relation it asks about.
func (e *Evaluator) root(req CheckRequest) (*schema.Relation, error) {
	rel, err := e.resolve(req.Resource.Type, req.Permission)
	if err != nil {
		return nil, err
	}
	if req.Resource.ID == "" || req.Resource.ID == tuple.Wildcard {
		return nil, invalidRequest("resource %q needs a concrete id", req.Resource.String())
	}
	if err := e.validateSubject(req.Subject); err != nil {
		return nil, err
	}
	return rel, nil
}

// bulk answers reqs into out with up to Concurrency workers sharing rq.
func (rq *request) bulk(ctx context.Context, reqs []CheckRequest, out []BulkResult) {
	run := func(i int) {
		out[i].CheckResult, out[i].Err = rq.checkRoot(ctx, reqs[i])
	}
	workers := min(rq.e.opts.Concurrency, len(reqs))
	if workers <= 1 {
		for i := range reqs {
			run(i)
		}
		return
	}
	next := make(chan int)
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range next {
				run(i)
			}
		}()
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	for range workers {
		<-done
	}
}

// check decides whether sub is in rel of object id, below the path parent.
// It answers the trivial cases itself (membership of a subject set in
// itself, impossible subject kinds, cycles, depth) and dispatches the rest.
func (rq *request) check(ctx context.Context, parent *frame, rel *schema.Relation, id string, sub tuple.SubjectRef) (result, error) {
	var st *checkStats
	if parent != nil {
		st = parent.st
	}
	return rq.checkAt(ctx, parent, st, rel, id, sub, false)
}

// checkAt is check with the statistics st of the root check (nil: none);
// local keeps the subproblem on this node (it was dispatched here by the
// router of another node).
func (rq *request) checkAt(ctx context.Context, parent *frame, st *checkStats, rel *schema.Relation, id string, sub tuple.SubjectRef, local bool) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	if sub.Relation == rel.Name && sub.ID == id && sub.Type == rel.Definition.Name {
		// A subject set contains itself.
		return resYes, nil
	}
	if !rq.e.an.canContain(rel, sub.Type, sub.Relation) {
		return resNo, nil
	}
	if parent == nil && rq.e.cache != nil {
		if res, hit := rq.e.cache.lookup(rq, subproblem{rel: rel.Index, id: id, sub: sub}, true); hit && res.fits(1, rq.e.opts.MaxDepth) {
			st.dispatched(0)
			return res, nil
		}
	}
	depth := int32(1)
	if parent != nil {
		depth = parent.depth + 1
	}
	for f := parent; f != nil; f = f.parent {
		if f.rel == rel && f.id == id {
			// A cycle in the data: the least fixpoint is computed by
			// taking the node as "no" on the way back to it.
			f.cycled.Store(true)
			r := resNo
			r.cut = f.depth
			return r, nil
		}
	}
	f := &frame{parent: parent, rel: rel, id: id, depth: depth, seq: rq.seq.Add(1), st: st, local: local, pinned: parent != nil && parent.pinned}
	if int(depth) > rq.e.opts.MaxDepth {
		return result{}, maxDepthError(rq.e.opts.MaxDepth, f)
	}
	st.dispatched(depth)
	return rq.e.dispatch.dispatch(ctx, rq, f, subproblem{rel: rel.Index, id: id, sub: sub})
}

// compute evaluates a subproblem from its definition: the end of the
// dispatch chain.
func (rq *request) compute(ctx context.Context, f *frame, sub tuple.SubjectRef) (result, error) {
	var res result
	var err error
	if f.rel.Rewrite != nil {
		res, err = rq.rewrite(ctx, f, f.rel.Rewrite, sub)
	} else {
		res, err = rq.direct(ctx, f, sub)
	}
	if err == nil && res.cut >= f.depth {
		// Only this node was assumed; its value is now exact.
		res.cut = noCut
	}
	res.h++ // this relation is on the path too
	return res, err
}

func (rq *request) rewrite(ctx context.Context, f *frame, w *schema.Rewrite, sub tuple.SubjectRef) (result, error) {
	switch w.Kind {
	case schema.RewriteComputed:
		return rq.check(ctx, f, w.Relation, f.id, sub)
	case schema.RewriteArrow:
		return rq.arrow(ctx, f, w, sub)
	case schema.RewriteSelf:
		return selfResult(f, sub), nil
	case schema.RewriteUnion, schema.RewriteIntersection:
		plan := rq.e.an.plans[w]
		return rq.fold(ctx, w.Kind == schema.RewriteIntersection, len(w.Children), plan.parallel && f.depth <= maxParallelDepth,
			func(ctx context.Context, i int) (result, error) {
				return rq.rewrite(ctx, f, w.Children[plan.order[i]], sub)
			})
	case schema.RewriteExclusion:
		base, err := rq.rewrite(ctx, f, w.Children[0], sub)
		if err != nil || base.perm == NoPermission {
			return base, err
		}
		minus, err := rq.rewrite(ctx, f, w.Children[1], sub)
		if err != nil {
			return result{}, err
		}
		res := and(base, not(minus))
		// Both sides were needed, whichever decided: an error in the
		// base fails the exclusion before the subtraction can say no.
		res.h = max(base.h, minus.h)
		return res, nil
	}
	return resNo, nil
}

// direct evaluates a relation: its stored relationships naming sub (or
// sub's wildcard), then its subject sets that can contain sub.
func (rq *request) direct(ctx context.Context, f *frame, sub tuple.SubjectRef) (result, error) {
	rel := f.rel
	if rq.e.an.reverseCheck[rel.Index] {
		if m, ok := rq.reverseMembers(ctx, rel, sub); ok {
			if in, known := m.member(f.id, f.depth, rq.e.opts.MaxDepth); known {
				res := resNo
				if in {
					// The walk's height counts this relation, which
					// compute adds.
					res = resYes
					res.h = m.ids[f.id].h - 1
				}
				res.expires = m.expires
				return res, nil
			}
		}
	}
	info := &rq.e.an.direct[rel.Index]
	base := tuple.Filter{ResourceType: rel.Definition.Name, ResourceID: f.id, Relation: rel.Name}
	acc := resNo

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
	point := func(id string) error {
		fl := base
		srel := sub.Relation
		if srel == "" {
			srel = tuple.Ellipsis
		}
		fl.Subject = &tuple.SubjectFilter{Type: sub.Type, ID: id, Relation: srel}
		rels, err := rq.query(ctx, fl)
		if err != nil {
			return err
		}
		for i := range rels {
			cv, err := rq.caveat(&rels[i])
			if err != nil {
				return err
			}
			acc = or(acc, cv)
		}
		return nil
	}
	if exact {
		if err := point(sub.ID); err != nil {
			return result{}, err
		}
		if acc.perm == HasPermission {
			return acc, nil
		}
	}
	if wild {
		if err := point(tuple.Wildcard); err != nil {
			return result{}, err
		}
		if acc.perm == HasPermission {
			return acc, nil
		}
	}

	type branch struct {
		target *schema.Relation
		id     string
		cv     result
	}
	var branches []branch
	for _, us := range info.usersets {
		if !rq.e.an.canContain(us.target, sub.Type, sub.Relation) {
			continue
		}
		fl := base
		fl.Subject = &tuple.SubjectFilter{Type: us.typ, Relation: us.rel}
		rels, err := rq.query(ctx, fl)
		if err != nil {
			return result{}, err
		}
		for i := range rels {
			r := &rels[i]
			if r.Subject == sub || r.Subject.ID == tuple.Wildcard {
				continue // counted by the point read above
			}
			cv, err := rq.caveat(r)
			if err != nil {
				return result{}, err
			}
			if cv.perm == NoPermission {
				acc.deps(cv)
				continue
			}
			branches = append(branches, branch{target: us.target, id: r.Subject.ID, cv: cv})
		}
	}
	if len(branches) == 0 {
		return acc, nil
	}
	if len(branches) >= rq.e.wideFanout {
		bs := make([]fanBranch, len(branches))
		for i, b := range branches {
			bs[i] = fanBranch(b)
		}
		if res, ok := rq.wide(ctx, f, bs, sub); ok {
			return or(acc, res), nil
		}
	}
	sets, err := rq.fold(ctx, false, len(branches), len(branches) >= 2 && f.depth <= maxParallelDepth, func(ctx context.Context, i int) (result, error) {
		b := &branches[i]
		r, err := rq.check(ctx, f, b.target, b.id, sub)
		if err != nil {
			return result{}, err
		}
		return and(b.cv, r), nil
	})
	if err != nil {
		if acc.perm == HasPermission {
			return acc, nil
		}
		return result{}, err
	}
	return or(acc, sets), nil
}

// arrow evaluates tupleset->target: each (unexpired) relationship of the
// tupleset relation contributes its caveat and the target on its subject.
// tupleset->target (any) holds when one contribution does; with ArrowAll
// there must be a relationship and every contribution must hold, so that a
// relationship whose caveat is false, or whose subject's type lacks the
// target, makes the answer "no" (as SpiceDB's intersection arrow).
// Wildcard subjects, which the schema can only allow beside plain ones,
// are not followed.
func (rq *request) arrow(ctx context.Context, f *frame, w *schema.Rewrite, sub tuple.SubjectRef) (result, error) {
	rels, err := rq.query(ctx, tuple.Filter{ResourceType: f.rel.Definition.Name, ResourceID: f.id, Relation: w.Relation.Name})
	if err != nil {
		return result{}, err
	}
	type branch struct {
		target *schema.Relation
		id     string
		cv     result
	}
	// acc collects the dependencies of the relationships that decide
	// nothing themselves.
	acc := resNo
	branches := make([]branch, 0, len(rels))
	for i := range rels {
		r := &rels[i]
		if r.Subject.ID == tuple.Wildcard {
			continue
		}
		target := w.Targets[r.Subject.Type]
		cv, err := rq.caveat(r)
		if err != nil {
			return result{}, err
		}
		if cv.perm == NoPermission || target == nil || !rq.e.an.canContain(target, sub.Type, sub.Relation) {
			if w.ArrowAll {
				// One contribution is "no" whatever its target says:
				// so is the conjunction, until this relationship
				// expires.
				no := resNo
				no.deps(cv)
				return no, nil
			}
			acc.deps(cv)
			continue
		}
		branches = append(branches, branch{target: target, id: r.Subject.ID, cv: cv})
	}
	if w.ArrowAll {
		if len(branches) == 0 {
			return acc, nil
		}
		all, err := rq.fold(ctx, true, len(branches), len(branches) >= 2 && f.depth <= maxParallelDepth, func(ctx context.Context, i int) (result, error) {
			b := &branches[i]
			t, err := rq.check(ctx, f, b.target, b.id, sub)
			if err != nil {
				return result{}, err
			}
			return and(b.cv, t), nil
		})
		if err != nil {
			return result{}, err
		}
		all.deps(acc)
		return all, nil
	}
	if len(branches) >= rq.e.wideFanout {
		bs := make([]fanBranch, len(branches))
		for i, b := range branches {
			bs[i] = fanBranch(b)
		}
		if res, ok := rq.wide(ctx, f, bs, sub); ok {
			res.deps(acc)
			return res, nil
		}
	}
	any, err := rq.fold(ctx, false, len(branches), len(branches) >= 2 && f.depth <= maxParallelDepth, func(ctx context.Context, i int) (result, error) {
		b := &branches[i]
		t, err := rq.check(ctx, f, b.target, b.id, sub)
		if err != nil {
			return result{}, err
		}
		return and(b.cv, t), nil
	})
	if err != nil {
		return result{}, err
	}
	any.deps(acc)
	return any, nil
}

// maxParallelDepth is the deepest path frame whose branches may run on
// their own goroutines: parallelism near the root shortens the critical
// path, while deeper it mostly multiplies scheduling costs (measured: with
// every level parallel, CPU per uncached check was 3-4x the sequential one).
const maxParallelDepth = 2

// defaultWideFanout is the number of subject sets or arrow subjects from
// which a union is decided from the subject's side when possible: one walk
// up from the subject instead of one subproblem per branch.
const defaultWideFanout = 16

// fanBranch is one branch of a fan-out: target of object id, under the
// condition of the relationship that led there.
type fanBranch struct {
	target *schema.Relation
	id     string
	cv     result
}

// wide decides the union of and(cv, target(id)) over the branches below
// frame f with one reverse walk per distinct pure target. ok is false when
// some target is not pure, a walk was over budget, or no branch is yes
// within the depth limit while one is yes only beyond it; the caller then
// evaluates top-down.
func (rq *request) wide(ctx context.Context, f *frame, branches []fanBranch, sub tuple.SubjectRef) (result, bool) {
	sets := map[*schema.Relation]*revSet{}
	for _, b := range branches {
		if _, seen := sets[b.target]; seen {
			continue
		}
		if b.target == nil || !rq.e.an.pure[b.target.Index] {
			return result{}, false
		}
		m, ok := rq.reverseMembers(ctx, b.target, sub)
		if !ok {
			return result{}, false
		}
		sets[b.target] = m
	}
	acc := resNo
	for _, m := range sets {
		acc.deps(result{expires: m.expires, cut: noCut})
	}
	deep := false
	for _, b := range branches {
		t := resNo
		// The targets are checked one frame below f.
		if in, known := sets[b.target].member(b.id, f.depth+1, rq.e.opts.MaxDepth); in && known {
			t = resYes
			t.h = sets[b.target].ids[b.id].h
		} else if in {
			deep = true
			continue
		}
		if acc = or(acc, and(b.cv, t)); acc.perm == HasPermission {
			return acc, true
		}
	}
	return acc, !deep
}

// fold combines n branches with Kleene and (isAnd) or or, stopping at the
// first deciding value (no for and, yes for or). With parallel set, up to
// the request's goroutine budget of branches run concurrently. An error in
// a branch fails the fold unless another branch decided it.
func (rq *request) fold(ctx context.Context, isAnd bool, n int, parallel bool, branch func(context.Context, int) (result, error)) (result, error) {
	acc, decide := resNo, HasPermission
	if isAnd {
		acc, decide = resYes, NoPermission
	}
	combine := func(r result) {
		if isAnd {
			acc = and(acc, r)
		} else {
			acc = or(acc, r)
		}
	}
	if !parallel || rq.tokens == nil || n < 2 {
		var firstErr error
		for i := 0; i < n; i++ {
			r, err := branch(ctx, i)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			combine(r)
			if acc.perm == decide {
				return acc, nil
			}
		}
		if firstErr != nil {
			return result{}, firstErr
		}
		return acc, nil
	}

	// The first branch runs inline before any goroutine is started: it is
	// the cheapest (see plan) and often decides alone.
	errAt, firstErr := n, error(nil)
	if r, err := branch(ctx, 0); err != nil {
		errAt, firstErr = 0, err
	} else if combine(r); acc.perm == decide {
		return acc, nil
	}
	if n == 2 {
		r, err := branch(ctx, 1)
		switch {
		case err == nil:
			combine(r)
			if acc.perm == decide || firstErr == nil {
				return acc, nil
			}
			return result{}, firstErr
		case firstErr != nil:
			return result{}, firstErr
		}
		return result{}, err
	}

	type out struct {
		i   int
		r   result
		err error
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan out, n)
	spawned := 0
	inline := make([]int, 0, n)
	for i := 2; i < n; i++ {
		select {
		case rq.tokens <- struct{}{}:
			spawned++
			go func() {
				r, err := branch(cctx, i)
				<-rq.tokens
				ch <- out{i, r, err}
			}()
		default:
			inline = append(inline, i)
		}
	}
	decided := false
	inline = append([]int{1}, inline...)
	for _, i := range inline {
		r, err := branch(cctx, i)
		if err != nil {
			if i < errAt {
				errAt, firstErr = i, err
			}
			continue
		}
		combine(r)
		if acc.perm == decide {
			decided = true
			cancel()
			break
		}
	}
	for range spawned {
		o := <-ch
		if decided {
			continue
		}
		if o.err != nil {
			if o.i < errAt {
				errAt, firstErr = o.i, o.err
			}
			continue
		}
		combine(o.r)
		if acc.perm == decide {
			decided = true
			cancel()
		}
	}
	if !decided && firstErr != nil {
		return result{}, firstErr
	}
	return acc, nil
}
