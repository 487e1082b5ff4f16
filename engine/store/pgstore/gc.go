package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pemba-authz/pemba/engine/store"
)

// gcBatch bounds the rows one GC statement deletes, so that no statement
// runs (or holds row locks) for long.
const gcBatch = 1000

// GC advances the horizon to the newest revision committed at or before
// now - GCWindow, then deletes what no reader at or above it can see:
// versions with deleted_rev <= horizon, changelog rows older than it and
// schema texts older than the newest one at or below it.
//
// The horizon is committed before anything is deleted, and every query
// reads it in the statement that reads relationships, so a query never
// sees a half-collected revision: a reader below the new horizon gets
// store.ErrRevisionCompacted from its next query. Deletions run in short
// autocommitted batches. Running GC in several processes at once is safe:
// the horizon only moves forward and the deletions are idempotent.
func (s *Store) GC(ctx context.Context, now time.Time) (store.GCStats, error) {
	stats, err := s.gc(ctx, now)
	s.gcCount.Observe(stats, err)
	return stats, err
}

// gc is GC without the counting.
func (s *Store) gc(ctx context.Context, now time.Time) (store.GCStats, error) {
	if err := s.checkOpen(); err != nil {
		return store.GCStats{}, err
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	cutoff := nowNanos(now.Add(-s.opts.GCWindow))
	var found pgtype.Int8
	if err := s.pool.QueryRow(ctx, `SELECT max(revision) FROM pemba_changelog WHERE committed_ns <= $1`, cutoff).Scan(&found); err != nil {
		return store.GCStats{}, s.wrap(ctx, "gc: find horizon", err)
	}
	var h int64
	if err := s.pool.QueryRow(ctx, `UPDATE pemba_horizon SET horizon = GREATEST(horizon, $1) RETURNING horizon`,
		found.Int64).Scan(&h); err != nil {
		return store.GCStats{}, s.wrap(ctx, "gc: persist horizon", err)
	}
	horizon := store.Revision(h)
	s.advanceHorizon(horizon)
	stats := store.GCStats{Horizon: horizon}
	for _, stmt := range []string{
		`DELETE FROM pemba_relationships WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM pemba_relationships
			WHERE deleted_rev <= $1 AND deleted_rev <> 9223372036854775807 LIMIT ` + fmt.Sprint(gcBatch) + `))`,
		`DELETE FROM pemba_changelog WHERE revision IN (
			SELECT revision FROM pemba_changelog WHERE revision < $1 ORDER BY revision LIMIT ` + fmt.Sprint(gcBatch) + `)`,
	} {
		for {
			tag, err := s.pool.Exec(ctx, stmt, h)
			if err != nil {
				return stats, s.wrap(ctx, "gc: delete", err)
			}
			stats.Removed += int(tag.RowsAffected())
			if tag.RowsAffected() < gcBatch {
				break
			}
		}
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM pemba_schemas
		WHERE revision < (SELECT max(revision) FROM pemba_schemas WHERE revision <= $1)`, h); err != nil {
		return stats, s.wrap(ctx, "gc: delete schemas", err)
	}
	if stats.Removed > 0 {
		s.opts.Logger.Debug("pgstore: gc", "horizon", h, "removed", stats.Removed)
	}
	return stats, nil
}

// gcLoop runs GC every GCInterval until ctx ends.
func (s *Store) gcLoop(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.GC(ctx, s.opts.Now()); err != nil && ctx.Err() == nil {
				s.opts.Logger.Error("pgstore: background gc failed", "err", err)
			}
		}
	}
}
