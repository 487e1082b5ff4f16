package pebblestore

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
)

// maxPooledIters bounds the idle iterators kept for reuse.
const maxPooledIters = 8

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
// than the current state of the LSM.
//
// Removing expired relationships does change what a revision holds (for
// reads that do not hide expired relationships), so GC then bumps gen, and
// iterators created before no longer return to the pool.
type iterPool struct {
	mu   sync.Mutex
	free []pooledIter
	gen  atomic.Uint64
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
}

// iter returns an iterator over [lower, upper) that sees every version a
// query at rev needs, pooled or new, after checking the GC horizon; with
// lower and upper nil, an unbounded one for SeekPrefixGE. Release it with
// putIter.
func (s *Store) iter(rev store.Revision, lower, upper []byte) (pooledIter, error) {
	unbounded := lower == nil && upper == nil
	var pi pooledIter
	head := store.Revision(s.head.Load())
	gen := s.iters.gen.Load()
	s.iters.mu.Lock()
	// Drop iterators older than the head, so idle ones never pin old
	// memtables and sstables for long; take a current one.
	var stale []pooledIter
	free := s.iters.free[:0]
	for _, f := range s.iters.free {
		switch {
		case f.head < head || f.gen < gen:
			stale = append(stale, f)
		case pi.it == nil && f.head >= rev && f.unbounded == unbounded:
			pi = f
		default:
			free = append(free, f)
		}
	}
	s.iters.free = free
	s.iters.mu.Unlock()
	for _, f := range stale {
		f.it.Close()
	}
	if pi.it != nil {
		if !unbounded {
			pi.it.SetBounds(lower, upper)
		}
	} else {
		// Load the head first: it is published after its commit, so the
		// new iterator sees at least that much.
		pi.head = store.Revision(s.head.Load())
		pi.gen = s.iters.gen.Load()
		pi.unbounded = unbounded
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return pooledIter{}, fmt.Errorf("pebblestore: %w", err)
		}
		pi.it = it
	}
	if hz := store.Revision(s.horizon.Load()); rev < hz {
		s.putIter(pi)
		return pooledIter{}, &store.CompactedError{Requested: rev, Horizon: hz}
	}
	return pi, nil
}

// putIter returns an iterator to the pool, or closes it if the pool is
// full or a newer revision was committed since it was created.
func (s *Store) putIter(pi pooledIter) {
	if pi.it.Error() == nil && pi.head == store.Revision(s.head.Load()) && pi.gen == s.iters.gen.Load() {
		s.iters.mu.Lock()
		if len(s.iters.free) < maxPooledIters {
			s.iters.free = append(s.iters.free, pi)
			s.iters.mu.Unlock()
			return
		}
		s.iters.mu.Unlock()
	}
	pi.it.Close()
}

// closeIters closes every pooled iterator; Close calls it once no
// operation runs.
func (s *Store) closeIters() {
	s.iters.mu.Lock()
	defer s.iters.mu.Unlock()
	for _, pi := range s.iters.free {
		pi.it.Close()
	}
	s.iters.free = nil
}
