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
}

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
// chunkRequest (stream.go) copies what it sets: keep the two together.
func (e *Evaluator) newRequestReaching(p Params, uncached []bool) (*request, error) {
	if p.Reader == nil {
		return nil, invalidRequest("no store reader")
	}
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	rq := &request{
		e:       e,
		reader:  p.Reader,
		rev:     p.Reader.Revision(),
		now:     now,
		context: p.Context,
	}
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
	if e.opts.Concurrency > 1 {
		rq.tokens = make(chan struct{}, e.opts.Concurrency-1)
	}
	return rq, nil
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
	if rq.batch != nil {
		out, err := rq.batch.AppendRelationships(ctx, nil, f, store.QueryOptions{Now: rq.now, Limit: limit})
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
