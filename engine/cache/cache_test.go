package cache

import (
	"fmt"
	"hash/maphash"
	"sync"
	"testing"
)

func TestGetSet(t *testing.T) {
	tests := []struct {
		name    string
		sets    []string
		get     string
		wantOK  bool
		wantVal string
	}{
		{name: "miss on empty", get: "a"},
		{name: "hit", sets: []string{"a"}, get: "a", wantOK: true, wantVal: "v-a"},
		{name: "other key", sets: []string{"a"}, get: "b"},
		{name: "replace", sets: []string{"a", "a"}, get: "a", wantOK: true, wantVal: "v-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New[string](1 << 20)
			for _, k := range tt.sets {
				c.Set(k, "v-"+k, 8)
			}
			v, ok := c.Get(tt.get)
			if ok != tt.wantOK {
				t.Fatalf("Get(%q) ok = %v, want %v", tt.get, ok, tt.wantOK)
			}
			if ok && v != tt.wantVal {
				t.Fatalf("Get(%q) = %v, want %v", tt.get, v, tt.wantVal)
			}
			st := c.Stats()
			if st.Entries != int64(len(uniq(tt.sets))) {
				t.Errorf("Entries = %d, want %d", st.Entries, len(uniq(tt.sets)))
			}
		})
	}
}

func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, k := range s {
		m[k] = true
	}
	return m
}

func TestBudgetAndEviction(t *testing.T) {
	const budget = 64 * 4096
	c := New[int](budget)
	for i := range 10000 {
		c.Set(fmt.Sprintf("key-%06d", i), i, 100)
	}
	st := c.Stats()
	if st.Bytes > budget {
		t.Fatalf("Bytes = %d exceeds budget %d", st.Bytes, budget)
	}
	if st.Evictions == 0 {
		t.Fatal("expected evictions after overfilling")
	}
	if int64(st.Evictions)+st.Entries != 10000 {
		t.Fatalf("evictions %d + entries %d != 10000 inserts", st.Evictions, st.Entries)
	}
	// The most recent key survives; the first one was evicted.
	if _, ok := c.Get("key-009999"); !ok {
		t.Error("most recent key was evicted")
	}
	if _, ok := c.Get("key-000000"); ok {
		t.Error("oldest key survived")
	}
}

func TestLRUOrder(t *testing.T) {
	// One shard's share holds exactly two entries of this size; keys in
	// the same shard are found by probing.
	c := New[int](numShards * (2*(EntryOverhead+10+100) + 10))
	shardOf := func(k string) *shard[int] { return c.shard(maphash.String(c.seed, k)) }
	s0 := shardOf("probe")
	var keys []string
	for i := 0; len(keys) < 3; i++ {
		k := fmt.Sprintf("k%09d", i)
		if shardOf(k) == s0 {
			keys = append(keys, k)
		}
	}
	c.Set(keys[0], 0, 100)
	c.Set(keys[1], 1, 100)
	c.Get(keys[0]) // keys[1] is now least recent
	c.Set(keys[2], 2, 100)
	if _, ok := c.Get(keys[1]); ok {
		t.Error("least recently used entry survived")
	}
	if _, ok := c.Get(keys[0]); !ok {
		t.Error("recently used entry was evicted")
	}
}

// Two keys of one hash share a place: the later one set evicts the other,
// which then misses, and deleting the evicted key leaves the other alone.
func TestHashCollision(t *testing.T) {
	c := New[int](1 << 20)
	const h = 42
	c.set(h, "a", 1, 8)
	c.set(h, "b", 2, 8)
	s := c.shard(h)
	if i, ok := s.find(h, "a"); ok {
		t.Fatalf("a found at %d after b took its place", i)
	}
	i, ok := s.find(h, "b")
	if !ok || s.slots[i].value != 2 {
		t.Fatalf("b = %v, %v; want 2", s.slots[i].value, ok)
	}
	if st := c.Stats(); st.Entries != 1 || st.Evictions != 0 {
		t.Fatalf("Stats = %+v, want one entry (a replaced, not evicted for space)", st)
	}
	c.Delete("a") // a is not stored under its real hash either
	if _, ok := s.find(h, "b"); !ok {
		t.Fatal("deleting a removed b")
	}
}

func TestTooLarge(t *testing.T) {
	c := New[int](numShards * 1000)
	c.Set("big", 1, 10000)
	if _, ok := c.Get("big"); ok {
		t.Fatal("entry larger than a shard was stored")
	}
}

func TestNil(t *testing.T) {
	var c *Cache[int]
	c.Set("a", 1, 1)
	if _, ok := c.Get("a"); ok {
		t.Fatal("nil cache returned a value")
	}
	c.Delete("a")
	if st := c.Stats(); st != (Stats{}) {
		t.Fatalf("nil Stats = %+v", st)
	}
}

func TestStatsCounters(t *testing.T) {
	c := New[int](1 << 20)
	c.Set("a", 1, 1)
	c.Get("a")
	c.Get("a")
	c.Get("b")
	c.GetBytes([]byte("a"))
	c.GetBytes([]byte("b"))
	c.Probe([]byte("a"))
	c.Probe([]byte("b")) // a probe's miss is not counted
	c.Delete("a")
	st := c.Stats()
	if st.Hits != 4 || st.Misses != 2 || st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("Stats = %+v, want 4 hits, 2 misses, empty", st)
	}
}

func TestConcurrent(t *testing.T) {
	c := New[int](1 << 16)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Sprintf("%d-%d", g, i%300)
				if v, ok := c.Get(k); ok && v != i%300 {
					t.Errorf("Get(%s) = %v", k, v)
					return
				}
				c.Set(k, i%300, 16)
			}
		}()
	}
	wg.Wait()
	if st := c.Stats(); st.Bytes > 1<<16 {
		t.Fatalf("Bytes = %d over budget", st.Bytes)
	}
}

func BenchmarkGetParallel(b *testing.B) {
	c := New[int](64 << 20)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("rev-12|rel-3|doc:%d|user:%d", i, i*7)
		c.Set(keys[i], i, 32)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(keys[i&4095])
			i++
		}
	})
}

// Lookups by a byte-slice key allocate nothing, whatever its length (a
// string conversion passed as an argument allocates past 32 bytes).
func TestGetBytesAllocs(t *testing.T) {
	c := New[int](1 << 20)
	key := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
	c.Set(string(key), 1, 8)
	if n := testing.AllocsPerRun(100, func() {
		c.GetBytes(key)
		c.Probe(key)
	}); n != 0 {
		t.Errorf("GetBytes and Probe: %v allocations per lookup pair, want 0", n)
	}
}
