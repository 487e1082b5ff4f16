package pebblestore

import (
	"bytes"
	"context"
	"fmt"
	"iter"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/internal/txbuf"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// maxChunkChanges bounds the changes in one changelog chunk.
const maxChunkChanges = 1024

// Update runs fn in a write transaction and commits it at the next
// revision: index entries, changelog, audit entry, schema and the new head
// go into one Pebble batch. The batch is applied under the writer lock; the fsync
// happens after the lock is released and is shared by every writer
// waiting for one (group commit), so concurrent writers do not queue
// behind each other's fsyncs. Update returns, and readers see the
// revision, only once it is durable (unless Options.NoSync). A failed fn,
// a failed commit or a canceled ctx consumes no revision.
func (s *Store) Update(ctx context.Context, meta store.WriteMeta, fn func(ctx context.Context, tx store.Tx) error) (store.Revision, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	rev, err := s.apply(ctx, meta, fn)
	if err != nil {
		return 0, err
	}
	if err := s.publish(rev); err != nil {
		return 0, err
	}
	return rev, nil
}

// apply runs the transaction and writes it to Pebble under the writer lock.
func (s *Store) apply(ctx context.Context, meta store.WriteMeta, fn func(ctx context.Context, tx store.Tx) error) (_ store.Revision, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// A failed batch commit wrote nothing (fault.go).
	defer s.catchFatal(&err, store.ErrUnavailable)
	if err := s.writable(); err != nil {
		return 0, err
	}
	head := store.Revision(s.applied.Load())
	t := &tx{s: s, head: head, buf: txbuf.New(txbuf.Config[store.Change]{
		Prefix: "pebblestore", MaxOps: s.opts.MaxBatchOps, Done: store.ErrTxDone, View: viewChange,
	})}
	if err := t.buf.Finish(ctx, fn(ctx, t)); err != nil {
		return 0, err
	}
	rev := head + 1
	if err := s.commit(rev, meta, t.buf.Changes(), t.buf.Schema()); err != nil {
		return 0, err
	}
	return rev, nil
}

// commit writes one transaction at rev in one batch, without waiting for
// fsync; publish makes it durable and visible. The caller holds wmu.
func (s *Store) commit(rev store.Revision, meta store.WriteMeta, changes []store.Change, schema *string) error {
	b := s.db.NewBatch()
	defer b.Close()
	var key, val, xkey []byte
	for _, c := range changes {
		k := c.Relationship.Key()
		if c.Op == store.OpDelete {
			val = append(val[:0], tombstoneValue...)
		} else {
			val = appendValue(val[:0], c.Relationship)
		}
		key = appendRev(forwardTupleKey(key[:0], k), rev)
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("pebblestore: batch: %w", err)
		}
		if c.Op != store.OpDelete && !c.Relationship.Expiration.IsZero() {
			xkey = expiryKey(xkey[:0], c.Relationship.Expiration, key)
			if err := b.Set(xkey, nil, nil); err != nil {
				return fmt.Errorf("pebblestore: batch: %w", err)
			}
		}
		key = appendRev(reverseTupleKey(key[:0], k), rev)
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("pebblestore: batch: %w", err)
		}
	}
	if schema != nil {
		if err := b.Set(schemaKey(rev), []byte(*schema), nil); err != nil {
			return fmt.Errorf("pebblestore: batch: %w", err)
		}
	}
	now := s.opts.Now().UTC()
	if now.Before(s.lastCommit) {
		now = s.lastCommit
	}
	hdr := changeHeader{time: now, caller: meta.Caller, schemaChanged: schema != nil}
	if err := writeChangelog(b, rev, hdr, changes); err != nil {
		return err
	}
	e := auditMeta(rev, now, meta, schema)
	e.Changes = changes
	auditHash, err := s.writeAudit(b, rev, store.AppendAuditEncoding(nil, e))
	if err != nil {
		return err
	}
	if err := b.Set(keyHead, revBytes(rev), nil); err != nil {
		return fmt.Errorf("pebblestore: batch: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: commit revision %d: %w", rev, err)
	}
	s.lastCommit = now
	s.auditHead = auditHash
	s.applied.Store(uint64(rev))
	return nil
}

// publish waits until revision rev is durable, fsyncing the write-ahead
// log if no other writer has yet done so for it, then makes it (and every
// revision before it) visible to readers and wakes watchers.
func (s *Store) publish(rev store.Revision) error {
	if !s.opts.NoSync {
		durable, err := s.sync(rev)
		if err != nil {
			return err
		}
		rev = max(rev, durable)
	}
	for {
		h := s.head.Load()
		if h >= uint64(rev) || s.head.CompareAndSwap(h, uint64(rev)) {
			break
		}
	}
	s.wake()
	return nil
}

// sync makes every revision up to rev durable, fsyncing the write-ahead
// log unless another writer already has, and returns the newest durable
// revision. A failed fsync leaves rev applied but perhaps not on disk: its
// outcome is unknown (store.ErrCommitUnknown), as is that of every applied
// revision after a failure (fault.go).
func (s *Store) sync(rev store.Revision) (_ store.Revision, err error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	defer s.catchFatal(&err, store.ErrCommitUnknown)
	if d := store.Revision(s.durable.Load()); d >= rev {
		return d, nil
	}
	if f := s.failure(); f != nil {
		return 0, fmt.Errorf("pebblestore: revision %d: %w: the store failed before it was synced: %v", rev, store.ErrCommitUnknown, f)
	}
	// Everything applied so far precedes the sync record in the log, so
	// one fsync makes all of it durable.
	target := s.applied.Load()
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return 0, fmt.Errorf("pebblestore: sync revision %d: %w: %v", rev, store.ErrCommitUnknown, err)
	}
	s.durable.Store(target)
	return store.Revision(target), nil
}

// writeChangelog adds the change set of rev to b in chunks.
func writeChangelog(b *pebble.Batch, rev store.Revision, hdr changeHeader, changes []store.Change) error {
	seq := uint32(0)
	for {
		n := min(len(changes), maxChunkChanges)
		var v []byte
		if seq == 0 {
			v = appendChangeHeader(nil, hdr)
		} else {
			v = []byte{changelogVersion1}
		}
		v = appendChanges(v, changes[:n])
		if err := b.Set(changelogKey(rev, seq), v, nil); err != nil {
			return fmt.Errorf("pebblestore: batch: %w", err)
		}
		changes = changes[n:]
		seq++
		if len(changes) == 0 {
			return nil
		}
	}
}

// tx is a write transaction. Its writes are buffered in buf (one change
// per key, the last write wins) and committed by Update.
type tx struct {
	s    *Store
	head store.Revision
	buf  *txbuf.Buffer[store.Change]
}

// viewChange describes a change to txbuf.
func viewChange(c store.Change) (store.Op, tuple.Key, tuple.Relationship) {
	return c.Op, c.Relationship.Key(), c.Relationship
}

// fail makes err sticky: any failed operation aborts the transaction,
// even if fn ignores the error.
func (t *tx) fail(err error) error { return t.buf.Fail(err) }

func (t *tx) record(c store.Change) { t.buf.Record(c.Relationship.Key(), c) }

// prev reads the state at head, the revision this transaction builds on.
func (t *tx) prev() *reader { return &reader{s: t.s, rev: t.head} }

func (t *tx) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if err := t.buf.Check(); err != nil {
		return func(yield func(tuple.Relationship, error) bool) { yield(tuple.Relationship{}, err) }
	}
	return t.prev().QueryRelationships(ctx, f, opts)
}

// ReverseQueryRelationships implements store.ReverseTx.
func (t *tx) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if err := t.buf.Check(); err != nil {
		return func(yield func(tuple.Relationship, error) bool) { yield(tuple.Relationship{}, err) }
	}
	return t.prev().ReverseQueryRelationships(ctx, f, opts)
}

func (t *tx) Touch(ctx context.Context, r tuple.Relationship) error { return t.fail(t.touch(ctx, r)) }

func (t *tx) touch(ctx context.Context, r tuple.Relationship) error {
	if err := t.buf.Check(); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("pebblestore: touch: %w", err)
	}
	if err := t.buf.Count(); err != nil {
		return err
	}
	t.record(store.Change{Op: store.OpTouch, Relationship: r})
	return nil
}

func (t *tx) Create(ctx context.Context, r tuple.Relationship) error { return t.fail(t.create(ctx, r)) }

func (t *tx) create(ctx context.Context, r tuple.Relationship) error {
	if err := t.buf.Check(); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("pebblestore: create: %w", err)
	}
	if err := t.buf.Count(); err != nil {
		return err
	}
	k := r.Key()
	exists, err := t.buf.Exists(ctx, t.prev(), k, t.s.opts.Now)
	if err != nil {
		return err
	}
	if exists {
		return &store.AlreadyExistsError{Key: k}
	}
	t.record(store.Change{Op: store.OpCreate, Relationship: r})
	return nil
}

func (t *tx) Delete(ctx context.Context, k tuple.Key) error { return t.fail(t.deleteKey(ctx, k)) }

func (t *tx) deleteKey(ctx context.Context, k tuple.Key) error {
	if err := t.buf.Check(); err != nil {
		return err
	}
	if err := (tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}).Validate(); err != nil {
		return fmt.Errorf("pebblestore: delete: %w", err)
	}
	if err := t.buf.Count(); err != nil {
		return err
	}
	return t.delete(ctx, k)
}

// delete records the deletion of k if it exists at head or is pending.
func (t *tx) delete(ctx context.Context, k tuple.Key) error {
	del := store.Change{Op: store.OpDelete, Relationship: tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}}
	if _, ok := t.buf.Pending(k); ok {
		t.buf.Record(k, del)
		return nil
	}
	_, found, err := txbuf.Get(ctx, t.prev(), k)
	if err != nil || !found {
		return err
	}
	t.buf.Record(k, del)
	return nil
}

func (t *tx) DeleteMatching(ctx context.Context, f tuple.Filter, limit int) (int, error) {
	n, err := t.deleteMatching(ctx, f, limit)
	return n, t.fail(err)
}

func (t *tx) deleteMatching(ctx context.Context, f tuple.Filter, limit int) (int, error) {
	if err := t.buf.Check(); err != nil {
		return 0, err
	}
	// Candidates: matches at head not already deleted in this transaction,
	// and this transaction's own live writes that match. With a limit,
	// the first ones in forward index order go, as in memstore.
	keys, err := t.buf.Matching(ctx, t.prev(), f, limit, func(a, b tuple.Key) int {
		return bytes.Compare(forwardTupleKey(nil, a), forwardTupleKey(nil, b))
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := t.delete(ctx, k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

func (t *tx) WriteSchema(ctx context.Context, text string) error { return t.buf.WriteSchema(text) }
