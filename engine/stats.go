package engine

import (
	"context"
	"fmt"

	"github.com/pemba-authz/pemba/engine/store"
)

// SettleStatistics makes the store's statistics (the counts the planner
// reads, store.StatsKeeper) current: when the store keeps them and its
// last count is older than the head revision, it counts now and returns
// once the count is done. A store counts in the background when it opens
// without a saved count at its head and after many writes (a scan of
// every relationship: about a second of CPU per million); a caller that
// measures checks calls this first, so that the count is not inside what
// it measures. A store without statistics returns nil at once.
func (e *Engine) SettleStatistics(ctx context.Context) error {
	sk, ok := e.st.(store.StatsKeeper)
	if !ok {
		return nil
	}
	head, err := e.st.HeadRevision(ctx)
	if err != nil {
		return fmt.Errorf("engine: settle statistics: %w", err)
	}
	if st := sk.Statistics(); st != nil && st.Revision >= head {
		return nil
	}
	if _, err := sk.RefreshStatistics(ctx); err != nil {
		return fmt.Errorf("engine: settle statistics: %w", err)
	}
	return nil
}

// CompactStore rewrites the store's files into their final shape when the
// store can (store.Compacter: Pebble), and returns when done; it returns
// nil at once for other stores. A bulk import and the nested-group
// index's rebuild after it (wait with WaitNestedIndex first) leave their
// rows in overlapping levels that every uncached read seeks in turn;
// compacting once after the load leaves one. The engine serves requests
// meanwhile.
func (e *Engine) CompactStore(ctx context.Context) error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	c, ok := e.st.(store.Compacter)
	if !ok {
		return nil
	}
	if err := c.Compact(ctx); err != nil {
		return fmt.Errorf("engine: compact store: %w", err)
	}
	return nil
}
