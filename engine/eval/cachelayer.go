package eval

import (
	"context"
	"encoding/binary"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/pemba-authz/pemba/engine/cache"
	"github.com/pemba-authz/pemba/engine/store"
)

// This file is the cross-request result cache of the evaluator: the
// cacheLayer of the dispatch chain is the only code that reads or writes
// it (tests swap in a double through the answerCache interface).

// Cache is the cross-request result cache of evaluators: subproblem
// answers by revision, schema, relation, object, subject and context.
type Cache = cache.Cache[cacheEntry]

// NewCache returns a result cache of about maxBytes bytes.
func NewCache(maxBytes int64) *Cache { return cache.New[cacheEntry](maxBytes) }

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

// at returns the entry's answer for clock value now, if it holds then.
func (ent cacheEntry) at(now time.Time) (result, bool) {
	if now.Before(ent.computed) || (!ent.expires.IsZero() && !now.Before(ent.expires)) {
		return result{}, false
	}
	return result{perm: ent.perm, missing: ent.missing, expires: ent.expires, cut: noCut, h: ent.h}, true
}

// cacheKey identifies a subproblem's answer across requests: revision and
// schema first, so that no answer crosses revisions or schemas, and the
// hash of the caveat context when a caveat can influence the relation. The
// shared cache gets its encoding (appendKey), built in place from the
// subproblem; an answerCache gets it as a value, so that nothing of it
// escapes to the heap.
type cacheKey struct {
	rev    store.Revision
	schema uint64
	sp     subproblem
	// hashed is set when a caveat can reach sp's relation: ctxHash is
	// then part of the key.
	hashed  bool
	ctxHash uint64
}

// answerCache is what the cache layer needs of a store of exact
// subproblem answers, for tests to swap in a double (newEvaluator). probe
// is get for a lookup whose miss is followed by a get of the same key:
// only its hits count in the statistics. size is the entry's weight,
// beyond its key.
type answerCache interface {
	get(k cacheKey) (cacheEntry, bool)
	probe(k cacheKey) (cacheEntry, bool)
	set(k cacheKey, ent cacheEntry, size int64)
}

// cacheLayer keeps exact answers across requests: in the evaluator's
// shared *Cache, or in the answerCache a test gave instead. It sits below
// the remote layer, so a node of a cluster caches the subproblems it owns;
// a root subproblem is also looked up before the chain allocates anything
// for it (dispatchChain.settled).
type cacheLayer struct {
	// shared is Options.Cache, called directly: a key is encoded once,
	// from the subproblem, in a buffer on the stack, and nothing is
	// copied through an interface (a warm check is little more than this
	// lookup). nil when a test swapped in other.
	shared   *Cache
	other    answerCache
	next     dispatcher
	schemaID uint64
	caveated []bool // by relation index: a caveat can reach the relation
	maxDepth int
	tracer   trace.Tracer // nil: no tracing
}

// keyLen is the size of the stack buffers keys are encoded in; longer
// keys (long IDs) spill to the heap.
const keyLen = 128

// appendKey appends the encoding of the cache key of sp at revision rev,
// under a context of hash ctxHash, to b.
func (c *cacheLayer) appendKey(b []byte, rev store.Revision, sp *subproblem, ctxHash uint64) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(rev))
	b = binary.LittleEndian.AppendUint64(b, c.schemaID)
	b = binary.LittleEndian.AppendUint32(b, uint32(sp.rel))
	if c.caveated[sp.rel] {
		b = binary.LittleEndian.AppendUint64(b, ctxHash)
	}
	b = append(b, sp.id...)
	b = append(b, 0)
	b = append(b, sp.sub.Type...)
	b = append(b, 0)
	b = append(b, sp.sub.ID...)
	b = append(b, 0)
	b = append(b, sp.sub.Relation...)
	return b
}

// key is the cache key of sp at revision rev under a context of hash
// ctxHash, as an answerCache receives it.
func (c *cacheLayer) key(rev store.Revision, sp *subproblem, ctxHash uint64) cacheKey {
	k := cacheKey{rev: rev, schema: c.schemaID, sp: *sp, hashed: c.caveated[sp.rel]}
	if k.hashed {
		k.ctxHash = ctxHash
	}
	return k
}

// contextHash is the hash of rq's caveat context where a caveat can reach
// sp's relation, else 0 (rq nil: the context is empty). It reports false
// when the context cannot be hashed.
func (c *cacheLayer) contextHash(rq *request, sp *subproblem) (uint64, bool) {
	if rq == nil || !c.caveated[sp.rel] {
		return 0, true
	}
	return rq.contextHash()
}

func (c *cacheLayer) get(rev store.Revision, sp *subproblem, ctxHash uint64) (cacheEntry, bool) {
	if c.shared == nil {
		return c.other.get(c.key(rev, sp, ctxHash))
	}
	var buf [keyLen]byte
	return c.shared.GetBytes(c.appendKey(buf[:0], rev, sp, ctxHash))
}

func (c *cacheLayer) probe(rev store.Revision, sp *subproblem, ctxHash uint64) (cacheEntry, bool) {
	if c.shared == nil {
		return c.other.probe(c.key(rev, sp, ctxHash))
	}
	var buf [keyLen]byte
	return c.shared.Probe(c.appendKey(buf[:0], rev, sp, ctxHash))
}

func (c *cacheLayer) set(rev store.Revision, sp *subproblem, ctxHash uint64, ent cacheEntry, size int64) {
	if c.shared == nil {
		c.other.set(c.key(rev, sp, ctxHash), ent, size)
		return
	}
	var buf [keyLen]byte
	c.shared.Set(string(c.appendKey(buf[:0], rev, sp, ctxHash)), ent, size)
}

// settled is dispatchChain.settled: the cached answer to a root, if it
// holds at now and fits the depth limit. A nil layer (no cache) has none.
func (c *cacheLayer) settled(rev store.Revision, now time.Time, sp *subproblem, rq *request) (result, bool) {
	if c == nil || rq.touches(sp.rel) {
		return result{}, false
	}
	h, ok := c.contextHash(rq, sp)
	if !ok {
		return result{}, false
	}
	ent, hit := c.probe(rev, sp, h)
	if !hit {
		return result{}, false
	}
	res, ok := ent.at(now)
	return res, ok && res.fits(1, c.maxDepth)
}

func (c *cacheLayer) dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error) {
	h, ok := c.contextHash(rq, &sp)
	if !ok || rq.touches(sp.rel) {
		// The context cannot be hashed: nothing caveated is cached. Or
		// the answer may depend on the call's contextual relationships:
		// it is neither served from nor written to the cache.
		return c.next.dispatch(ctx, rq, f, sp)
	}
	if ent, hit := c.get(rq.rev, &sp, h); hit {
		if res, ok := ent.at(rq.now); ok && res.fits(f.depth, c.maxDepth) {
			traceCacheHit(ctx, c.tracer, f.rel, f.id, f.depth, res.perm)
			return res, nil
		}
	}
	traceMiss(ctx, c.tracer)
	res, err := c.next.dispatch(ctx, rq, f, sp)
	if err == nil && res.cut == noCut {
		size := int64(64)
		for _, m := range res.missing {
			size += int64(len(m)) + 16
		}
		c.set(rq.rev, &sp, h, cacheEntry{perm: res.perm, missing: res.missing, computed: rq.now, expires: res.expires, h: res.h}, size)
	}
	return res, err
}
