package eval

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/pemba-authz/pemba/engine/cache"
	"github.com/pemba-authz/pemba/engine/store"
)

// This file is the cross-request result cache of the evaluator: the
// cacheLayer of the dispatch chain is the only code that reads or writes
// it, through the answerCache interface (tests swap in a double).

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
// hash of the caveat context when a caveat can influence the relation. It
// is a value so that looking it up through answerCache allocates nothing.
type cacheKey struct {
	rev    store.Revision
	schema uint64
	sp     subproblem
	// hashed is set when a caveat can reach sp's relation: ctxHash is
	// then part of the key.
	hashed  bool
	ctxHash uint64
}

// append appends the encoding of k to b.
func (k *cacheKey) append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(k.rev))
	b = binary.LittleEndian.AppendUint64(b, k.schema)
	b = binary.LittleEndian.AppendUint32(b, uint32(k.sp.rel))
	if k.hashed {
		b = binary.LittleEndian.AppendUint64(b, k.ctxHash)
	}
	b = append(b, k.sp.id...)
	b = append(b, 0)
	b = append(b, k.sp.sub.Type...)
	b = append(b, 0)
	b = append(b, k.sp.sub.ID...)
	b = append(b, 0)
	b = append(b, k.sp.sub.Relation...)
	return b
}

// answerCache stores exact subproblem answers across requests. probe is
// get for a lookup whose miss is followed by a get of the same key: only
// its hits count in the statistics. size is the entry's weight, beyond
// its key.
type answerCache interface {
	get(k cacheKey) (cacheEntry, bool)
	probe(k cacheKey) (cacheEntry, bool)
	set(k cacheKey, ent cacheEntry, size int64)
}

// sharedCache is the answerCache of Options.Cache.
type sharedCache struct{ c *Cache }

func (s sharedCache) get(k cacheKey) (cacheEntry, bool) {
	var buf [128]byte
	return s.c.GetBytes(k.append(buf[:0]))
}

func (s sharedCache) probe(k cacheKey) (cacheEntry, bool) {
	var buf [128]byte
	return s.c.Probe(k.append(buf[:0]))
}

func (s sharedCache) set(k cacheKey, ent cacheEntry, size int64) {
	var buf [128]byte
	s.c.Set(string(k.append(buf[:0])), ent, size)
}

// cacheLayer keeps exact answers across requests in an answerCache. It
// sits below the remote layer, so a node of a cluster caches the
// subproblems it owns; a root subproblem is also looked up before the
// chain allocates anything for it (dispatchChain.settled).
type cacheLayer struct {
	cache    answerCache
	next     dispatcher
	schemaID uint64
	caveated []bool // by relation index: a caveat can reach the relation
	maxDepth int
}

// key is the cache key of sp at revision rev; rq gives the caveat
// context's hash, asked only when a caveat can reach sp's relation (nil:
// the context is empty). ok is false when the context cannot be hashed.
func (c *cacheLayer) key(rev store.Revision, sp *subproblem, rq *request) (cacheKey, bool) {
	k := cacheKey{rev: rev, schema: c.schemaID, sp: *sp, hashed: c.caveated[sp.rel]}
	if k.hashed && rq != nil {
		var ok bool
		if k.ctxHash, ok = rq.contextHash(); !ok {
			return cacheKey{}, false
		}
	}
	return k, true
}

// settled is dispatchChain.settled: the cached answer to a root, if it
// holds at now and fits the depth limit.
func (c *cacheLayer) settled(rev store.Revision, now time.Time, sp *subproblem, rq *request) (result, bool) {
	k, ok := c.key(rev, sp, rq)
	if !ok {
		return result{}, false
	}
	ent, hit := c.cache.probe(k)
	if !hit {
		return result{}, false
	}
	res, ok := ent.at(now)
	return res, ok && res.fits(1, c.maxDepth)
}

func (c *cacheLayer) dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error) {
	k, ok := c.key(rq.rev, &sp, rq)
	if !ok {
		// The context cannot be hashed: nothing caveated is cached.
		return c.next.dispatch(ctx, rq, f, sp)
	}
	if ent, hit := c.cache.get(k); hit {
		if res, ok := ent.at(rq.now); ok && res.fits(f.depth, c.maxDepth) {
			return res, nil
		}
	}
	res, err := c.next.dispatch(ctx, rq, f, sp)
	if err == nil && res.cut == noCut {
		size := int64(64)
		for _, m := range res.missing {
			size += int64(len(m)) + 16
		}
		c.cache.set(k, cacheEntry{perm: res.perm, missing: res.missing, computed: rq.now, expires: res.expires, h: res.h}, size)
	}
	return res, err
}
