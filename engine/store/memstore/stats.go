package memstore

import (
	"context"
	"sync"

	"github.com/pemba-authz/pemba/engine/store"
)

// statsCache holds the counts of the head revision, taken on demand: the
// reference backend keeps them exact (at head, unexpired at the store's
// clock) so that tests of the planner are deterministic.
type statsCache struct {
	mu sync.Mutex
	st *store.Statistics
}

var (
	_ store.StatsKeeper = (*Store)(nil)
	_ store.StatsReader = (*reader)(nil)
)

// Statistics returns the counts of relationships at the head revision
// (store.StatsKeeper), counting them when the head moved since the last
// count; nil when the store is closed.
func (s *Store) Statistics() *store.Statistics {
	st, err := s.RefreshStatistics(context.Background())
	if err != nil {
		return nil
	}
	return st
}

// RefreshStatistics returns the counts of relationships at the head
// revision, counted when the head moved since the last count.
func (s *Store) RefreshStatistics(ctx context.Context) (*store.Statistics, error) {
	head, err := s.HeadRevision(ctx)
	if err != nil {
		return nil, err
	}
	s.statsCache.mu.Lock()
	defer s.statsCache.mu.Unlock()
	if st := s.statsCache.st; st != nil && st.Revision == head {
		return st, nil
	}
	r, err := s.Snapshot(ctx, head)
	if err != nil {
		return nil, err
	}
	st, err := store.CountStatistics(ctx, r, s.now())
	if err != nil {
		return nil, err
	}
	s.statsCache.st = st
	return st, nil
}

// Statistics returns the store's counts (store.StatsReader).
func (r *reader) Statistics() *store.Statistics { return r.s.Statistics() }
