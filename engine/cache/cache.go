package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// EntryOverhead is the number of bytes charged to every entry on top of its
// key and declared size: the slot, map slot and bookkeeping.
const EntryOverhead = 96

// numShards is a power of two; 64 shards keep lock contention negligible
// with the evaluator's default concurrency on many cores.
const numShards = 64

// Stats are cumulative counters and current occupancy.
type Stats struct {
	Hits      uint64
	Misses    uint64
	Evictions uint64
	Bytes     int64 // bytes currently charged
	Entries   int64 // entries currently held
}

// Cache maps string keys to values of type V within a byte budget. It is
// safe for concurrent use.
//
// Entries live by value in one slice per shard, linked into the LRU list by
// index, so the garbage collector sees a few large objects instead of
// several small ones per entry: a full cache costs each collection far
// less marking (a V without pointers adds none).
type Cache[V any] struct {
	seed   maphash.Seed
	shards [numShards]shard[V]

	evictions atomic.Uint64
}

type shard[V any] struct {
	mu sync.Mutex
	// items maps the hash of a key to its slot, whose key is compared
	// on every lookup: a key is hashed once, for the shard and the
	// index together, and the index holds no pointers for the garbage
	// collector to scan. Two keys of one hash share a place: the later
	// one set evicts the other, which then misses (a cache may forget).
	items map[uint64]int32
	// slots[0] is the sentinel of a circular list linked by index;
	// slots[0].next is the most recent entry.
	slots    []slot[V]
	free     []int32 // indices of unused slots
	bytes    int64
	maxBytes int64
	// hits and misses are counted under mu: a global atomic counter
	// would be written by every lookup on every core.
	hits, misses uint64
	_            [24]byte // shards on separate cache lines
}

type slot[V any] struct {
	key        string
	hash       uint64
	value      V
	cost       int64
	prev, next int32
}

// New returns a cache that holds at most about maxBytes bytes. A budget
// too small for a single shard entry yields a cache that stores nothing.
func New[V any](maxBytes int64) *Cache[V] {
	c := &Cache[V]{seed: maphash.MakeSeed()}
	per := maxBytes / numShards
	for i := range c.shards {
		s := &c.shards[i]
		s.items = make(map[uint64]int32)
		s.slots = make([]slot[V], 1, 16)
		s.maxBytes = per
	}
	return c
}

// shard returns the shard of a key of hash h.
func (c *Cache[V]) shard(h uint64) *shard[V] {
	return &c.shards[h&(numShards-1)]
}

// Get returns the value stored under key and marks it recently used.
func (c *Cache[V]) Get(key string) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	h := maphash.String(c.seed, key)
	s := c.shard(h)
	s.mu.Lock()
	i, ok := s.find(h, key)
	if !ok {
		s.misses++
	}
	v := s.hit(i, ok)
	s.mu.Unlock()
	return v, ok
}

// GetBytes is Get for a key held in a byte slice; it does not allocate,
// so callers can build lookup keys in a reused buffer and convert to a
// string only to Set.
func (c *Cache[V]) GetBytes(key []byte) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	h := maphash.Bytes(c.seed, key)
	s := c.shard(h)
	s.mu.Lock()
	i, ok := s.findBytes(h, key)
	if !ok {
		s.misses++
	}
	v := s.hit(i, ok)
	s.mu.Unlock()
	return v, ok
}

// Probe is GetBytes for a lookup that, when it misses, is followed by a
// Get of the same key: only its hits are counted, so a miss is not counted
// twice.
func (c *Cache[V]) Probe(key []byte) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	h := maphash.Bytes(c.seed, key)
	s := c.shard(h)
	s.mu.Lock()
	i, ok := s.findBytes(h, key)
	v := s.hit(i, ok)
	s.mu.Unlock()
	return v, ok
}

// find returns the slot of key, of hash h. s.mu is held.
func (s *shard[V]) find(h uint64, key string) (int32, bool) {
	i, ok := s.items[h]
	return i, ok && s.slots[i].key == key
}

// findBytes is find for a key held in a byte slice. The comparison
// converts without allocating; a conversion passed as an argument would
// allocate for keys longer than 32 bytes.
func (s *shard[V]) findBytes(h uint64, key []byte) (int32, bool) {
	i, ok := s.items[h]
	return i, ok && s.slots[i].key == string(key)
}

// hit counts a hit of slot i when found, marks the slot most recent and
// returns its value (the zero value when not found). s.mu is held.
func (s *shard[V]) hit(i int32, found bool) V {
	if !found {
		var zero V
		return zero
	}
	s.hits++
	if s.slots[0].next != i {
		s.unlink(i)
		s.pushFront(i)
	}
	return s.slots[i].value
}

// Set stores value under key, charging size bytes for the value. It
// replaces an existing entry and evicts least recently used entries of the
// same shard until the shard fits its share of the budget.
func (c *Cache[V]) Set(key string, value V, size int64) {
	if c == nil {
		return
	}
	c.set(maphash.String(c.seed, key), key, value, size)
}

// set is Set for a key of hash h.
func (c *Cache[V]) set(h uint64, key string, value V, size int64) {
	cost := int64(len(key)) + size + EntryOverhead
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.items[h]; ok {
		// Replaced, too large to ever fit, or another key of the same
		// hash: drop the stale entry.
		s.remove(old)
	}
	if cost > s.maxBytes {
		return
	}
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		s.slots = append(s.slots, slot[V]{})
		i = int32(len(s.slots) - 1)
	}
	s.slots[i] = slot[V]{key: key, hash: h, value: value, cost: cost}
	s.items[h] = i
	s.pushFront(i)
	s.bytes += cost
	var evicted uint64
	for s.bytes > s.maxBytes {
		s.remove(s.slots[0].prev)
		evicted++
	}
	if evicted > 0 {
		c.evictions.Add(evicted)
	}
}

// Delete removes the entry stored under key, if any.
func (c *Cache[V]) Delete(key string) {
	if c == nil {
		return
	}
	h := maphash.String(c.seed, key)
	s := c.shard(h)
	s.mu.Lock()
	if i, ok := s.find(h, key); ok {
		s.remove(i)
	}
	s.mu.Unlock()
}

// Stats returns the counters and the current occupancy.
func (c *Cache[V]) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	st := Stats{Evictions: c.evictions.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Hits += s.hits
		st.Misses += s.misses
		st.Bytes += s.bytes
		st.Entries += int64(len(s.items))
		s.mu.Unlock()
	}
	return st
}

func (s *shard[V]) unlink(i int32) {
	e := &s.slots[i]
	s.slots[e.prev].next = e.next
	s.slots[e.next].prev = e.prev
}

func (s *shard[V]) pushFront(i int32) {
	e := &s.slots[i]
	e.prev = 0
	e.next = s.slots[0].next
	s.slots[e.next].prev = i
	s.slots[0].next = i
}

// remove unlinks slot i and frees it; the slot is zeroed so that the
// collector does not keep its key and value alive.
func (s *shard[V]) remove(i int32) {
	s.unlink(i)
	delete(s.items, s.slots[i].hash)
	s.bytes -= s.slots[i].cost
	s.slots[i] = slot[V]{}
	s.free = append(s.free, i)
}
