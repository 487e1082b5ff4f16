package eval

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// request is the state of one API call: its snapshot, clock and caveat
// context, its goroutine budget, and the table of subproblems it has
// evaluated or is evaluating (shared by every item of a CheckBulk).
type request struct {
	e       *Evaluator
	reader  store.Reader
	rev     store.Revision
	now     time.Time
	context map[string]any
	// stats are the store's statistics for the planner; nil when the
	// store keeps none.
	stats *store.Statistics
	// points is reader's point reads, when it has them (not through an
	// overlay of contextual relationships).
	points store.PointReader
	// batch is reader's closure-free queries, when it has them (not
	// through an overlay).
	batch store.BatchReader

	// tokens bounds the extra goroutines of this request.
	tokens chan struct{}
	seq    atomic.Uint64

	mu   sync.Mutex
	memo map[subproblem]*call
	revs map[revKey]*revSet

	// uncached marks, by relation index, the relations whose subproblems
	// can read a contextual relationship: they bypass the cross-request
	// cache and stay on this node. nil when the call has none.
	uncached []bool
	// overlay is set when the reader overlays contextual relationships.
	overlay bool
	// nestedEdges marks, by relation index, the relations that the
	// call's contextual relationships add nested-group edges to (see
	// nestedUsable); nil when they add none.
	nestedEdges []bool

	// mem is the request's share of Options.Memory (memory.go); done
	// gives it back.
	mem account

	ctxOnce sync.Once
	ctxHash uint64
	ctxOK   bool // the context could be hashed; else caveated results are not cached

	// pooled marks a request of one Check, taken from and given back to
	// the evaluator's pool (takeRequest): its memo's map, its slabs of
	// calls and frames and its root statistics are reused by the next
	// check, so that an uncached check allocates none of them.
	pooled bool
	// calls is the slab the memo's calls are cut from (under mu).
	calls []call
	// frames is the slab of path frames of a pooled request that runs on
	// one goroutine (no goroutine tokens); nil otherwise.
	frames []frame
	// rootStats is the statistics of a pooled request's one root check.
	rootStats checkStats
	// scratch is the buffer of scratchRels.
	scratch []tuple.Relationship
	// fans is the slab of takeBranches.
	fans []fanBranch
}

// Bounds on what a pooled request keeps for the next check: a check that
// grew its memo or slabs beyond them leaves them to the collector, so that
// one large check does not make every later one clear a large map.
const (
	poolMemoMax = 256
	poolSlabMax = 256
	minSlab     = 16
)

// subproblem is "is sub in relation rel of object id?"; rel is the dense
// Relation.Index (the object type is the relation's definition).
type subproblem struct {
	rel int
	id  string
	sub tuple.SubjectRef
}

// frame is one node of the path from a request to the subproblem being
// evaluated. Frames are immutable and shared by the goroutines below them.
type frame struct {
	parent *frame
	rel    *schema.Relation
	id     string
	depth  int32
	seq    uint64      // start order, for the wait rule of memoLayer
	st     *checkStats // statistics of the root check; nil when none
	local  bool        // evaluate here, never route (see remoteLayer)
	// pinned keeps this frame and everything below it on this node: a
	// peer answered it with the depth error, which the local evaluation
	// reproduces with its path (routing again would repeat the work on
	// every level).
	pinned bool
	// cycled is set when the evaluation below came back to this frame
	// (a cycle in the data), for the message of a MaxDepthError.
	cycled atomic.Bool
}

// checkStats counts the work of one root check. Its branches may run on
// several goroutines, so the counters are atomic.
type checkStats struct {
	dispatches atomic.Int64 // subproblems dispatched, memo and cache hits included
	depth      atomic.Int32 // deepest frame dispatched (root = 1)
	// subjectSide counts arrows and sets of subject sets the planner
	// decided from the subject's side (see arrow, subjectSetBranches).
	subjectSide atomic.Int64
}

// dispatched records a dispatch at depth d (0: a root answered from the
// cache without a frame). st may be nil.
func (st *checkStats) dispatched(d int32) {
	if st == nil {
		return
	}
	st.dispatches.Add(1)
	for {
		cur := st.depth.Load()
		if d <= cur || st.depth.CompareAndSwap(cur, d) {
			return
		}
	}
}

func (e *Evaluator) newRequest(p Params) (*request, error) {
	return e.newRequestReaching(p, nil)
}

// newRequestReaching is newRequest with the relations p.Contextual reaches
// (see analysis.reaching) already computed, or nil to compute them.
func (e *Evaluator) newRequestReaching(p Params, uncached []bool) (*request, error) {
	if p.Reader == nil {
		return nil, invalidRequest("no store reader")
	}
	rq := new(request)
	e.initRequest(rq, p, uncached)
	return rq, nil
}

// takeRequest is newRequestReaching for one Check: the request comes from
// the evaluator's pool and must be given back with releaseRequest (which
// ends it, as done does) once nothing the check returns refers to it.
// Results never do: they hold their own strings and slices.
func (e *Evaluator) takeRequest(p Params, uncached []bool) (*request, error) {
	if p.Reader == nil {
		return nil, invalidRequest("no store reader")
	}
	rq, _ := e.requests.Get().(*request)
	if rq == nil {
		rq = new(request)
	}
	e.initRequest(rq, p, uncached)
	rq.pooled = true
	if rq.tokens != nil {
		rq.frames = nil // several goroutines: frames from the heap
	}
	return rq, nil
}

// releaseRequest ends a request of takeRequest and gives it back to the
// pool, keeping its memo's map and slabs (emptied) when they are small.
// Every goroutine of the request has returned by then: folds wait for
// the branches they start.
func (e *Evaluator) releaseRequest(rq *request) {
	rq.done()
	memo, calls, frames, tokens := rq.memo, rq.calls, rq.frames, rq.tokens
	if len(memo) > poolMemoMax {
		memo = nil
	}
	clear(memo)
	if cap(calls) > poolSlabMax {
		calls = nil
	}
	clear(calls) // the rest of the slab was never handed out: still zero
	if cap(frames) > poolSlabMax {
		frames = nil
	}
	clear(frames)
	if len(tokens) != 0 {
		tokens = nil
	}
	scratch := rq.scratch
	clear(scratch[:cap(scratch)]) // the strings of the last queries
	fans := rq.fans
	if cap(fans) > poolSlabMax {
		fans = nil
	}
	clear(fans)
	*rq = request{memo: memo, calls: calls[:0], frames: frames[:0], tokens: tokens, scratch: scratch[:0], fans: fans[:0]}
	e.requests.Put(rq)
}

// newCall returns a zero call for the memo, from the request's slab when
// it is pooled. Called under rq.mu. A full slab is replaced by one twice
// its size (the calls already handed out stay where they are).
func (rq *request) newCall() *call {
	if !rq.pooled {
		return new(call)
	}
	if len(rq.calls) == cap(rq.calls) {
		rq.calls = make([]call, 0, max(minSlab, 2*cap(rq.calls)))
	}
	rq.calls = rq.calls[:len(rq.calls)+1]
	return &rq.calls[len(rq.calls)-1]
}

// initRequest sets rq up for p. rq is zero but for what releaseRequest
// keeps. chunkRequest (stream.go) copies what it sets: keep the two
// together.
func (e *Evaluator) initRequest(rq *request, p Params, uncached []bool) {
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	rq.e = e
	rq.reader = p.Reader
	rq.rev = p.Reader.Revision()
	rq.now = now
	rq.context = p.Context
	if sr, ok := p.Reader.(store.StatsReader); ok && e.statsFanout > 0 && e.arrowProbe > 0 {
		rq.stats = sr.Statistics()
	}
	rq.mem.m = e.opts.Memory
	rq.points, _ = p.Reader.(store.PointReader)
	rq.batch, _ = p.Reader.(store.BatchReader)
	if len(p.Contextual) > 0 {
		rq.points, rq.batch = nil, nil
		rq.overlay = true
		rq.reader = store.Overlay(p.Reader, p.Contextual)
		rq.uncached = uncached
		if rq.uncached == nil {
			rq.uncached = e.an.reaching(p.Contextual)
		}
		rq.nestedEdges = e.contextualEdges(p.Contextual)
	}
	if e.opts.Concurrency > 1 && rq.tokens == nil {
		rq.tokens = make(chan struct{}, e.opts.Concurrency-1)
	}
}

// contextHash returns a hash of the request's caveat context; ok is false
// when the context cannot be encoded (then caveated results are not cached).
func (rq *request) contextHash() (uint64, bool) {
	rq.ctxOnce.Do(func() {
		if len(rq.context) == 0 {
			rq.ctxOK = true
			return
		}
		// encoding/json sorts map keys, so equal contexts hash equally.
		b, err := json.Marshal(rq.context)
		if err != nil {
			return
		}
		h := fnv.New64a()
		h.Write(b)
		rq.ctxHash, rq.ctxOK = h.Sum64(), true
	})
	return rq.ctxHash, rq.ctxOK
}

// query collects the relationships matching f, visible at rq.now. It reads
// them all before returning so that no store iterator stays open while the
// evaluator recurses.
func (rq *request) query(ctx context.Context, f tuple.Filter) ([]tuple.Relationship, error) {
	return rq.queryLimit(ctx, f, 0)
}

// done ends the request: what it charged to the memory budget is given
// back. Every evaluator entry point that makes a request defers it.
func (rq *request) done() { rq.mem.close() }

// chargeRels is the most relationships a query reads between two charges
// to the memory budget.
const chargeRels = 1024

// queryLimit is query stopped after limit relationships.
func (rq *request) queryLimit(ctx context.Context, f tuple.Filter, limit int) ([]tuple.Relationship, error) {
	return rq.queryInto(ctx, nil, f, limit)
}

// queryScratch is queryLimit into the request's scratch buffer (see
// scratchRels): its answer is valid only until the next query made
// through the scratch buffer, so the caller must use it up first (turn it
// into branches, say) without dispatching.
func (rq *request) queryScratch(ctx context.Context, f tuple.Filter, limit int) ([]tuple.Relationship, error) {
	out, err := rq.queryInto(ctx, rq.scratchRels(), f, limit)
	rq.keepScratch(out)
	return out, err
}

// queryInto is queryLimit appending to dst (empty).
func (rq *request) queryInto(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, limit int) ([]tuple.Relationship, error) {
	if rq.batch != nil {
		out, err := rq.batch.AppendRelationships(ctx, dst, f, store.QueryOptions{Now: rq.now, Limit: limit})
		if err != nil {
			return nil, err
		}
		// Charged for what it read (the loop below charges ahead).
		if len(out) > 0 {
			if err := rq.mem.charge(int64(len(out)) * relationshipBytes); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return rq.queryIter(ctx, f, limit)
}

// queryIter is queryLimit through the reader's iterator (a reader without
// batch queries). Apart from queryInto so that the iterator's closure
// does not move queryInto's variables to the heap.
func (rq *request) queryIter(ctx context.Context, f tuple.Filter, limit int) ([]tuple.Relationship, error) {
	var out []tuple.Relationship
	charged := 0
	for r, err := range rq.reader.QueryRelationships(ctx, f, store.QueryOptions{Now: rq.now, Limit: limit}) {
		if err != nil {
			return nil, err
		}
		if len(out) == charged {
			// Ahead of the slice's growth, by as much as it holds (one
			// at first, chargeRels at most): a query of a few
			// relationships is charged a few, not a block of
			// chargeRels (a streamed lookup's chunk of 128 Checks was
			// charged 25 MB that way).
			step := min(max(charged, 1), chargeRels)
			if err := rq.mem.charge(int64(step) * relationshipBytes); err != nil {
				return nil, err
			}
			charged += step
		}
		out = append(out, r)
	}
	return out, nil
}

// appendQuery appends the relationships matching f to dst: one batch
// query when the reader has them, else through its iterator. Unlike
// queryLimit it charges nothing to the memory budget: its callers read
// rows they use at once (the nested-group index's).
func (rq *request) appendQuery(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if rq.batch != nil {
		return rq.batch.AppendRelationships(ctx, dst, f, opts)
	}
	return store.AppendSeq(dst, rq.reader.QueryRelationships(ctx, f, opts))
}

// appendReverseQuery is appendQuery for a reverse filter.
func (rq *request) appendReverseQuery(ctx context.Context, dst []tuple.Relationship, f tuple.ReverseFilter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if rq.batch != nil {
		return rq.batch.AppendReverseRelationships(ctx, dst, f, opts)
	}
	return store.AppendSeq(dst, rq.reader.ReverseQueryRelationships(ctx, f, opts))
}

// takeBranches returns an empty slice of fan-out branches with room for
// n: cut from the request's slab when the request is pooled and runs on
// one goroutine (the branches live until the request ends), else made.
func (rq *request) takeBranches(n int) []fanBranch {
	if !rq.pooled || rq.tokens != nil || n == 0 {
		return make([]fanBranch, 0, n)
	}
	if cap(rq.fans)-len(rq.fans) < n {
		rq.fans = make([]fanBranch, 0, max(minSlab, n, 2*cap(rq.fans)))
	}
	l := len(rq.fans)
	rq.fans = rq.fans[:l+n]
	return rq.fans[l : l : l+n]
}

// scratchRels returns an empty buffer for the answer of a query that is
// used up before the next query is made (no dispatch in between): the
// request's own buffer when the request is pooled and runs on one
// goroutine, else nil (a fresh slice). Give it back with keepScratch.
func (rq *request) scratchRels() []tuple.Relationship {
	if rq.pooled && rq.tokens == nil {
		return rq.scratch[:0]
	}
	return nil
}

// keepScratch keeps buf, a buffer of scratchRels grown by a query, for the
// next one.
func (rq *request) keepScratch(buf []tuple.Relationship) {
	if rq.pooled && rq.tokens == nil && cap(buf) <= poolSlabMax {
		rq.scratch = buf[:0]
	}
}

// planned counts, for the root check of f and the evaluator's plan
// counters, an arrow or a set of subject sets decided from the subject's
// side (plan p).
func (rq *request) planned(f *frame, p Plan) {
	if f.st != nil {
		f.st.subjectSide.Add(1)
	}
	rq.count(p)
}

// caveat evaluates the condition of r: yes when r has no caveat. The
// result carries r's expiration as a dependency.
func (rq *request) caveat(r *tuple.Relationship) (result, error) {
	res := resYes
	res.expires = r.Expiration
	if r.Caveat == nil {
		return res, nil
	}
	c := rq.e.s.Caveats[r.Caveat.Name]
	if c == nil {
		return result{}, &CaveatError{Caveat: r.Caveat.Name, Relationship: r.Key().String(), Err: ErrUnknownCaveat}
	}
	ctx := rq.context
	switch {
	case len(r.Caveat.Context) == 0:
	case len(ctx) == 0:
		ctx = r.Caveat.Context
	default:
		// Values stored with the relationship win over the request's.
		m := make(map[string]any, len(ctx)+len(r.Caveat.Context))
		for k, v := range ctx {
			m[k] = v
		}
		for k, v := range r.Caveat.Context {
			m[k] = v
		}
		ctx = m
	}
	cr, err := c.Evaluate(ctx)
	if err != nil {
		return result{}, &CaveatError{Caveat: r.Caveat.Name, Relationship: r.Key().String(), Err: err}
	}
	switch cr.Kind {
	case schema.CaveatTrue:
		return res, nil
	case schema.CaveatMissing:
		res.perm = ConditionalPermission
		res.missing = cr.Missing
		return res, nil
	}
	res.perm = NoPermission
	return res, nil
}

// resolve finds the relation named by a request and validates the subject.
func (e *Evaluator) resolve(typ, name string) (*schema.Relation, error) {
	def := e.s.Definitions[typ]
	if def == nil {
		return nil, &UnknownDefinitionError{Name: typ}
	}
	r := def.Relations[name]
	if r == nil {
		return nil, &UnknownRelationError{Definition: typ, Relation: name}
	}
	return r, nil
}

func (e *Evaluator) validateSubject(s tuple.SubjectRef) error {
	if s.Type == "" || s.ID == "" {
		return invalidRequest("subject %q needs a type and an id", s.String())
	}
	def := e.s.Definitions[s.Type]
	if def == nil {
		return &UnknownDefinitionError{Name: s.Type}
	}
	if s.Relation != "" {
		if s.ID == tuple.Wildcard {
			return invalidRequest("subject %q: a wildcard cannot have a relation", s.String())
		}
		if def.Relations[s.Relation] == nil {
			return &UnknownRelationError{Definition: s.Type, Relation: s.Relation}
		}
	}
	return nil
}

// defaultReverseBudget bounds the objects a reverse check may reach before
// it gives up for the top-down walk: a subject in very many nested sets is
// cheaper to check from the resource.
const defaultReverseBudget = 512

type revKey struct {
	rel int
	sub tuple.SubjectRef
}

// revSet is every object whose relation rel contains a subject, found by
// walking up from the subject (see analysis.reverseCheck), with the height
// of its shortest path to the subject (see revVal).
type revSet struct {
	done    chan struct{}
	ids     map[string]revVal
	expires time.Time
	ok      bool // false: over budget or failed; use the top-down walk
}

// member answers whether object id's relation, checked at frame depth d,
// contains the subject: known is false when the path that makes it so is
// longer than the depth limit allows from d, and the top-down walk must
// decide (it fails on that path as a top-down check would).
func (rs *revSet) member(id string, d int32, limit int) (in, known bool) {
	v, ok := rs.ids[id]
	if !ok {
		return false, true
	}
	return true, int(d)-1+int(v.h) <= limit
}

// reverseMembers returns the objects of rel's type whose rel contains sub,
// computing them once per request. ok is false when the walk was over
// budget or failed: the caller then evaluates top-down (which reports any
// store error itself).
func (rq *request) reverseMembers(ctx context.Context, rel *schema.Relation, sub tuple.SubjectRef) (*revSet, bool) {
	k := revKey{rel.Index, sub}
	rq.mu.Lock()
	if rq.revs == nil {
		rq.revs = make(map[revKey]*revSet)
	}
	rs := rq.revs[k]
	if rs != nil {
		rq.mu.Unlock()
		// The walk reads the store only; waiting for it cannot deadlock.
		select {
		case <-rs.done:
			return rs, rs.ok
		case <-ctx.Done():
			return nil, false
		}
	}
	rs = &revSet{done: make(chan struct{})}
	rq.revs[k] = rs
	rq.mu.Unlock()
	if ids, expires, ok := rq.nestedMembers(ctx, rel, sub); ok {
		rs.ids, rs.expires, rs.ok = ids, expires, true
		close(rs.done)
		return rs, true
	}
	w := newReverseWalk(rq, rel)
	w.budget = rq.e.reverseBudget
	if err := w.run(ctx, sub); err == nil {
		rs.ids, rs.expires, rs.ok = w.vals[rel.Index], w.expires, true
		for _, v := range rs.ids {
			if !v.exact {
				rs.ok = false // not pure after all; never guess
			}
		}
	} else if !errors.Is(err, errBudget) {
		// A failure (cancellation of this branch, say) must not stick
		// to the request: forget it so that the next caller retries.
		rq.mu.Lock()
		delete(rq.revs, k)
		rq.mu.Unlock()
	}
	close(rs.done)
	return rs, rs.ok
}
