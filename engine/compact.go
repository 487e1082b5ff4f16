package engine

import (
	"context"
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
	threshold int64        // relationships; <= 0: off
	pending   atomic.Int64 // imported since the last compaction began
	job       soloJob      // a compaction runs or waits for the index

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
	c.pending.Add(int64(n))
	c.job.start(func() bool {
		p := c.pending.Load()
		if p < c.threshold {
			return false
		}
		if sk, ok := e.st.(store.StatsKeeper); ok {
			// Counted before the import, most likely: a store the
			// import doubled qualifies either way.
			if st := sk.Statistics(); st != nil && 4*p < st.Total {
				return false
			}
		}
		c.pending.Add(-p) // imports since count for the next one
		return true
	}, e.compactInBackground)
}

// compactInBackground waits for the nested-group index's rebuild that the
// import started (its rows want compacting too), then compacts.
func (e *Engine) compactInBackground() {
	c := &e.compactor
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
}

// WaitCompaction waits until no compaction started by an import runs (see
// Options.CompactAfterImport), or ctx is done.
func (e *Engine) WaitCompaction(ctx context.Context) error {
	return e.compactor.job.wait(ctx)
}
