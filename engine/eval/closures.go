package eval

import (
	"sync"
	"sync/atomic"
)

// bitset is a set of relation indices.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool {
	return i >= 0 && i/64 < len(b) && b[i/64]&(1<<(uint(i)%64)) != 0
}

func (b bitset) set(i int) { b[i/64] |= 1 << (uint(i) % 64) }

// closures are the forward closures of a graph over relation indices,
// each computed on first use and kept: a walk costs the edges it follows,
// and only the closures that requests ask for are ever built, so a schema
// of many relations pays nothing up front (an n-by-n table of them was
// most of a schema write's time and memory; issue 18).
type closures struct {
	edges [][]int32
	memo  []atomic.Pointer[bitset]
	// kept counts the bytes of memo; past maxClosureBytes a closure is
	// computed for its caller and not kept (a lookup on every goal of a
	// schema of n relations would otherwise keep n²/8 bytes).
	kept atomic.Int64
}

// maxClosureBytes bounds the closures kept per closures value.
const maxClosureBytes = 32 << 20

func newClosures(edges [][]int32) *closures {
	return &closures{edges: edges, memo: make([]atomic.Pointer[bitset], len(edges))}
}

// of returns the relations reachable from i, i included. Concurrent first
// calls may each walk; one result is kept.
func (c *closures) of(i int) bitset {
	if b := c.memo[i].Load(); b != nil {
		return *b
	}
	b := newBitset(len(c.edges))
	b.set(i)
	stack := []int32{int32(i)}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, y := range c.edges[x] {
			if !b.has(int(y)) {
				b.set(int(y))
				stack = append(stack, y)
			}
		}
	}
	if c.kept.Add(int64(len(b))*8) > maxClosureBytes {
		c.kept.Add(-int64(len(b)) * 8)
		return b
	}
	if !c.memo[i].CompareAndSwap(nil, &b) {
		c.kept.Add(-int64(len(b)) * 8) // another caller kept its own
	}
	return *c.memo[i].Load()
}

// kindSets memoizes, by subject kind, the relations that can contain
// subjects of that kind: those reaching an owner of the kind through
// positive references. The first maxCopiedKinds kinds live in a map that
// is replaced, never changed, so the check path reads it without a lock;
// kinds are few in practice (the subject types requests use). Further
// kinds go to a map under a mutex, and past maxClosureBytes in all a
// kind's set is computed for its caller and not kept.
type kindSets struct {
	m    atomic.Pointer[map[kind]bitset]
	mu   sync.Mutex // serialises writers; guards more and kept
	more map[kind]bitset
	kept int
}

// maxCopiedKinds bounds the lock-free map, which is copied once per kind
// added.
const maxCopiedKinds = 1024

// has reports whether relation rel can contain subjects of kind k.
func (ks *kindSets) has(a *analysis, k kind, rel int) bool {
	m := ks.m.Load()
	if m != nil {
		if b, ok := (*m)[k]; ok {
			return b.has(rel)
		}
	}
	owners := a.owners[k]
	if len(owners) == 0 {
		return false // no relation admits the kind: nothing to remember
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	old := ks.m.Load()
	if old != nil {
		if b, ok := (*old)[k]; ok {
			return b.has(rel)
		}
	}
	if b, ok := ks.more[k]; ok {
		return b.has(rel)
	}
	seeds := newBitset(len(a.rels))
	for _, o := range owners {
		seeds.set(int(o))
	}
	b := reachedBackwardBits(a.positiveRefs, seeds, a.reversePositive())
	if ks.kept+len(b)*8 > maxClosureBytes {
		return b.has(rel)
	}
	ks.kept += len(b) * 8
	if lenMap(old) >= maxCopiedKinds {
		if ks.more == nil {
			ks.more = map[kind]bitset{}
		}
		ks.more[k] = b
		return b.has(rel)
	}
	next := make(map[kind]bitset, 1+lenMap(old))
	if old != nil {
		for kk, v := range *old {
			next[kk] = v
		}
	}
	next[k] = b
	ks.m.Store(&next)
	return b.has(rel)
}

func lenMap(m *map[kind]bitset) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// reversePositive returns positiveRefs reversed, built once.
func (a *analysis) reversePositive() [][]int32 {
	a.revOnce.Do(func() { a.revPositive = reverse(a.positiveRefs) })
	return a.revPositive
}

// reverse returns the graph with every edge turned around.
func reverse(edges [][]int32) [][]int32 {
	out := make([][]int32, len(edges))
	for x, ys := range edges {
		for _, y := range ys {
			out[y] = append(out[y], int32(x))
		}
	}
	return out
}

// reachedBackward marks the nodes from which a seed is reachable over
// edges, seeds included: a walk up the reversed edges, linear in the
// graph's size.
func reachedBackward(edges [][]int32, seeds []bool) []bool {
	rev := reverse(edges)
	out := make([]bool, len(edges))
	var stack []int32
	for i, s := range seeds {
		if s {
			out[i] = true
			stack = append(stack, int32(i))
		}
	}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, y := range rev[x] {
			if !out[y] {
				out[y] = true
				stack = append(stack, y)
			}
		}
	}
	return out
}

// reachedBackwardBits is reachedBackward over bitsets, with the reversed
// graph given; seeds is consumed.
func reachedBackwardBits(edges [][]int32, seeds bitset, rev [][]int32) bitset {
	var stack []int32
	for i := range edges {
		if seeds.has(i) {
			stack = append(stack, int32(i))
		}
	}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, y := range rev[x] {
			if !seeds.has(int(y)) {
				seeds.set(int(y))
				stack = append(stack, y)
			}
		}
	}
	return seeds
}
