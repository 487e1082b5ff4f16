package pebblestore

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
)

// minPooledIters is the least number of idle iterators kept for reuse;
// the pool holds four per GOMAXPROCS when that is more.
const minPooledIters = 8

// iterPool keeps idle Pebble iterators for reuse by queries: creating and
// closing an iterator is about half the CPU of a point lookup.
//
// A Pebble iterator sees the database as of its creation. One created
// when the head was H has every commit up to H, so it can answer a query
// at any revision R <= H; later commits and GC deletions it does not see
// change nothing at R (GC only deletes what no reader at or above the
// horizon needs, and queries check the horizon after taking an
// iterator). An iterator goes back to the pool only while no newer
// revision has been committed, so pooled iterators never pin much more
// than the current state of the LSM (an idle one left from before a
// commit is closed by the next query that comes across it).
//
// Removing expired relationships does change what a revision holds (for
// reads that do not hide expired relationships), so GC then bumps gen, and
// iterators created before no longer return to the pool.
//
// The pool is lock-free: a fixed array of slots, each on its own cache
// line, taken and filled by compare-and-swap from the query's home slot
// (its P's, see iterAt) or a random one.
// A mutex over a free list (the first version) was where concurrent checks
// waited: with 8 workers, 73% of the lock contention in a mutex profile of
// the enterprise workload (docs/benchmarks.md, issue #17).
type iterPool struct {
	slots []iterSlot
	gen   atomic.Uint64
}

// iterSlot holds one idle iterator or nil, padded to a cache line so that
// swaps on neighbouring slots do not contend.
type iterSlot struct {
	p atomic.Pointer[pooledIter]
	_ [56]byte
}

func newIterPool() iterPool {
	return iterPool{slots: make([]iterSlot, max(minPooledIters, 4*runtime.GOMAXPROCS(0)))}
}

type pooledIter struct {
	it   *pebble.Iterator
	head store.Revision // head when it was created
	gen  uint64         // iterPool.gen when it was created
	// unbounded iterators serve point reads (SeekPrefixGE, which stays
	// within one tuple key by itself) and never change bounds: setting
	// bounds on a reused iterator resets every level's iterator, a few
	// percent of a check's CPU.
	unbounded bool
	// home is the slot the pool searches from when it takes it back
	// (iterAt).
	home int
	// key is the buffer for the seek keys of point reads
	// (ReadRelationship): a buffer on the stack would escape, since the
	// key goes to Pebble. Reusing it is safe: Iterator.SeekPrefixGE copies
	// the prefix it keeps for its next seek (TestPointReadsInTurn).
	key []byte
}

// iter returns an iterator over [lower, upper) that sees every version a
// query at rev needs, pooled or new, after checking the GC horizon; with
// lower and upper nil, an unbounded one for SeekPrefixGE. Release it with
// putIter.
func (s *Store) iter(rev store.Revision, lower, upper []byte) (*pooledIter, error) {
	return s.iterAt(rand.IntN(len(s.iters.slots)), rev, lower, upper)
}

// iterAt is iter for a query whose shard (readerShard) is home: the pool
// is searched from that slot, and the iterator goes back to the first free
// slot from there, so that the queries of one P mostly reuse the
// iterators, and touch the slots, that P used last.
func (s *Store) iterAt(home int, rev store.Revision, lower, upper []byte) (*pooledIter, error) {
	unbounded := lower == nil && upper == nil
	pi := s.iters.take(home, rev, unbounded, store.Revision(s.head.Load()), s.iters.gen.Load())
	if pi != nil {
		if !unbounded {
			pi.it.SetBounds(lower, upper)
		}
	} else {
		// Load the head first: it is published after its commit, so the
		// new iterator sees at least that much.
		pi = &pooledIter{head: store.Revision(s.head.Load()), gen: s.iters.gen.Load(), unbounded: unbounded}
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return nil, fmt.Errorf("pebblestore: %w", err)
		}
		pi.it = it
	}
	pi.home = home
	if hz := store.Revision(s.horizon.Load()); rev < hz {
		s.putIter(pi)
		return nil, &store.CompactedError{Requested: rev, Horizon: hz}
	}
	return pi, nil
}

// take removes from the pool an iterator of the kind asked for that sees
// rev, closing the stale ones (older than head or gen) it comes across;
// nil when there is none.
func (p *iterPool) take(start int, rev store.Revision, unbounded bool, head store.Revision, gen uint64) *pooledIter {
	n := len(p.slots)
	for i := range n {
		sl := &p.slots[(start+i)%n].p
		pi := sl.Load()
		if pi == nil {
			continue
		}
		stale := pi.head < head || pi.gen < gen
		if !stale && (pi.unbounded != unbounded || pi.head < rev) {
			continue
		}
		if !sl.CompareAndSwap(pi, nil) {
			continue // another query took it
		}
		if stale {
			pi.it.Close()
			continue
		}
		return pi
	}
	return nil
}

// putIter returns an iterator to the pool, or closes it if the pool is
// full or a newer revision was committed since it was created.
func (s *Store) putIter(pi *pooledIter) {
	if pi.it.Error() == nil && pi.head == store.Revision(s.head.Load()) && pi.gen == s.iters.gen.Load() {
		n := len(s.iters.slots)
		for i := range n {
			if s.iters.slots[(pi.home+i)%n].p.CompareAndSwap(nil, pi) {
				return
			}
		}
	}
	pi.it.Close()
}

// closeIters closes every pooled iterator; Close calls it once no
// operation runs, Compact after compacting (an iterator in use is in no
// slot, so taking the idle ones out is safe at any time).
func (s *Store) closeIters() {
	for i := range s.iters.slots {
		if pi := s.iters.slots[i].p.Swap(nil); pi != nil {
			pi.it.Close()
		}
	}
}

// pooled returns the iterators in the pool, for tests.
func (p *iterPool) pooled() []*pooledIter {
	var out []*pooledIter
	for i := range p.slots {
		if pi := p.slots[i].p.Load(); pi != nil {
			out = append(out, pi)
		}
	}
	return out
}
