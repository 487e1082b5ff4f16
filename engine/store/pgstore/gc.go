package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pemba-authz/pemba/engine/store"
)

// gcBatch (the LIMIT of deleteDead, deleteChangelog and deleteExpired)
// bounds the rows one GC statement deletes, so that no statement
// runs (or holds row locks) for long.
const gcBatch = 1000

// GC advances the horizon to the newest revision committed at or before
// now - GCWindow, then deletes what no reader at or above it can see:
// versions with deleted_rev <= horizon, changelog rows older than it and
// schema texts older than the newest one at or below it. It also deletes
// expired relationships (see store.GarbageCollector): live versions
// created at or below the horizon whose expiration is at or before the
// cutoff, found through the partial index pemba_relationships_expires.
// Watch derives change sets from the versions' created_rev and deleted_rev,
// so only versions outside every change set still readable may go: a
// version created above the horizon, or closed by a later revision, waits.
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
	if err := s.pool.QueryRow(ctx, gcFindHorizon, cutoff).Scan(&found); err != nil {
		return store.GCStats{}, s.wrap(ctx, "gc: find horizon", err)
	}
	var h int64
	if err := s.pool.QueryRow(ctx, gcRaiseHorizon, found.Int64).Scan(&h); err != nil {
		return store.GCStats{}, s.wrap(ctx, "gc: persist horizon", err)
	}
	horizon := store.Revision(h)
	s.advanceHorizon(horizon)
	stats := store.GCStats{Horizon: horizon}
	for _, step := range []struct {
		stmt    string
		args    []any
		expired bool
	}{
		{deleteDead, []any{h}, false},
		{deleteChangelog, []any{h}, false},
		{deleteExpired, []any{h, cutoff}, true},
	} {
		for {
			tag, err := s.pool.Exec(ctx, step.stmt, step.args...)
			if err != nil {
				return stats, s.wrap(ctx, "gc: delete", err)
			}
			n := int(tag.RowsAffected())
			stats.Removed += n
			if step.expired {
				stats.Expired += n
			}
			if n < gcBatch {
				break
			}
		}
	}
	if _, err := s.pool.Exec(ctx, deleteOldSchemas, h); err != nil {
		return stats, s.wrap(ctx, "gc: delete schemas", err)
	}
	if s.opts.AuditRetention > 0 {
		n, err := s.pruneAudit(ctx, now.Add(-s.opts.AuditRetention))
		stats.AuditPruned = n
		if err != nil {
			return stats, err
		}
	}
	if stats.Removed > 0 {
		s.opts.Logger.Debug("pgstore: gc", "horizon", h, "removed", stats.Removed)
	}
	return stats, nil
}

// The GC deletions, each of at most gcBatch rows, repeated until a batch
// falls short. $1 is the horizon; $2 the cutoff in Unix nanoseconds. The
// literal liveRev lets the planner match the partial indexes.
const (
	deleteDead = `DELETE FROM pemba_relationships WHERE ctid = ANY(ARRAY(
	SELECT ctid FROM pemba_relationships
	WHERE deleted_rev <= $1 AND deleted_rev <> 9223372036854775807 LIMIT 1000))`
	deleteChangelog = `DELETE FROM pemba_changelog WHERE revision IN (
	SELECT revision FROM pemba_changelog WHERE revision < $1 ORDER BY revision LIMIT 1000)`
	deleteExpired = `DELETE FROM pemba_relationships WHERE ctid = ANY(ARRAY(
	SELECT ctid FROM pemba_relationships
	WHERE expires_ns <= $2 AND deleted_rev = 9223372036854775807 AND created_rev <= $1
	ORDER BY expires_ns LIMIT 1000))`
	// gcFindHorizon finds the newest revision committed at or before
	// $1; gcRaiseHorizon raises the horizon to it; deleteOldSchemas
	// drops the schemas that no revision at or above horizon $1 reads.
	gcFindHorizon    = `SELECT max(revision) FROM pemba_changelog WHERE committed_ns <= $1`
	gcRaiseHorizon   = `UPDATE pemba_horizon SET horizon = GREATEST(horizon, $1) RETURNING horizon`
	deleteOldSchemas = `DELETE FROM pemba_schemas
WHERE revision < (SELECT max(revision) FROM pemba_schemas WHERE revision <= $1)`
)

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
