package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
)

// DefaultCompactAfterImport is the Options.CompactAfterImport used when
// it is zero.
const DefaultCompactAfterImport = 100_000

// importCompactor compacts the store in the background after imports
// large enough to leave it in a slow shape: a bulk import and the
// nested-group index's rebuild after it leave millions of fresh rows in
// overlapping levels, and every uncached read seeks in each
// (docs/benchmarks.md: a deep-chain medium check 27% cheaper once
// compacted). Small imports into a large store do not pay for a rewrite
// of all of it: the relationships imported since the last compaction
// must be at least the threshold and a quarter of the store's last count.
type importCompactor struct {
	threshold int64 // relationships; <= 0: off

	mu      sync.Mutex
	pending int64         // imported since the last compaction began
	running bool          // a compaction runs or waits for the index
	closed  bool          // set by Close: nothing starts after it
	idle    chan struct{} // closed when none runs
	wg      sync.WaitGroup

	runs, failures atomic.Uint64
}

// compactAfterImport counts n imported relationships and starts a
// background compaction when the imports since the last one call for it
// and the store can compact (store.Compacter).
func (e *Engine) compactAfterImport(n int) {
	c := &e.compactor
	if n <= 0 || c.threshold <= 0 {
		return
	}
	if _, ok := e.st.(store.Compacter); !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending += int64(n)
	if c.running || c.pending < c.threshold || c.closed {
		return
	}
	if sk, ok := e.st.(store.StatsKeeper); ok {
		// Counted before the import, most likely: a store the import
		// doubled qualifies either way.
		if st := sk.Statistics(); st != nil && 4*c.pending < st.Total {
			return
		}
	}
	c.pending = 0
	c.running = true
	c.idle = make(chan struct{})
	c.wg.Add(1)
	go e.compactInBackground()
}

// compactInBackground waits for the nested-group index's rebuild that the
// import started (its rows want compacting too), then compacts.
func (e *Engine) compactInBackground() {
	c := &e.compactor
	defer c.wg.Done()
	ctx := e.builder.ctx // cancelled by Close
	start := time.Now()
	err := e.WaitNestedIndex(ctx)
	if err == nil || ctx.Err() == nil {
		// A failed rebuild leaves the index to the walk; the store's
		// shape is worth fixing anyway.
		err = e.CompactStore(ctx)
	}
	switch {
	case err == nil:
		c.runs.Add(1)
		e.log.Info("store compacted after an import", "duration", time.Since(start))
	case ctx.Err() == nil:
		c.failures.Add(1)
		e.log.Error("compaction after an import failed; reads seek in more levels until Pebble's own compactions catch up", "error", err)
	}
	c.mu.Lock()
	c.running = false
	close(c.idle)
	c.mu.Unlock()
}

// close stops compactions from starting, cancels the one that runs (with
// the builder's context, which the caller cancels) and waits for it.
func (c *importCompactor) close(cancel func()) {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	cancel()
	c.wg.Wait()
}

// WaitCompaction waits until no compaction started by an import runs (see
// Options.CompactAfterImport), or ctx is done.
func (e *Engine) WaitCompaction(ctx context.Context) error {
	c := &e.compactor
	c.mu.Lock()
	idle, running := c.idle, c.running
	c.mu.Unlock()
	if !running {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
