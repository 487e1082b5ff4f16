package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pemba-authz/pemba/engine/store"
)

// A replica is a hot standby fed by streaming replication. It replays the
// primary's WAL in order, and revisions commit in order with the counter
// row updated in the same transaction, so a replica whose counter shows
// head H holds exactly the primary's state at every revision <= H. A
// snapshot at R <= H may therefore read there; the per-statement horizon
// check holds on a replica too, because GC's horizon commit replays before
// its deletions. Queries that fail on a replica (unreachable, or cancelled
// by a recovery conflict) are retried on the primary.
type replica struct {
	uri  string
	pool *pgxpool.Pool
	// head caches the newest revision the replica is known to have
	// replayed: a lower bound, refreshed when a snapshot needs more.
	head atomic.Uint64
}

// openReplicas connects to the read replicas and checks that each serves
// this store (same store ID and schema version).
func (s *Store) openReplicas(ctx context.Context, uris []string) error {
	for _, uri := range uris {
		cfg, err := pgxpool.ParseConfig(uri)
		if err != nil {
			return fmt.Errorf("pgstore: parse read replica uri: %w", err)
		}
		cfg.MaxConns = poolSize(uri, cfg.MaxConns, s.opts.MaxConns)
		sessionDefaults(cfg.ConnConfig)
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("pgstore: connect to read replica: %w", err)
		}
		r := &replica{uri: uri, pool: pool}
		s.replicas = append(s.replicas, r)
		if err := checkVersion(ctx, pool); err != nil {
			return fmt.Errorf("read replica: %w", err)
		}
		var id string
		if err := pool.QueryRow(ctx, selectStoreID).Scan(&id); err != nil {
			return fmt.Errorf("pgstore: read replica: read store id: %w", err)
		}
		if id != s.id {
			return fmt.Errorf("pgstore: read replica holds store %s, the primary %s: %w", id, s.id, ErrNotReplica)
		}
	}
	return nil
}

func (s *Store) closeReplicas() {
	for _, r := range s.replicas {
		r.pool.Close()
	}
}

// readPool returns where a snapshot at rev reads, and whether that is a
// replica: the first replica known to have replayed rev, else the first
// one that has when asked, else the primary.
func (s *Store) readPool(ctx context.Context, rev store.Revision) (querier, bool) {
	for _, r := range s.replicas {
		if store.Revision(r.head.Load()) >= rev {
			return r.pool, true
		}
	}
	for _, r := range s.replicas {
		var head int64
		if err := r.pool.QueryRow(ctx, selectHead).Scan(&head); err != nil {
			s.opts.Logger.Debug("pgstore: read replica unavailable; using the primary", "err", err)
			continue
		}
		advance(&r.head, store.Revision(head))
		if store.Revision(head) >= rev {
			return r.pool, true
		}
	}
	return s.pool, false
}

// advance raises a cached revision to rev (never lowers it).
func advance(a *atomic.Uint64, rev store.Revision) {
	for {
		cur := a.Load()
		if uint64(rev) <= cur || a.CompareAndSwap(cur, uint64(rev)) {
			return
		}
	}
}

// retryOnPrimary reports whether a query that failed with err on a
// replica should run again on the primary: any failure but the caller's
// own (context), a closed store, or a compacted revision (which the
// primary, whose horizon is at least the replica's, would report too).
func retryOnPrimary(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrRevisionCompacted)
}
