package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// EntryOverhead is the number of bytes charged to every entry on top of its
// key and declared size: the list node, map slot and value header.
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

// Cache maps string keys to values within a byte budget. It is safe for
// concurrent use.
type Cache struct {
	seed   maphash.Seed
	shards [numShards]shard

	evictions atomic.Uint64
}

type shard struct {
	mu       sync.Mutex
	items    map[string]*entry
	head     entry // sentinel of a circular list; head.next is the most recent
	bytes    int64
	maxBytes int64
	// hits and misses are counted under mu: a global atomic counter
	// would be written by every lookup on every core.
	hits, misses uint64
	_            [24]byte // shards on separate cache lines
}

type entry struct {
	key        string
	value      any
	cost       int64
	prev, next *entry
}

// New returns a cache that holds at most about maxBytes bytes. A budget
// too small for a single shard entry yields a cache that stores nothing.
func New(maxBytes int64) *Cache {
	c := &Cache{seed: maphash.MakeSeed()}
	per := maxBytes / numShards
	for i := range c.shards {
		s := &c.shards[i]
		s.items = make(map[string]*entry)
		s.head.next, s.head.prev = &s.head, &s.head
		s.maxBytes = per
	}
	return c
}

func (c *Cache) shard(key string) *shard {
	return &c.shards[maphash.String(c.seed, key)&(numShards-1)]
}

// Get returns the value stored under key and marks it recently used.
func (c *Cache) Get(key string) (any, bool) {
	if c == nil {
		return nil, false
	}
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.items[key]
	if ok {
		s.hits++
		if s.head.next != e {
			s.unlink(e)
			s.pushFront(e)
		}
	} else {
		s.misses++
	}
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return e.value, true
}

// GetBytes is Get for a key held in a byte slice; it does not allocate,
// so callers can build lookup keys in a reused buffer and convert to a
// string only to Set.
func (c *Cache) GetBytes(key []byte) (any, bool) { return c.getBytes(key, true) }

// Probe is GetBytes for a lookup that, when it misses, is followed by a
// Get of the same key: only its hits are counted, so a miss is not counted
// twice.
func (c *Cache) Probe(key []byte) (any, bool) { return c.getBytes(key, false) }

func (c *Cache) getBytes(key []byte, countMiss bool) (any, bool) {
	if c == nil {
		return nil, false
	}
	s := &c.shards[maphash.Bytes(c.seed, key)&(numShards-1)]
	s.mu.Lock()
	e, ok := s.items[string(key)]
	if ok {
		s.hits++
		if s.head.next != e {
			s.unlink(e)
			s.pushFront(e)
		}
	} else if countMiss {
		s.misses++
	}
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return e.value, true
}

// Set stores value under key, charging size bytes for the value. It
// replaces an existing entry and evicts least recently used entries of the
// same shard until the shard fits its share of the budget.
func (c *Cache) Set(key string, value any, size int64) {
	if c == nil {
		return
	}
	cost := int64(len(key)) + size + EntryOverhead
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cost > s.maxBytes {
		// Too large to ever fit: drop a stale version rather than keep it.
		if old, ok := s.items[key]; ok {
			s.remove(old)
		}
		return
	}
	if old, ok := s.items[key]; ok {
		s.remove(old)
	}
	e := &entry{key: key, value: value, cost: cost}
	s.items[key] = e
	s.pushFront(e)
	s.bytes += cost
	var evicted uint64
	for s.bytes > s.maxBytes {
		s.remove(s.head.prev)
		evicted++
	}
	if evicted > 0 {
		c.evictions.Add(evicted)
	}
}

// Delete removes the entry stored under key, if any.
func (c *Cache) Delete(key string) {
	if c == nil {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	if e, ok := s.items[key]; ok {
		s.remove(e)
	}
	s.mu.Unlock()
}

// Stats returns the counters and the current occupancy.
func (c *Cache) Stats() Stats {
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

func (s *shard) unlink(e *entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
}

func (s *shard) pushFront(e *entry) {
	e.prev = &s.head
	e.next = s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (s *shard) remove(e *entry) {
	s.unlink(e)
	delete(s.items, e.key)
	s.bytes -= e.cost
}
