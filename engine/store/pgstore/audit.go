package pgstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// The audit log (schema version 3): one row per revision in pemba_audit,
// written by the transaction that commits the revision. entry holds the
// canonical encoding (store.AppendAuditEncoding), hash its chain hash;
// committed_ns and caller repeat the entry's for indexed queries, and
// VerifyAudit only trusts entry and hash. The hash of the newest entry is
// kept in pemba_revision.audit_hash, read and written under the revision
// counter's row lock, so no writer ever reads the log to extend it.
// pemba_audit_anchor holds the revision and hash before the oldest row.

var _ store.AuditLog = (*Store)(nil)

// auditBody collects the encoded changes of an audit entry.
type auditBody struct {
	changes []byte
	n       int
}

func (a *auditBody) add(c store.Change) {
	a.changes = store.AppendAuditChange(a.changes, c)
	a.n++
}

// auditHashOf converts a stored hash.
func auditHashOf(b []byte) (store.AuditHash, error) {
	var h store.AuditHash
	if len(b) != len(h) {
		return h, fmt.Errorf("pgstore: audit hash of %d bytes: %w", len(b), store.ErrCorrupt)
	}
	copy(h[:], b)
	return h, nil
}

// liveKeys returns which of keys have a live version (expired or not) at
// the transaction's previous revision, read on conn inside the
// transaction.
const liveKeys = `SELECT r.resource_type, r.resource_id, r.relation, r.subject_type, r.subject_id, r.subject_relation
FROM pemba_relationships r
JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS k(rt, ri, rel, st, si, sr)
	ON r.resource_type = k.rt AND r.resource_id = k.ri AND r.relation = k.rel
	AND r.subject_type = k.st AND r.subject_id = k.si AND r.subject_relation = k.sr
	AND r.deleted_rev = 9223372036854775807`

// auditChanges returns the audit encoding of what changes will change: a
// delete of a key with no live version changes nothing and is left out,
// as it leaves no change in the revision's change set. Finding those
// costs one round trip, only for a transaction that deletes.
func (s *Store) auditChanges(ctx context.Context, conn *pgxpool.Conn, changes []change) (auditBody, error) {
	var body auditBody
	var dels keyArrays
	for _, c := range changes {
		if c.op == store.OpDelete {
			dels.add(c.key)
		}
	}
	live := map[tuple.Key]bool{}
	if len(dels.rt) > 0 {
		rows, err := conn.Query(ctx, liveKeys, dels.rt, dels.ri, dels.rel, dels.st, dels.si, dels.sr)
		if err != nil {
			return body, err
		}
		var k tuple.Key
		_, err = pgx.ForEachRow(rows, []any{&k.Resource.Type, &k.Resource.ID, &k.Relation, &k.Subject.Type, &k.Subject.ID, &k.Subject.Relation}, func() error {
			live[k] = true
			return nil
		})
		if err != nil {
			return body, err
		}
	}
	for _, c := range changes {
		if c.op == store.OpDelete && !live[c.key] {
			continue
		}
		body.changes = append(body.changes, c.audit...)
		body.n++
	}
	return body, nil
}

// queueAudit adds the audit row of revision rev to b and returns its hash,
// the new head of the chain (queueCommit stores it in pemba_revision).
func queueAudit(b *pgx.Batch, rev store.Revision, t time.Time, prev store.AuditHash, meta store.WriteMeta, schema *string, body auditBody) store.AuditHash {
	e := &store.AuditEntry{
		Revision: rev, Time: t, Caller: meta.Caller, RequestID: meta.RequestID, Reason: meta.Reason,
		Operation: meta.Operation, SchemaChanged: schema != nil,
	}
	if schema != nil {
		e.Schema = *schema
	}
	enc := store.AppendAuditHeader(nil, e)
	enc = append(enc, body.changes...)
	enc = store.AppendAuditTrailer(enc, body.n)
	h := store.ChainAuditHash(prev, enc)
	b.Queue(insertAudit, int64(rev), t.UnixNano(), meta.Caller, enc, h[:])
	return h
}

// readAnchor reads the audit anchor and the committed head in one
// snapshot.
func (s *Store) auditBounds(ctx context.Context) (store.AuditAnchor, store.Revision, error) {
	var (
		a    store.AuditAnchor
		rev  int64
		hash []byte
		head int64
	)
	err := s.pool.QueryRow(ctx, auditBoundsQuery).Scan(&rev, &hash, &head)
	if err != nil {
		return a, 0, s.wrap(ctx, "read the audit anchor", err)
	}
	a.Revision = store.Revision(rev)
	if a.Hash, err = auditHashOf(hash); err != nil {
		return a, 0, err
	}
	return a, store.Revision(head), nil
}

// auditPage is how many rows one audit query reads: the LIMIT of
// auditEntriesQuery and auditChainQuery.
const auditPage = 256

// The audit log's statements. insertAudit appends revision $1's entry;
// auditBoundsQuery reads the anchor and the head in one snapshot;
// auditEntriesQuery and auditChainQuery read a page after revision $1 up
// to $2 (the first filtered by commit time [$3, $4) and caller $5);
// lockAuditAnchor, lastPrunable (the newest entry after anchor $1 older
// than $2, never the newest of all), deleteAudit and moveAuditAnchor
// prune.
const (
	insertAudit       = `INSERT INTO pemba_audit (revision, committed_ns, caller, entry, hash) VALUES ($1, $2, $3, $4, $5)`
	auditBoundsQuery  = `SELECT a.revision, a.hash, r.head FROM pemba_audit_anchor a, pemba_revision r`
	auditEntriesQuery = `SELECT revision, entry, hash FROM pemba_audit
WHERE revision > $1 AND revision <= $2 AND committed_ns >= $3 AND committed_ns < $4
	AND ($5 = '' OR caller = $5)
ORDER BY revision LIMIT 256`
	auditChainQuery = `SELECT revision, entry, hash FROM pemba_audit
WHERE revision > $1 AND revision <= $2 ORDER BY revision LIMIT 256`
	lockAuditAnchor = `SELECT revision FROM pemba_audit_anchor FOR UPDATE`
	lastPrunable    = `SELECT revision, hash FROM pemba_audit
WHERE revision > $1 AND committed_ns < $2 AND revision < (SELECT max(revision) FROM pemba_audit)
ORDER BY revision DESC LIMIT 1`
	deleteAudit     = `DELETE FROM pemba_audit WHERE revision <= $1`
	moveAuditAnchor = `UPDATE pemba_audit_anchor SET revision = $1, hash = $2`
)

// AuditEntries yields the committed entries matching f in revision order.
// Time and caller are conditions of the query (indexed); the changes are
// matched after decoding, a page of rows at a time.
func (s *Store) AuditEntries(ctx context.Context, f store.AuditFilter) iter.Seq2[store.AuditEntry, error] {
	return func(yield func(store.AuditEntry, error) bool) {
		if err := s.checkOpen(); err != nil {
			yield(store.AuditEntry{}, err)
			return
		}
		anchor, head, err := s.auditBounds(ctx)
		if err != nil {
			yield(store.AuditEntry{}, err)
			return
		}
		after := max(f.After, anchor.Revision)
		since, until := int64(-1<<63), int64(1<<63-1)
		if !f.Since.IsZero() {
			since = f.Since.UnixNano()
		}
		if !f.Until.IsZero() {
			until = f.Until.UnixNano()
		}
		n := 0
		for {
			rows, err := s.pool.Query(ctx, auditEntriesQuery, int64(after), int64(head), since, until, f.Caller)
			if err != nil {
				yield(store.AuditEntry{}, s.wrap(ctx, "read the audit log", err))
				return
			}
			type raw struct {
				rev       int64
				enc, hash []byte
			}
			page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (raw, error) {
				var x raw
				err := r.Scan(&x.rev, &x.enc, &x.hash)
				return x, err
			})
			if err != nil {
				yield(store.AuditEntry{}, s.wrap(ctx, "read the audit log", err))
				return
			}
			for _, x := range page {
				after = store.Revision(x.rev)
				e, err := store.DecodeAuditEntry(x.enc)
				if err == nil {
					e.Hash, err = auditHashOf(x.hash)
				}
				if err != nil {
					yield(store.AuditEntry{}, fmt.Errorf("pgstore: audit entry of revision %d: %w", x.rev, err))
					return
				}
				// The indexed columns are copies: the entry decides.
				if !f.Take(e, &n, yield) {
					return
				}
			}
			if len(page) < auditPage {
				return
			}
		}
	}
}

// AuditChain returns the anchor, the head and the stored rows up to it.
func (s *Store) AuditChain(ctx context.Context) (store.AuditAnchor, store.Revision, iter.Seq2[store.AuditRecord, error], error) {
	if err := s.checkOpen(); err != nil {
		return store.AuditAnchor{}, 0, nil, err
	}
	anchor, head, err := s.auditBounds(ctx)
	if err != nil {
		return store.AuditAnchor{}, 0, nil, err
	}
	seq := func(yield func(store.AuditRecord, error) bool) {
		after := int64(-1)
		for {
			rows, err := s.pool.Query(ctx, auditChainQuery, after, int64(head))
			if err != nil {
				yield(store.AuditRecord{}, s.wrap(ctx, "read the audit log", err))
				return
			}
			var page []store.AuditRecord
			var (
				rev       int64
				enc, hash []byte
			)
			_, err = pgx.ForEachRow(rows, []any{&rev, &enc, &hash}, func() error {
				rec := store.AuditRecord{Revision: store.Revision(rev), Encoding: append([]byte(nil), enc...)}
				// A hash of the wrong length is a mismatch, not a failure.
				copy(rec.Hash[:], hash)
				page = append(page, rec)
				after = rev
				return nil
			})
			if err != nil {
				yield(store.AuditRecord{}, s.wrap(ctx, "read the audit log", err))
				return
			}
			for _, rec := range page {
				if !yield(rec, nil) {
					return
				}
			}
			if len(page) < auditPage {
				return
			}
		}
	}
	return anchor, head, seq, nil
}

// PruneAudit removes the entries committed before cutoff, except the
// newest, and moves the anchor to the last one removed, in one
// transaction.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time) (int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	return s.pruneAudit(ctx, cutoff)
}

// pruneAudit is PruneAudit under gcMu. Several processes may prune at
// once: the anchor row's lock orders them.
func (s *Store) pruneAudit(ctx context.Context, cutoff time.Time) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, s.wrap(ctx, "prune the audit log", err)
	}
	defer tx.Rollback(context.Background())
	var anchorRev int64
	if err := tx.QueryRow(ctx, lockAuditAnchor).Scan(&anchorRev); err != nil {
		return 0, s.wrap(ctx, "prune the audit log", err)
	}
	var last *int64
	var hash []byte
	err = tx.QueryRow(ctx, lastPrunable, anchorRev, cutoff.UnixNano()).Scan(&last, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.wrap(ctx, "prune the audit log", err)
	}
	tag, err := tx.Exec(ctx, deleteAudit, *last)
	if err != nil {
		return 0, s.wrap(ctx, "prune the audit log", err)
	}
	if _, err := tx.Exec(ctx, moveAuditAnchor, *last, hash); err != nil {
		return 0, s.wrap(ctx, "prune the audit log", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, s.wrap(ctx, "prune the audit log", err)
	}
	return int(tag.RowsAffected()), nil
}
