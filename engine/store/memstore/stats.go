package memstore

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/pemba-authz/pemba/engine/store"
)

// statsCache holds the last count, taken on demand and synchronously, so
// that tests of the planner are deterministic: the first Statistics call
// after a load counts exactly. Later ones count again only once the changes
// committed since exceed a tenth of the relationships counted (at least
// 1,000), as the other backends do, so that a large store under writes
// does not scan itself for every request.
type statsCache struct {
	mu      sync.Mutex // held by a count
	st      atomic.Pointer[store.Statistics]
	changes atomic.Int64 // committed since the last count began
}

var (
	_ store.StatsKeeper = (*Store)(nil)
	_ store.StatsReader = (*reader)(nil)
)

// Statistics returns the counts of relationships (store.StatsKeeper):
// the last count, or a new one at the head when there is none or enough
// changed since (see statsCache); nil when the store is closed.
func (s *Store) Statistics() *store.Statistics {
	st := s.statsCache.st.Load()
	if st != nil && s.statsCache.changes.Load() <= max(1000, st.Total/10) {
		return st
	}
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
	if st := s.statsCache.st.Load(); st != nil && st.Revision == head {
		return st, nil
	}
	s.statsCache.changes.Store(0)
	r, err := s.Snapshot(ctx, head)
	if err != nil {
		return nil, err
	}
	st, err := store.CountStatistics(ctx, r, s.now())
	if err != nil {
		return nil, err
	}
	s.statsCache.st.Store(st)
	return st, nil
}

// Statistics returns the store's counts (store.StatsReader).
func (r *reader) Statistics() *store.Statistics { return r.s.Statistics() }
