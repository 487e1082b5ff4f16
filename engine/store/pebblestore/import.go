package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// importBatchBytes is the size at which Import commits a batch; below half
// the memtable size, so batches apply through the memtable.
const importBatchBytes = 4 << 20

// Import writes rels at one new revision with Touch semantics, streaming
// them into large batches. It holds the writer lock throughout (writers
// wait; readers do not), because a concurrent commit at a later revision
// would otherwise see the partial import.
//
// Crash safety: the revision is first recorded as reserved (fsynced); the
// batches then write index entries, changelog chunks 1..n (the changelog
// doubles as the undo list) and audit chunks 1..n; the last batch writes
// changelog and audit chunk 0 (the headers), the new head, and clears the
// reservation. Until that batch commits no reader can see revision rev.
// A failed import, or Open after a crash, deletes every entry listed in
// the chunks of the reserved revision and the revision's audit chunks, so
// the revision can be reused without stale data.
//
// The commit time (of the change set and the audit entry) is taken when
// the import starts, because the audit entry's hash covers its header,
// which comes before its streamed changes; no other commit can come
// between, as the import holds the writer lock.
func (s *Store) Import(ctx context.Context, meta store.WriteMeta, rels iter.Seq2[tuple.Relationship, error]) (store.Revision, int, error) {
	if err := s.acquire(); err != nil {
		return 0, 0, err
	}
	defer s.release()
	observed := 0
	rev, n, err := s.importLocked(ctx, meta, store.ObservedImport(rels, &observed))
	if err != nil {
		return 0, 0, err
	}
	if err := s.publish(rev); err != nil {
		return 0, 0, err
	}
	s.stats.Observe(observed)
	return rev, n, nil
}

func (s *Store) importLocked(ctx context.Context, meta store.WriteMeta, rels iter.Seq2[tuple.Relationship, error]) (_ store.Revision, _ int, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Nothing is visible before the final batch, which publish syncs: a
	// failed commit here leaves the reservation for the next Open to roll
	// back (fault.go).
	defer s.catchFatal(&err, store.ErrUnavailable)
	if err := s.writable(); err != nil {
		return 0, 0, err
	}
	rev := store.Revision(s.applied.Load()) + 1
	if err := s.db.Set(keyReserved, revBytes(rev), pebble.Sync); err != nil {
		return 0, 0, fmt.Errorf("pebblestore: reserve revision %d: %w", rev, err)
	}
	n, err := s.importAt(ctx, rev, meta, rels, s.opts.importBatch)
	if err != nil {
		if rerr := s.rollbackImport(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return 0, 0, err
	}
	return rev, n, nil
}

// importAt writes the import, committing a batch whenever it holds
// batchBytes (tests make it small).
func (s *Store) importAt(ctx context.Context, rev store.Revision, meta store.WriteMeta, rels iter.Seq2[tuple.Relationship, error], batchBytes int) (int, error) {
	b := s.db.NewBatchWithSize(batchBytes + 1<<20)
	defer func() { b.Close() }()
	var (
		key, val []byte
		xkey     []byte      // expiry index key
		chunk    []byte      // encoded changes of the current chunk
		inChunk  int         // changes in chunk
		seq      = uint32(1) // chunk 0 is the header, written last
		n        int
	)
	now := s.opts.Now().UTC()
	if now.Before(s.lastCommit) {
		now = s.lastCommit
	}
	audit := newAuditStream(s.auditHead, auditMeta(rev, now, meta, nil))
	flushChunk := func() error {
		if inChunk == 0 {
			return nil
		}
		v := binary.AppendUvarint([]byte{changelogVersion1}, uint64(inChunk))
		v = append(v, chunk...)
		if err := b.Set(changelogKey(rev, seq), v, nil); err != nil {
			return fmt.Errorf("pebblestore: batch: %w", err)
		}
		seq++
		chunk, inChunk = chunk[:0], 0
		return nil
	}
	for r, err := range rels {
		if err != nil {
			return n, fmt.Errorf("pebblestore: import: %w", err)
		}
		if err := r.Validate(); err != nil {
			return n, fmt.Errorf("pebblestore: import relationship %d: %w", n, err)
		}
		k := r.Key()
		val = appendValue(val[:0], r)
		key = forwardTupleKey(key[:0], k)
		// The change, encoded as appendChanges does, from the same bytes.
		chunk = append(chunk, byte(store.OpTouch))
		chunk = appendBytes(chunk, key)
		chunk = appendBytes(chunk, val)
		inChunk++
		audit.add(store.Change{Op: store.OpTouch, Relationship: r})
		key = appendRev(key, rev)
		_ = b.Set(key, val, nil)
		if !r.Expiration.IsZero() {
			xkey = expiryKey(xkey[:0], r.Expiration, key)
			_ = b.Set(xkey, nil, nil)
		}
		key = appendRev(reverseTupleKey(key[:0], k), rev)
		_ = b.Set(key, val, nil)
		n++
		if inChunk == maxChunkChanges {
			if err := flushChunk(); err != nil {
				return n, err
			}
			if len(audit.chunk) >= auditChunkBytes {
				if err := audit.flush(b); err != nil {
					return n, err
				}
			}
			// Batches end at chunk boundaries, so every committed index
			// entry is listed in a committed chunk (the undo list).
			if b.Len() >= batchBytes {
				if err := ctx.Err(); err != nil {
					return n, err
				}
				if err := b.Commit(pebble.NoSync); err != nil {
					return n, fmt.Errorf("pebblestore: import commit: %w", err)
				}
				b.Reset()
			}
		}
	}
	if err := flushChunk(); err != nil {
		return n, err
	}
	if err := ctx.Err(); err != nil {
		return n, err
	}
	auditHash, err := audit.finish(b)
	if err != nil {
		return n, err
	}
	hdr := appendChanges(appendChangeHeader(nil, changeHeader{time: now, caller: meta.Caller}), nil)
	_ = b.Set(changelogKey(rev, 0), hdr, nil)
	_ = b.Set(keyHead, revBytes(rev), nil)
	_ = b.Delete(keyReserved, nil)
	// Import's publish syncs the log, which makes this batch and the
	// earlier ones durable: they precede the sync record.
	if err := b.Commit(pebble.NoSync); err != nil {
		return n, fmt.Errorf("pebblestore: import commit: %w", err)
	}
	s.lastCommit = now
	s.auditHead = auditHash
	s.applied.Store(uint64(rev))
	return n, nil
}

// rollbackImport removes the partial data of an import that did not
// commit: every index entry (expiry index included) listed in the changelog chunks of the reserved
// revision, the chunks, and the reservation. Reservations at or below head
// belong to imports that committed (their final batch clears the key; this
// only tidies up).
func (s *Store) rollbackImport() error {
	rev, err := s.getRev(keyReserved)
	if err != nil || rev == 0 {
		return err
	}
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	if rev > store.Revision(s.applied.Load()) {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: changelogKey(rev, 0), UpperBound: changelogKey(rev+1, 0)})
		if err != nil {
			return fmt.Errorf("pebblestore: %w", err)
		}
		var key []byte
		for ok := it.First(); ok; ok = it.Next() {
			_, seq, err := decodeChangelogKey(it.Key())
			if err != nil {
				it.Close()
				return err
			}
			val, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return fmt.Errorf("pebblestore: read changelog: %w", err)
			}
			_, changes, err := decodeChangeChunk(val, seq)
			if err != nil {
				it.Close()
				return fmt.Errorf("pebblestore: roll back import of revision %d: %w", rev, err)
			}
			for _, c := range changes {
				k := c.Relationship.Key()
				key = appendRev(forwardTupleKey(key[:0], k), rev)
				_ = b.Delete(key, nil)
				if exp := c.Relationship.Expiration; !exp.IsZero() {
					_ = b.Delete(expiryKey(nil, exp, key), nil)
				}
				key = appendRev(reverseTupleKey(key[:0], k), rev)
				_ = b.Delete(key, nil)
			}
			// Unsynced intermediate commits are safe: the chunks, and so
			// the undo list, stay until the final batch.
			if b.Len() >= importBatchBytes {
				if err := b.Commit(pebble.NoSync); err != nil {
					it.Close()
					return fmt.Errorf("pebblestore: roll back import: %w", err)
				}
				b.Reset()
			}
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("pebblestore: %w", err)
		}
		_ = b.DeleteRange(changelogKey(rev, 0), changelogKey(rev+1, 0), nil)
		_ = b.DeleteRange(auditKey(rev, 0), auditKey(rev+1, 0), nil)
		s.opts.Logger.Warn("pebblestore: rolled back an unfinished import", "revision", uint64(rev))
	}
	_ = b.Delete(keyReserved, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: roll back import: %w", err)
	}
	return nil
}
