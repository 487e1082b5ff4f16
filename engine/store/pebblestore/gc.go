package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
)

// gcBatchOps bounds the deletions in one GC batch.
const gcBatchOps = 1024

// GC advances the horizon to the newest revision committed at or before
// now - GCWindow and removes what no reader at or above it can see:
// versions shadowed by a newer version at or below the horizon, tombstones
// at or below it (with their older versions), change sets older than it,
// and schema texts older than the newest one at or below it.
//
// The horizon is persisted and published before anything is deleted, so a
// restart never admits a reader below it, and a reader whose revision was
// already at or above the new horizon keeps a complete view. Deletions run
// in bounded batches without the writer lock. Only keys changed since the
// last finished GC are visited (they are listed in the changelog), so a
// run costs O(changes), not O(store). A crash during GC leaves a
// "done" marker behind the horizon, and the next run redoes the work.
func (s *Store) GC(ctx context.Context, now time.Time) (store.GCStats, error) {
	stats, err := s.gc(ctx, now)
	s.gcCount.Observe(stats, err)
	return stats, err
}

// gc is GC without the counting.
func (s *Store) gc(ctx context.Context, now time.Time) (_ store.GCStats, err error) {
	if err := s.acquire(); err != nil {
		return store.GCStats{}, err
	}
	defer s.release()
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	// GC changes no visible state: a failed batch leaves work to redo.
	defer s.catchFatal(&err, store.ErrUnavailable)
	if err := s.writable(); err != nil {
		return store.GCStats{}, err
	}

	old := store.Revision(s.horizon.Load())
	horizon, err := s.findHorizon(old, now.Add(-s.opts.GCWindow))
	if err != nil {
		return store.GCStats{Horizon: old}, err
	}
	if horizon > old {
		b := s.db.NewBatch()
		_ = b.Set(keyHorizon, revBytes(horizon), nil)
		err := b.Commit(pebble.Sync)
		b.Close()
		if err != nil {
			return store.GCStats{Horizon: old}, fmt.Errorf("pebblestore: persist horizon: %w", err)
		}
		s.horizon.Store(uint64(horizon))
	}
	stats := store.GCStats{Horizon: horizon}
	done, err := s.getRev(keyGCDone)
	if err != nil {
		return stats, err
	}
	if done < horizon {
		removed, err := s.collect(ctx, done, horizon)
		stats.Removed = removed
		if err != nil {
			return stats, err
		}
		n, err := s.dropHistory(done, horizon)
		stats.Removed += n
		if err != nil {
			return stats, err
		}
	}
	// Expiry advances with the clock even when the horizon does not.
	expired, removed, err := s.expire(ctx, horizon, now.Add(-s.opts.GCWindow))
	stats.Expired = expired
	stats.Removed += removed
	if err != nil {
		return stats, err
	}
	if s.opts.AuditRetention > 0 {
		n, err := s.pruneAudit(now.Add(-s.opts.AuditRetention))
		stats.AuditPruned = n
		if err != nil {
			return stats, err
		}
	}
	if done < horizon || stats.Expired > 0 {
		s.opts.Logger.Debug("pebblestore: gc", "horizon", uint64(horizon), "removed", stats.Removed, "expired", stats.Expired)
	}
	return stats, nil
}

// findHorizon returns the newest revision in [old, head] committed at or
// before cutoff, or old.
func (s *Store) findHorizon(old store.Revision, cutoff time.Time) (store.Revision, error) {
	head := store.Revision(s.head.Load())
	if old >= head {
		return old, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: changelogKey(old+1, 0), UpperBound: changelogKey(head+1, 0)})
	if err != nil {
		return old, fmt.Errorf("pebblestore: %w", err)
	}
	defer it.Close()
	horizon := old
	for ok := it.First(); ok; {
		rev, seq, err := decodeChangelogKey(it.Key())
		if err != nil {
			return old, err
		}
		if seq != 0 {
			ok = it.SeekGE(changelogKey(rev+1, 0))
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return old, fmt.Errorf("pebblestore: read changelog: %w", err)
		}
		h, err := decodeChangeHeader(val)
		if err != nil {
			return old, fmt.Errorf("changelog of revision %d: %w", rev, err)
		}
		if h.time.After(cutoff) {
			break
		}
		horizon = rev
		ok = it.SeekGE(changelogKey(rev+1, 0))
	}
	return horizon, it.Error()
}

// collect deletes, for every key changed in revisions (from, horizon], the
// versions that no reader at or above horizon needs. It returns how many
// versions it deleted.
func (s *Store) collect(ctx context.Context, from, horizon store.Revision) (int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: changelogKey(from+1, 0), UpperBound: changelogKey(horizon+1, 0)})
	if err != nil {
		return 0, fmt.Errorf("pebblestore: %w", err)
	}
	defer it.Close()
	g := &collector{s: s, horizon: horizon, batch: s.db.NewBatch(), seen: map[string]struct{}{}}
	defer func() { g.batch.Close() }()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return g.removed, err
		}
		rev, seq, err := decodeChangelogKey(it.Key())
		if err != nil {
			return g.removed, err
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return g.removed, fmt.Errorf("pebblestore: read changelog: %w", err)
		}
		_, changes, err := decodeChangeChunk(val, seq)
		if err != nil {
			return g.removed, fmt.Errorf("changelog of revision %d: %w", rev, err)
		}
		for _, c := range changes {
			if err := g.tuple(forwardTupleKey(nil, c.Relationship.Key())); err != nil {
				return g.removed, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return g.removed, fmt.Errorf("pebblestore: read changelog: %w", err)
	}
	return g.removed, g.flush()
}

// collector batches the deletions of one GC run.
type collector struct {
	s       *Store
	horizon store.Revision
	batch   *pebble.Batch
	removed int // versions deleted
	expired int // expired relationships deleted (by expire)
	// it reads the versions of one tuple for expire, rebounded per tuple
	// (much cheaper than a new iterator) and renewed after each flush.
	it  *pebble.Iterator
	key []byte
	// seen holds the tuple keys visited since the last flush: a key
	// changed in several revisions is visited once per batch, and the
	// iterator of a revisit after a flush sees the deletions.
	seen map[string]struct{}
}

// maxSeen bounds the memory of collector.seen.
const maxSeen = 1 << 16

// tuple deletes the versions of one forward tuple key that are older than
// its version visible at the horizon, and that version too if it is a
// tombstone.
func (g *collector) tuple(tk []byte) error {
	if _, ok := g.seen[string(tk)]; ok {
		return nil
	}
	if len(g.seen) >= maxSeen {
		if err := g.flush(); err != nil {
			return err
		}
	}
	g.seen[string(tk)] = struct{}{}
	it, err := g.s.db.NewIter(&pebble.IterOptions{LowerBound: tk, UpperBound: prefixEnd(tk)})
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	defer it.Close()
	first := true
	for ok := it.SeekGE(appendRev(bytes.Clone(tk), g.horizon)); ok; ok = it.Next() {
		val, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: read value: %w", err)
		}
		if first {
			first = false
			if !bytes.Equal(val, tombstoneValue) {
				continue // the visible live version stays
			}
		}
		if err := g.delete(it.Key(), val); err != nil {
			return err
		}
	}
	return it.Error()
}

// delete removes one forward index entry with value val, its reverse twin
// and its expiry index entry.
func (g *collector) delete(fkey, val []byte) error {
	k, rev, err := decodeVersionKey(fkey)
	if err != nil {
		return err
	}
	exp, err := valueExpiration(val)
	if err != nil {
		return err
	}
	_ = g.batch.Delete(fkey, nil)
	if !exp.IsZero() {
		g.key = expiryKey(g.key[:0], exp, fkey)
		_ = g.batch.Delete(g.key, nil)
	}
	g.key = appendRev(reverseTupleKey(g.key[:0], k), rev)
	_ = g.batch.Delete(g.key, nil)
	g.removed++
	if g.batch.Count() >= gcBatchOps {
		return g.flush()
	}
	return nil
}

// flush commits the pending deletions. They need no fsync: deletions lost
// in a crash are redone, because the done marker has not moved.
func (g *collector) flush() error {
	clear(g.seen)
	if g.batch.Count() == 0 {
		return nil
	}
	if g.it != nil {
		// Its view predates the deletions being committed.
		if err := g.it.Close(); err != nil {
			return fmt.Errorf("pebblestore: %w", err)
		}
		g.it = nil
	}
	if err := g.batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: gc commit: %w", err)
	}
	g.batch.Close()
	g.batch = g.s.db.NewBatch()
	return nil
}

// expire deletes expired relationships (see store.GarbageCollector): keys
// whose newest version is live, written at or below horizon and expired at
// or before cutoff. It walks the expiry index up to cutoff, so a run costs
// O(expired), not O(store); an entry whose version cannot go yet (written
// above the horizon, or replaced by a newer version that is still
// readable) stays for a later run, and one whose version is gone is
// dropped. Like collect, it deletes in bounded batches without the writer
// lock: a concurrent write only adds a newer version, which it leaves
// alone. It returns how many relationships expired and how many versions
// it deleted.
func (s *Store) expire(ctx context.Context, horizon store.Revision, cutoff time.Time) (int, int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagExpiry}, UpperBound: expiryBound(cutoff)})
	if err != nil {
		return 0, 0, fmt.Errorf("pebblestore: %w", err)
	}
	defer it.Close()
	g := &collector{s: s, horizon: horizon, batch: s.db.NewBatch(), seen: map[string]struct{}{}}
	defer func() {
		g.batch.Close()
		if g.it != nil {
			g.it.Close()
		}
		if g.expired > 0 {
			s.iters.gen.Add(1) // pooled iterators still show them
		}
	}()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return g.expired, g.removed, err
		}
		exp, fkey, err := decodeExpiryKey(it.Key())
		if err != nil {
			return g.expired, g.removed, err
		}
		_, rev, err := decodeVersionKey(fkey)
		if err != nil {
			return g.expired, g.removed, err
		}
		if rev > horizon {
			continue
		}
		if err := g.expiredEntry(it.Key(), fkey, exp); err != nil {
			return g.expired, g.removed, err
		}
	}
	if err := it.Error(); err != nil {
		return g.expired, g.removed, fmt.Errorf("pebblestore: read expiry index: %w", err)
	}
	return g.expired, g.removed, g.flush()
}

// expiredEntry handles one expiry index entry xkey of a version at or
// below the horizon, expired at exp; fkey is the version's forward index
// key. If that version is its key's newest, every version of the key goes
// (with its entries); if it is replaced, it stays until ordinary GC
// deletes it with its entry; if it is gone, the entry goes.
func (g *collector) expiredEntry(xkey, fkey []byte, exp time.Time) error {
	tk := fkey[:len(fkey)-revLen]
	if _, ok := g.seen[string(tk)]; ok {
		return nil // deleted in the pending batch, entries included
	}
	if len(g.seen) >= maxSeen {
		if err := g.flush(); err != nil {
			return err
		}
	}
	if g.it == nil {
		var err error
		if g.it, err = g.s.db.NewIter(nil); err != nil {
			return fmt.Errorf("pebblestore: %w", err)
		}
	}
	it := g.it
	it.SetBounds(tk, prefixEnd(tk))
	var cur time.Time
	found := it.SeekGE(fkey) && bytes.Equal(it.Key(), fkey)
	if found {
		val, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: read value: %w", err)
		}
		if cur, err = valueExpiration(val); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: read index: %w", err)
	}
	if !found || !cur.Equal(exp) {
		_ = g.batch.Delete(xkey, nil) // left behind: the version is gone
		return nil
	}
	// The newest version sorts first.
	if !it.First() || !bytes.Equal(it.Key(), fkey) {
		return it.Error()
	}
	// Read the chain (usually one version) before deleting: a deletion
	// may flush, which closes the iterator.
	var chain [][2][]byte
	for ok := true; ok; ok = it.Next() {
		val, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: read value: %w", err)
		}
		chain = append(chain, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(val)})
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: read index: %w", err)
	}
	g.expired++
	for _, kv := range chain {
		if err := g.delete(kv[0], kv[1]); err != nil {
			return err
		}
	}
	// Marked after the deletions, which may flush: until the next flush a
	// later entry of this key must not read the chain again.
	g.seen[string(tk)] = struct{}{}
	return nil
}

// dropHistory deletes change sets older than horizon and schema texts
// older than the newest one at or below it, and records that GC finished
// up to horizon. It returns how many change sets it deleted.
func (s *Store) dropHistory(from, horizon store.Revision) (int, error) {
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(changelogKey(0, 0), changelogKey(horizon, 0), nil)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagSchema}, UpperBound: []byte{tagSchema + 1}})
	if err != nil {
		return 0, fmt.Errorf("pebblestore: %w", err)
	}
	if it.SeekGE(schemaKey(horizon)) {
		// Keys after the newest schema at or below the horizon are older.
		_ = b.DeleteRange(prefixEnd(it.Key()), []byte{tagSchema + 1}, nil)
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("pebblestore: %w", err)
	}
	_ = b.Set(keyGCDone, binary.BigEndian.AppendUint64(nil, uint64(horizon)), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("pebblestore: gc commit: %w", err)
	}
	// Revisions from..horizon-1 lost their change sets (revision 0 has none).
	n := int(horizon - from)
	if from == 0 {
		n--
	}
	return n, nil
}

// gcLoop runs GC every GCInterval until Close.
func (s *Store) gcLoop() {
	defer close(s.gcDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closedCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closedCh:
			return
		case <-t.C:
			if _, err := s.GC(ctx, s.opts.Now()); err != nil && ctx.Err() == nil {
				s.opts.Logger.Error("pebblestore: background gc failed", "err", err)
			}
		}
	}
}
