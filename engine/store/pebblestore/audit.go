package pebblestore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"iter"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
)

// Audit log layout (format 4). An entry is stored in chunks under
// 'a' rev seq (rev big-endian uint64, seq big-endian uint32):
//
//	chunk 0     32-byte chain hash, then the first bytes of the entry's
//	            canonical encoding (store.AppendAuditEncoding)
//	chunk 1..n  the following bytes of the encoding
//
// The encoding is the concatenation of the chunks' bytes. The anchor (the
// revision and hash of the entry before the oldest one kept) is the meta
// key "mauditanchor": 8-byte revision, 32-byte hash. GC never touches 'a'
// keys; PruneAudit removes them and moves the anchor.
const auditChunkBytes = 1 << 20

var keyAuditAnchor = []byte("mauditanchor")

var _ store.AuditLog = (*Store)(nil)

// auditKey is the key of chunk seq of the audit entry of rev.
func auditKey(rev store.Revision, seq uint32) []byte {
	b := binary.BigEndian.AppendUint64([]byte{tagAudit}, uint64(rev))
	return binary.BigEndian.AppendUint32(b, seq)
}

// decodeAuditKey returns the revision and chunk number of an audit key.
func decodeAuditKey(key []byte) (store.Revision, uint32, error) {
	if len(key) != 1+8+4 || key[0] != tagAudit {
		return 0, 0, corruptKey(key, "not an audit key")
	}
	return store.Revision(binary.BigEndian.Uint64(key[1:9])), binary.BigEndian.Uint32(key[9:]), nil
}

// auditMeta builds the audit entry header of a commit.
func auditMeta(rev store.Revision, t time.Time, meta store.WriteMeta, schema *string) *store.AuditEntry {
	e := &store.AuditEntry{
		Revision: rev, Time: t, Caller: meta.Caller, RequestID: meta.RequestID, Reason: meta.Reason,
		Operation: meta.Operation, SchemaChanged: schema != nil,
	}
	if schema != nil {
		e.Schema = *schema
	}
	return e
}

// writeAudit adds the audit entry of a commit (encoding enc) to b and
// returns its hash. The caller holds wmu.
func (s *Store) writeAudit(b *pebble.Batch, rev store.Revision, enc []byte) (store.AuditHash, error) {
	h := store.ChainAuditHash(s.auditHead, enc)
	first := min(len(enc), auditChunkBytes)
	v := append(append(make([]byte, 0, len(h)+first), h[:]...), enc[:first]...)
	if err := b.Set(auditKey(rev, 0), v, nil); err != nil {
		return h, fmt.Errorf("pebblestore: batch: %w", err)
	}
	for seq, rest := uint32(1), enc[first:]; len(rest) > 0; seq++ {
		n := min(len(rest), auditChunkBytes)
		if err := b.Set(auditKey(rev, seq), rest[:n], nil); err != nil {
			return h, fmt.Errorf("pebblestore: batch: %w", err)
		}
		rest = rest[n:]
	}
	return h, nil
}

// auditStream encodes the audit entry of an import while it streams:
// chunks 1..n as the changes come, chunk 0 (hash and header) last.
type auditStream struct {
	rev    store.Revision
	header []byte
	chunk  []byte
	seq    uint32
	n      int
	h      hash.Hash
}

func newAuditStream(prev store.AuditHash, e *store.AuditEntry) *auditStream {
	a := &auditStream{rev: e.Revision, header: store.AppendAuditHeader(nil, e), seq: 1, h: sha256.New()}
	a.h.Write(prev[:])
	a.h.Write(a.header)
	return a
}

func (a *auditStream) add(c store.Change) {
	start := len(a.chunk)
	a.chunk = store.AppendAuditChange(a.chunk, c)
	a.h.Write(a.chunk[start:])
	a.n++
}

// flush writes the pending chunk to b.
func (a *auditStream) flush(b *pebble.Batch) error {
	if len(a.chunk) == 0 {
		return nil
	}
	if err := b.Set(auditKey(a.rev, a.seq), a.chunk, nil); err != nil {
		return fmt.Errorf("pebblestore: batch: %w", err)
	}
	a.seq++
	a.chunk = a.chunk[:0]
	return nil
}

// finish writes the trailer and chunk 0, and returns the entry's hash.
func (a *auditStream) finish(b *pebble.Batch) (store.AuditHash, error) {
	start := len(a.chunk)
	a.chunk = store.AppendAuditTrailer(a.chunk, a.n)
	a.h.Write(a.chunk[start:])
	var h store.AuditHash
	a.h.Sum(h[:0])
	if err := a.flush(b); err != nil {
		return h, err
	}
	v := append(append([]byte(nil), h[:]...), a.header...)
	if err := b.Set(auditKey(a.rev, 0), v, nil); err != nil {
		return h, fmt.Errorf("pebblestore: batch: %w", err)
	}
	return h, nil
}

// loadAudit reads the audit anchor and the hash of the newest entry; a
// store without an anchor (new, or written by a format before 4) starts
// its log after its head revision and is marked format 4.
func (s *Store) loadAudit() error {
	anchor, ok, err := s.readAnchor()
	if err != nil {
		return err
	}
	head := store.Revision(s.head.Load())
	if !ok {
		anchor = store.AuditAnchor{Revision: head}
		b := s.db.NewBatch()
		defer b.Close()
		_ = b.Set(keyAuditAnchor, anchorBytes(anchor), nil)
		_ = b.Set(keyFormat, binary.AppendUvarint(nil, formatVersion), nil)
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("pebblestore: start the audit log: %w", err)
		}
		if head > 0 {
			s.opts.Logger.Info("pebblestore: the audit log starts after the current head (format 4)", "revision", uint64(head))
		}
	}
	s.auditHead = anchor.Hash
	if head > anchor.Revision {
		rec, err := s.readAuditRecord(head, false)
		if err != nil {
			return err
		}
		s.auditHead = rec.Hash
	}
	return nil
}

func anchorBytes(a store.AuditAnchor) []byte {
	return append(revBytes(a.Revision), a.Hash[:]...)
}

func (s *Store) readAnchor() (store.AuditAnchor, bool, error) {
	v, closer, err := s.db.Get(keyAuditAnchor)
	if errors.Is(err, pebble.ErrNotFound) {
		return store.AuditAnchor{}, false, nil
	}
	if err != nil {
		return store.AuditAnchor{}, false, fmt.Errorf("pebblestore: read the audit anchor: %w", err)
	}
	defer closer.Close()
	var a store.AuditAnchor
	if len(v) != 8+len(a.Hash) {
		return a, false, fmt.Errorf("pebblestore: audit anchor has %d bytes: %w", len(v), store.ErrCorrupt)
	}
	a.Revision = store.Revision(binary.BigEndian.Uint64(v))
	copy(a.Hash[:], v[8:])
	return a, true, nil
}

// readAuditRecord reads the stored entry of rev: all of it, or with
// firstOnly only chunk 0 (enough for the header of most entries).
func (s *Store) readAuditRecord(rev store.Revision, firstOnly bool) (store.AuditRecord, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: auditKey(rev, 0), UpperBound: auditKey(rev+1, 0)})
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("pebblestore: %w", err)
	}
	defer it.Close()
	it.First()
	rec, _, err := readAuditAt(it, firstOnly)
	if err == nil && rec.Revision != rev {
		err = fmt.Errorf("pebblestore: the audit entry of revision %d is missing: %w", rev, store.ErrCorrupt)
	}
	return rec, err
}

// readAuditAt reads the entry whose chunk 0 the valid iterator is at and
// leaves the iterator at the next entry's first key; ok reports whether it
// still is valid.
func readAuditAt(it *pebble.Iterator, firstOnly bool) (rec store.AuditRecord, ok bool, err error) {
	if !it.Valid() {
		if err := it.Error(); err != nil {
			return rec, false, fmt.Errorf("pebblestore: read the audit log: %w", err)
		}
		return rec, false, nil
	}
	rev, seq, err := decodeAuditKey(it.Key())
	if err != nil {
		return rec, false, err
	}
	if seq != 0 {
		return rec, false, fmt.Errorf("pebblestore: audit entry of revision %d has no chunk 0: %w", rev, store.ErrCorrupt)
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return rec, false, fmt.Errorf("pebblestore: read the audit log: %w", err)
	}
	if len(v) < len(rec.Hash) {
		return rec, false, fmt.Errorf("pebblestore: audit entry of revision %d: chunk 0 too short: %w", rev, store.ErrCorrupt)
	}
	rec.Revision = rev
	copy(rec.Hash[:], v)
	rec.Encoding = append([]byte(nil), v[len(rec.Hash):]...)
	for ok = it.Next(); ok; ok = it.Next() {
		r, seq, err := decodeAuditKey(it.Key())
		if err != nil {
			return rec, false, err
		}
		if r != rev {
			return rec, true, nil
		}
		if firstOnly {
			continue
		}
		if seq == 0 {
			return rec, false, fmt.Errorf("pebblestore: audit entry of revision %d: chunks out of order: %w", rev, store.ErrCorrupt)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return rec, false, fmt.Errorf("pebblestore: read the audit log: %w", err)
		}
		rec.Encoding = append(rec.Encoding, v...)
	}
	if err := it.Error(); err != nil {
		return rec, false, fmt.Errorf("pebblestore: read the audit log: %w", err)
	}
	return rec, false, nil
}

// auditTime returns the commit time of the entry of rev, from its header.
func (s *Store) auditTime(rev store.Revision) (time.Time, error) {
	rec, err := s.readAuditRecord(rev, true)
	if err != nil {
		return time.Time{}, err
	}
	h, err := store.DecodeAuditHeader(rec.Encoding)
	if err != nil {
		if rec, err = s.readAuditRecord(rev, false); err != nil {
			return time.Time{}, err
		}
		if h, err = store.DecodeAuditHeader(rec.Encoding); err != nil {
			return time.Time{}, fmt.Errorf("pebblestore: audit entry of revision %d: %w", rev, err)
		}
	}
	return h.Time, nil
}

// auditBounds returns the committed range of the log: the anchor and the
// head revision.
func (s *Store) auditBounds() (store.AuditAnchor, store.Revision, error) {
	anchor, _, err := s.readAnchor()
	return anchor, store.Revision(s.head.Load()), err
}

// AuditEntries yields the committed entries matching f in revision order.
// Commit times never go backwards, so Since is found by binary search and
// Until ends the scan; the other conditions are checked entry by entry,
// the caller on the header before the changes are decoded.
func (s *Store) AuditEntries(ctx context.Context, f store.AuditFilter) iter.Seq2[store.AuditEntry, error] {
	return func(yield func(store.AuditEntry, error) bool) {
		if err := s.acquire(); err != nil {
			yield(store.AuditEntry{}, err)
			return
		}
		defer s.release()
		anchor, head, err := s.auditBounds()
		if err != nil {
			yield(store.AuditEntry{}, err)
			return
		}
		from := max(f.After, anchor.Revision) + 1
		if !f.Since.IsZero() && from <= head {
			var serr error
			n := sort.Search(int(head-from+1), func(i int) bool {
				t, err := s.auditTime(from + store.Revision(i))
				if err != nil {
					serr = err
					return true
				}
				return !t.Before(f.Since)
			})
			if serr != nil {
				yield(store.AuditEntry{}, serr)
				return
			}
			from += store.Revision(n)
		}
		if from > head {
			return
		}
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: auditKey(from, 0), UpperBound: auditKey(head+1, 0)})
		if err != nil {
			yield(store.AuditEntry{}, fmt.Errorf("pebblestore: %w", err))
			return
		}
		defer it.Close()
		n := 0
		for ok := it.First(); ok; {
			if err := ctx.Err(); err != nil {
				yield(store.AuditEntry{}, err)
				return
			}
			var rec store.AuditRecord
			rec, ok, err = readAuditAt(it, false)
			if err != nil {
				yield(store.AuditEntry{}, err)
				return
			}
			e, err := store.DecodeAuditEntry(rec.Encoding)
			if err != nil {
				yield(store.AuditEntry{}, fmt.Errorf("pebblestore: audit entry of revision %d: %w", rec.Revision, err))
				return
			}
			if !f.Until.IsZero() && !e.Time.Before(f.Until) {
				return
			}
			e.Hash = rec.Hash
			if !f.Take(e, &n, yield) {
				return
			}
		}
	}
}

// AuditChain returns the anchor, the head and the stored records.
func (s *Store) AuditChain(ctx context.Context) (store.AuditAnchor, store.Revision, iter.Seq2[store.AuditRecord, error], error) {
	if err := s.acquire(); err != nil {
		return store.AuditAnchor{}, 0, nil, err
	}
	anchor, head, err := s.auditBounds()
	s.release()
	if err != nil {
		return store.AuditAnchor{}, 0, nil, err
	}
	seq := func(yield func(store.AuditRecord, error) bool) {
		if err := s.acquire(); err != nil {
			yield(store.AuditRecord{}, err)
			return
		}
		defer s.release()
		// Every stored entry up to head, those below the anchor too: an
		// entry left there is reported as out of order.
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagAudit}, UpperBound: auditKey(head+1, 0)})
		if err != nil {
			yield(store.AuditRecord{}, fmt.Errorf("pebblestore: %w", err))
			return
		}
		defer it.Close()
		for ok := it.First(); ok; {
			if err := ctx.Err(); err != nil {
				yield(store.AuditRecord{}, err)
				return
			}
			var rec store.AuditRecord
			rec, ok, err = readAuditAt(it, false)
			if err != nil {
				yield(store.AuditRecord{}, err)
				return
			}
			if !yield(rec, nil) {
				return
			}
		}
	}
	return anchor, head, seq, nil
}

// PruneAudit removes the entries committed before cutoff, except the
// newest, and moves the anchor to the last one removed, in one batch.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time) (_ int, err error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	// Writers extend the chain from its newest entry, which is never
	// pruned, so pruning needs no writer lock; gcMu keeps two prunes
	// (or a prune and GC's own) apart.
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	defer s.catchFatal(&err, store.ErrUnavailable)
	if err := s.writable(); err != nil {
		return 0, err
	}
	return s.pruneAudit(cutoff)
}

// pruneAudit is PruneAudit under acquire and gcMu.
func (s *Store) pruneAudit(cutoff time.Time) (int, error) {
	anchor, head, err := s.auditBounds()
	if err != nil {
		return 0, err
	}
	if head <= anchor.Revision+1 {
		return 0, nil
	}
	// The entries in (anchor, last] go: last is the newest one before
	// cutoff, and below head.
	lo := anchor.Revision + 1
	var serr error
	n := sort.Search(int(head-lo), func(i int) bool {
		t, err := s.auditTime(lo + store.Revision(i))
		if err != nil {
			serr = err
			return true
		}
		return !t.Before(cutoff)
	})
	if serr != nil || n == 0 {
		return 0, serr
	}
	last := lo + store.Revision(n) - 1
	rec, err := s.readAuditRecord(last, true)
	if err != nil {
		return 0, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange([]byte{tagAudit}, auditKey(last+1, 0), nil)
	_ = b.Set(keyAuditAnchor, anchorBytes(store.AuditAnchor{Revision: last, Hash: rec.Hash}), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("pebblestore: prune the audit log: %w", err)
	}
	return n, nil
}

// TamperAudit replaces the stored encoding of the audit entry of rev with
// edit's result, keeping its stored hash, as anyone with write access to
// the data directory could. It exists for tests that check that
// VerifyAudit (and `pemba audit verify`) names the edited entry; nothing
// else calls it.
func (s *Store) TamperAudit(rev store.Revision, edit func(enc []byte) []byte) error {
	rec, err := s.readAuditRecord(rev, false)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(auditKey(rev, 0), auditKey(rev+1, 0), nil); err != nil {
		return fmt.Errorf("pebblestore: batch: %w", err)
	}
	if err := b.Set(auditKey(rev, 0), append(rec.Hash[:], edit(rec.Encoding)...), nil); err != nil {
		return fmt.Errorf("pebblestore: batch: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: commit: %w", err)
	}
	return nil
}
