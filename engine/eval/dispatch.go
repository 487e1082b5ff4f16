package eval

import (
	"context"
	"time"
)

// dispatcher evaluates one subproblem on the path frame f. The evaluator
// chains implementations as decorators: memoLayer (in-request sharing) ->
// cacheLayer (cross-request, optional) -> computeLayer.
type dispatcher interface {
	dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error)
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
	c = &call{depth: f.depth, seq: f.seq}
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

// cacheLayer keeps exact answers across requests in a cache.Cache, keyed by
// revision, schema, relation, object, subject and (for relations a caveat
// can reach) the request's caveat context.
type cacheLayer struct {
	cache *Cache
	next  dispatcher
}

// cacheEntry is a cached answer and the interval of clock values for which
// it holds: relationships expired before computed were invisible then (but
// visible to an earlier clock), and expires is when one that was read ends.
type cacheEntry struct {
	perm     Permissionship
	missing  []string
	computed time.Time
	expires  time.Time
	h        int32 // see result.h
}

// lookup returns the cached answer to sp valid at rq.now, without
// allocating. The root of a check probes it before the memo layer, so a
// warm check allocates no memo table.
// probe is lookup for the root, whose miss is followed by dispatch's own
// lookup: only its hits count in the cache's statistics.
func (c cacheLayer) lookup(rq *request, sp subproblem, probe bool) (result, bool) {
	var buf [128]byte
	key, ok := rq.appendCacheKey(buf[:0], sp)
	if !ok {
		return result{}, false
	}
	return c.lookupKey(key, rq.now, probe)
}

// lookupKey is lookup by key, for an answer valid at now.
func (c cacheLayer) lookupKey(key []byte, now time.Time, probe bool) (result, bool) {
	var ent cacheEntry
	var hit bool
	if probe {
		ent, hit = c.cache.Probe(key)
	} else {
		ent, hit = c.cache.GetBytes(key)
	}
	if !hit {
		return result{}, false
	}
	if !now.Before(ent.computed) && (ent.expires.IsZero() || now.Before(ent.expires)) {
		return result{perm: ent.perm, missing: ent.missing, expires: ent.expires, cut: noCut, h: ent.h}, true
	}
	return result{}, false
}

func (c cacheLayer) dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error) {
	if res, hit := c.lookup(rq, sp, false); hit && res.fits(f.depth, rq.e.opts.MaxDepth) {
		return res, nil
	}
	res, err := c.next.dispatch(ctx, rq, f, sp)
	if err == nil && res.cut == noCut {
		key, ok := rq.cacheKey(sp)
		if !ok {
			return res, err
		}
		size := int64(64)
		for _, m := range res.missing {
			size += int64(len(m)) + 16
		}
		c.cache.Set(key, cacheEntry{perm: res.perm, missing: res.missing, computed: rq.now, expires: res.expires, h: res.h}, size)
	}
	return res, err
}
