package eval

import (
	"context"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// checkRoot answers req as a root check.
func (rq *request) checkRoot(ctx context.Context, req CheckRequest) (CheckResult, error) {
	rel, err := rq.e.root(req)
	if err != nil {
		return CheckResult{}, err
	}
	return rq.checkRel(ctx, rel, req)
}

// checkRel is checkRoot for req, validated, about rel.
func (rq *request) checkRel(ctx context.Context, rel *schema.Relation, req CheckRequest) (CheckResult, error) {
	st := &rq.rootStats
	if !rq.pooled {
		// A bulk request checks several roots.
		st = new(checkStats)
	}
	res, err := rq.start(ctx, checkCall{stats: st, rel: rel, id: req.Resource.ID, sub: req.Subject})
	if err != nil {
		return CheckResult{}, err
	}
	cr := res.checkResult()
	cr.Dispatches = int(st.dispatches.Load())
	cr.Depth = int(st.depth.Load())
	cr.SubjectSidePlans = int(st.subjectSide.Load())
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

// checkCall is one check to start: is sub in rel of object id, below the
// path parent (nil: a root check)?
type checkCall struct {
	parent *frame
	// stats counts the work of the root check; nil counts nothing.
	stats *checkStats
	// local keeps the subproblem on this node: another node's router
	// dispatched it here (see remoteLayer).
	local bool
	rel   *schema.Relation
	id    string
	sub   tuple.SubjectRef
}

// check decides whether sub is in rel of object id, below the path parent.
func (rq *request) check(ctx context.Context, parent *frame, rel *schema.Relation, id string, sub tuple.SubjectRef) (result, error) {
	c := checkCall{parent: parent, rel: rel, id: id, sub: sub}
	if parent != nil {
		c.stats = parent.st
	}
	return rq.start(ctx, c)
}

// start answers the trivial cases of c itself (membership of a subject set
// in itself, impossible subject kinds, a root answered by the cache,
// cycles, depth) and dispatches the rest on a new frame.
func (rq *request) start(ctx context.Context, c checkCall) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	if res, ok := rq.trivial(c); ok {
		return res, nil
	}
	sp := subproblem{rel: c.rel.Index, id: c.id, sub: c.sub}
	if c.parent == nil {
		if res, ok := rq.e.chain.settled(rq.rev, rq.now, &sp, rq); ok {
			traceCacheHit(ctx, rq.e.opts.Tracer, c.rel, c.id, 1, res.perm)
			c.stats.dispatched(0)
			return res, nil
		}
	}
	if res, ok := c.cycle(); ok {
		return res, nil
	}
	f := rq.newFrame(c)
	if int(f.depth) > rq.e.opts.MaxDepth {
		return result{}, maxDepthError(rq.e.opts.MaxDepth, f)
	}
	c.stats.dispatched(f.depth)
	return rq.e.chain.dispatch(ctx, rq, f, sp)
}

// trivial answers c without reading: a subject set contains itself, and
// the schema rules out subjects of kinds the relation cannot contain.
func (rq *request) trivial(c checkCall) (result, bool) {
	if c.sub.Relation == c.rel.Name && c.sub.ID == c.id && c.sub.Type == c.rel.Definition.Name {
		return resYes, true
	}
	if !rq.e.an.canContain(c.rel, c.sub.Type, c.sub.Relation) {
		return resNo, true
	}
	return result{}, false
}

// cycle answers c when its node is already on the path: a cycle in the
// data, whose least fixpoint is computed by taking the node as "no" on
// the way back to it.
func (c checkCall) cycle() (result, bool) {
	for f := c.parent; f != nil; f = f.parent {
		if f.rel == c.rel && f.id == c.id {
			f.cycled.Store(true)
			r := resNo
			r.cut = f.depth
			return r, true
		}
	}
	return result{}, false
}

// newFrame is the path node of c, one below its parent.
func (rq *request) newFrame(c checkCall) *frame {
	var f *frame
	if rq.pooled && rq.tokens == nil {
		// One goroutine: cut the frame from the request's slab.
		if len(rq.frames) == cap(rq.frames) {
			rq.frames = make([]frame, 0, max(minSlab, 2*cap(rq.frames)))
		}
		rq.frames = rq.frames[:len(rq.frames)+1]
		f = &rq.frames[len(rq.frames)-1]
	} else {
		f = new(frame)
	}
	f.parent, f.rel, f.id, f.depth, f.seq, f.st, f.local = c.parent, c.rel, c.id, 1, rq.seq.Add(1), c.stats, c.local
	if p := c.parent; p != nil {
		f.depth = p.depth + 1
		f.pinned = p.pinned
	}
	return f
}

// compute evaluates a subproblem from its definition: the end of the
// dispatch chain.
func (rq *request) compute(ctx context.Context, f *frame, sub tuple.SubjectRef) (result, error) {
	var res result
	var err error
	if f.rel.Rewrite != nil {
		var ok bool
		if res, ok = rq.nestedArrowCheck(ctx, f, sub); !ok {
			res, err = rq.rewrite(ctx, f, f.rel.Rewrite, sub)
		}
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

// rewrite evaluates w on f's object.
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
		op := disjunction
		if w.Kind == schema.RewriteIntersection {
			op = conjunction
		}
		order := rq.childOrder(w, plan)
		return rq.fold(ctx, fold{op: op, n: len(w.Children), parallel: plan.parallel && f.depth <= maxParallelDepth,
			f: f, sub: sub, w: w, order: order})
	case schema.RewriteExclusion:
		return rq.exclusion(ctx, f, w, sub)
	}
	return resNo, nil
}
