package memstore

import (
	"context"
	"iter"
	"sort"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
)

// auditRecord is one stored audit entry: its canonical encoding (the
// source of truth, as in the persistent backends) and its chain hash.
type auditRecord struct {
	rev  store.Revision
	time time.Time
	enc  []byte
	hash store.AuditHash
}

var _ store.AuditLog = (*Store)(nil)

// appendAudit records the audit entry of a commit at rev. s.mu is held.
func (s *Store) appendAudit(rev store.Revision, t time.Time, meta store.WriteMeta, changes []store.Change, schema *string) {
	e := store.AuditEntry{
		Revision: rev, Time: t, Caller: meta.Caller, RequestID: meta.RequestID, Reason: meta.Reason,
		Operation: meta.Operation, Changes: changes, SchemaChanged: schema != nil,
	}
	if schema != nil {
		e.Schema = *schema
	}
	enc := store.AppendAuditEncoding(nil, &e)
	prev := s.auditAnchor.Hash
	if n := len(s.audit); n > 0 {
		prev = s.audit[n-1].hash
	}
	s.audit = append(s.audit, auditRecord{rev: rev, time: t, enc: enc, hash: store.ChainAuditHash(prev, enc)})
}

// AuditEntries yields the entries matching f in revision order.
func (s *Store) AuditEntries(ctx context.Context, f store.AuditFilter) iter.Seq2[store.AuditEntry, error] {
	return func(yield func(store.AuditEntry, error) bool) {
		n := 0
		next := f.After
		for {
			if err := ctx.Err(); err != nil {
				yield(store.AuditEntry{}, err)
				return
			}
			s.mu.RLock()
			if s.closed {
				s.mu.RUnlock()
				yield(store.AuditEntry{}, store.ErrClosed)
				return
			}
			i := sort.Search(len(s.audit), func(i int) bool { return s.audit[i].rev > next })
			batch := append([]auditRecord(nil), s.audit[i:min(i+64, len(s.audit))]...)
			s.mu.RUnlock()
			if len(batch) == 0 {
				return
			}
			for _, rec := range batch {
				next = rec.rev
				if !f.Until.IsZero() && !rec.time.Before(f.Until) {
					return
				}
				e, err := store.DecodeAuditEntry(rec.enc)
				if err != nil {
					yield(store.AuditEntry{}, errorf("audit entry of revision %d: %w", rec.rev, err))
					return
				}
				e.Hash = rec.hash
				if !f.Take(e, &n, yield) {
					return
				}
			}
		}
	}
}

// AuditChain returns the anchor, head and stored records.
func (s *Store) AuditChain(ctx context.Context) (store.AuditAnchor, store.Revision, iter.Seq2[store.AuditRecord, error], error) {
	if err := ctx.Err(); err != nil {
		return store.AuditAnchor{}, 0, nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.AuditAnchor{}, 0, nil, store.ErrClosed
	}
	recs := append([]auditRecord(nil), s.audit...)
	seq := func(yield func(store.AuditRecord, error) bool) {
		for _, r := range recs {
			if !yield(store.AuditRecord{Revision: r.rev, Hash: r.hash, Encoding: r.enc}, nil) {
				return
			}
		}
	}
	return s.auditAnchor, s.head, seq, nil
}

// PruneAudit removes the entries committed before cutoff but the newest.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	return s.pruneAudit(cutoff), nil
}

// pruneAudit is PruneAudit with s.mu held.
func (s *Store) pruneAudit(cutoff time.Time) int {
	n := sort.Search(len(s.audit), func(i int) bool { return !s.audit[i].time.Before(cutoff) })
	n = min(n, len(s.audit)-1)
	if n <= 0 {
		return 0
	}
	last := s.audit[n-1]
	s.auditAnchor = store.AuditAnchor{Revision: last.rev, Hash: last.hash}
	s.audit = append([]auditRecord(nil), s.audit[n:]...)
	return n
}

// TamperAudit replaces the stored encoding of the audit entry of rev, for
// tests that check that VerifyAudit notices; it reports whether there was
// such an entry.
func (s *Store) TamperAudit(rev store.Revision, enc []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.audit {
		if s.audit[i].rev == rev {
			s.audit[i].enc = enc
			return true
		}
	}
	return false
}
