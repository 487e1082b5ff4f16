package memstore

import (
	"context"
	"iter"
	"slices"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// GC raises the horizon to the newest revision committed at or before
// now minus the GC window, and drops what no revision from the horizon on
// can see: versions replaced at or before the horizon, relationships
// deleted at or before it, older schema texts and change sets. The head
// revision is never dropped, so the horizon never passes it. It also drops
// expired relationships: a key's only remaining version, written at or
// below the horizon, that expired at or before the cutoff (see
// store.GarbageCollector). It visits every key: memstore is the reference,
// not the fast path.
func (s *Store) GC(ctx context.Context, now time.Time) (store.GCStats, error) {
	stats, err := s.gc(ctx, now)
	s.gcCount.Observe(stats, err)
	return stats, err
}

// gc is GC without the counting.
func (s *Store) gc(ctx context.Context, now time.Time) (store.GCStats, error) {
	if err := ctx.Err(); err != nil {
		return store.GCStats{}, err
	}
	cutoff := now.Add(-s.window)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.GCStats{}, store.ErrClosed
	}
	h := s.horizon
	// Commit times never decrease, so the last change set committed at or
	// before the cutoff is the newest such revision.
	for i := len(s.changes) - 1; i >= 0; i-- {
		if !s.changes[i].Time.After(cutoff) {
			h = max(h, s.changes[i].Revision)
			break
		}
	}
	moved := h > s.horizon
	s.horizon = h
	stats := store.GCStats{Horizon: h}
	if s.auditRetention > 0 {
		stats.AuditPruned = s.pruneAudit(now.Add(-s.auditRetention))
	}
	emptied := 0
	for k, rec := range s.records {
		drop := 0
		if moved {
			drop = shadowed(rec.versions, h)
		}
		// After the shadowed versions go, an expired relationship written
		// at or below the horizon is the key's only version.
		if rest := rec.versions[drop:]; len(rest) == 1 && rest[0].rev <= h && !rest[0].deleted && rest[0].rel.ExpiredAt(cutoff) {
			drop++
			stats.Expired++
		}
		if drop == 0 {
			continue
		}
		stats.Removed += drop
		rec.versions = slices.Clone(rec.versions[drop:])
		if len(rec.versions) == 0 {
			delete(s.records, k)
			emptied++
		}
	}
	if emptied > 0 {
		live := func(r *record) bool { return len(r.versions) > 0 }
		s.forward.rebuild(live)
		s.reverse.rebuild(live)
	}
	if !moved {
		s.checkInvariants()
		return stats, nil
	}

	n := 0
	for n < len(s.changes) && s.changes[n].Revision <= h {
		n++
	}
	stats.Removed += n
	s.changes = slices.Clone(s.changes[n:])

	n = 0
	for n+1 < len(s.schemas) && s.schemas[n+1].rev <= h {
		n++
	}
	s.schemas = slices.Clone(s.schemas[n:])
	s.checkInvariants()
	return stats, nil
}

// shadowed returns how many of the oldest versions no reader at or above
// horizon h can see: those before the version in force at h, and that
// version too when it is a deletion.
func shadowed(versions []version, h store.Revision) int {
	i := len(versions) - 1
	for i >= 0 && versions[i].rev > h {
		i--
	}
	if i < 0 {
		return 0
	}
	if versions[i].deleted {
		return i + 1
	}
	return i
}

// Import writes every relationship of rels at one new revision with Touch
// semantics and no batch limit. An error from rels, or an invalid
// relationship, writes nothing. Like Update's closure, rels must not write
// to the same store.
func (s *Store) Import(ctx context.Context, meta store.WriteMeta, rels iter.Seq2[tuple.Relationship, error]) (store.Revision, int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	pending := make(map[tuple.Key]pendingWrite)
	var changes []store.Change
	count := 0
	for r, err := range rels {
		if err != nil {
			return 0, 0, errorf("import: relationship %d: %w", count+1, err)
		}
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		r, err := normalize(r)
		if err != nil {
			return 0, 0, errorf("import: relationship %d: %w", count+1, err)
		}
		pending[r.Key()] = pendingWrite{rel: r}
		changes = append(changes, store.Change{Op: store.OpTouch, Relationship: r})
		count++
	}
	rev, err := s.commit(meta, changes, pending, nil)
	if err != nil {
		return 0, 0, err
	}
	return rev, count, nil
}
