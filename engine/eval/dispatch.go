package eval

import (
	"context"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
)

// dispatcher evaluates one subproblem on the path frame f. The evaluator
// chains implementations as decorators (see newChain): memoLayer
// (in-request sharing) -> traceLayer (spans, optional) -> remoteLayer
// (cluster, optional) -> cacheLayer (cross-request, optional) ->
// computeLayer.
type dispatcher interface {
	dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error)
}

// dispatchChain is the evaluator's dispatch chain: its first layer, and
// its cache layer (nil when there is none), which may settle a root
// subproblem before the chain allocates anything for it.
type dispatchChain struct {
	first dispatcher
	cache *cacheLayer
}

// newChain builds the dispatch chain of e for opts; ac, when not nil,
// replaces opts.Cache as the cross-request cache.
func newChain(e *Evaluator, opts Options, ac answerCache) dispatchChain {
	var c dispatchChain
	var d dispatcher = computeLayer{}
	if opts.Cache != nil || ac != nil {
		c.cache = &cacheLayer{next: d, schemaID: e.schemaID, caveated: e.an.caveated, maxDepth: opts.MaxDepth, tracer: opts.Tracer}
		if ac != nil {
			c.cache.other = ac
		} else {
			c.cache.shared = opts.Cache
		}
		d = c.cache
	}
	if opts.Router != nil {
		d = remoteLayer{router: opts.Router, next: d, tracer: opts.Tracer}
	}
	if opts.Tracer != nil {
		d = traceLayer{tracer: opts.Tracer, next: d}
	}
	c.first = memoLayer{next: d}
	return c
}

// dispatch evaluates sp on the path frame f through the whole chain.
func (c *dispatchChain) dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error) {
	return c.first.dispatch(ctx, rq, f, sp)
}

// settled returns the answer to the root subproblem sp at revision rev and
// clock now that is known without evaluating it: a cached one. rq is the
// request, for its caveat context; nil before one exists, when the context
// is empty. It is asked before the memo and remote layers, so that a warm
// check allocates nothing (and a root this node has cached is not sent).
func (c *dispatchChain) settled(rev store.Revision, now time.Time, sp *subproblem, rq *request) (result, bool) {
	return c.cache.settled(rev, now, sp, rq)
}

// computeLayer evaluates the subproblem from the schema.
type computeLayer struct{}

func (computeLayer) dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error) {
	return rq.compute(ctx, f, sp.sub)
}

// call is one evaluation of a subproblem within a request. done is made
// only when someone waits; finished, res and err are set under rq.mu.
type call struct {
	done     chan struct{}
	finished bool
	res      result
	err      error
	depth    int32
	seq      uint64
}

func (c *call) exact() bool { return c.err == nil && c.res.cut == noCut }

// memoLayer shares subproblems within a request: a finished exact answer is
// reused, and an identical evaluation in flight is waited for
// (singleflight) when waiting cannot deadlock.
//
// Waiting is safe when the call waited for is smaller, in the order
// (deeper first, then started earlier), than every frame on the waiter's
// path: a wait-for cycle would need a strictly decreasing cycle. Since
// frames deepen along a path, comparing with the waiter's deepest frame
// suffices. Otherwise the waiter evaluates the subproblem itself.
type memoLayer struct {
	next dispatcher
}

func (m memoLayer) dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error) {
	rq.mu.Lock()
	c, ok := rq.memo[sp]
	if ok {
		if c.finished {
			if c.exact() && c.res.fits(f.depth, rq.e.opts.MaxDepth) {
				rq.mu.Unlock()
				return c.res, nil
			}
			// Replace an inexact or failed evaluation, or a grant whose
			// path is too long from this deeper frame.
			ok = false
		} else {
			p := f.parent
			if p == nil || c.depth > p.depth || (c.depth == p.depth && c.seq < p.seq) {
				if c.done == nil {
					c.done = make(chan struct{})
				}
				done := c.done
				rq.mu.Unlock()
				select {
				case <-done:
				case <-ctx.Done():
					return result{}, ctx.Err()
				}
				rq.mu.Lock()
				res, exact := c.res, c.exact()
				rq.mu.Unlock()
				if exact && res.fits(f.depth, rq.e.opts.MaxDepth) {
					return res, nil
				}
				return m.next.dispatch(ctx, rq, f, sp)
			}
			rq.mu.Unlock()
			return m.next.dispatch(ctx, rq, f, sp)
		}
	}
	if !ok && rq.memo[sp] == nil {
		if err := rq.mem.charge(memoBytes); err != nil {
			rq.mu.Unlock()
			return result{}, err
		}
	}
	c = rq.newCall()
	c.depth, c.seq = f.depth, f.seq
	if rq.memo == nil {
		rq.memo = make(map[subproblem]*call)
	}
	rq.memo[sp] = c
	rq.mu.Unlock()
	res, err := m.next.dispatch(ctx, rq, f, sp)
	rq.mu.Lock()
	c.res, c.err, c.finished = res, err, true
	if c.done != nil {
		close(c.done)
	}
	rq.mu.Unlock()
	return res, err
}
