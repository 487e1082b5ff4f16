package pgstore

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/internal/txbuf"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Update runs fn in a write transaction and commits it at the next
// revision.
//
// The transaction first increments the one-row revision counter; the row
// lock this takes is held until commit or rollback, so writers are
// serialised and revision N+1 cannot be allocated before N has committed:
// revisions commit in order, and a rolled-back transaction gives its
// number back. fn's reads run on the same connection at the previous
// revision; its writes are buffered. Two round trips hold the lock beyond
// fn: BEGIN and the counter update go in one pipeline, and the writes
// (close the live versions of every written key, insert the new ones, the
// changelog row, the schema, a NOTIFY) and COMMIT in another. Durability
// is PostgreSQL's: with the default synchronous_commit the commit is
// flushed before Update returns.
func (s *Store) Update(ctx context.Context, meta store.WriteMeta, fn func(ctx context.Context, tx store.Tx) error) (store.Revision, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// Writers of this process queue here rather than on the counter's
	// row lock: the database would serialise them anyway, and a queue of
	// backends waiting on one row lock costs more than a mutex.
	if err := s.lockWriter(ctx); err != nil {
		return 0, err
	}
	defer s.unlockWriter()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, s.wrap(ctx, "acquire connection", err)
	}
	defer conn.Release() // the pool closes a connection left inside a transaction
	done := false
	defer func() {
		if !done {
			// Best effort: if this fails the connection is not idle, and
			// Release closes it, which rolls back too.
			_, _ = conn.Exec(context.Background(), "ROLLBACK")
		}
	}()
	rev, last, prevHash, id, err := begin(ctx, conn)
	if err != nil {
		// COMMIT was not sent: whatever failed, nothing is written.
		return 0, s.wrap(ctx, "begin and allocate revision", err)
	}
	t := &tx{s: s, prev: &reader{s: s, q: conn, rev: rev - 1}, buf: txbuf.New(txbuf.Config[change]{
		Prefix: "pgstore", MaxOps: s.opts.MaxBatchOps, Done: store.ErrTxDone, View: viewChange,
	})}
	if err := t.buf.Finish(ctx, fn(ctx, t)); err != nil {
		return 0, err
	}
	changes := t.buf.Changes()
	audit, err := s.auditChanges(ctx, conn, changes)
	if err != nil {
		return 0, s.wrap(ctx, fmt.Sprintf("read the deleted keys of revision %d", rev), err)
	}
	b := &pgx.Batch{}
	queueChanges(b, rev, changes)
	id.audit = s.queueCommit(b, rev, last, prevHash, meta, t.buf.Schema(), audit)
	b.Queue("COMMIT")
	if s.hooks != nil && s.hooks.beforeCommit != nil {
		s.hooks.beforeCommit(ctx, id)
	}
	err = conn.SendBatch(ctx, b).Close()
	if s.hooks != nil && s.hooks.afterCommit != nil {
		err = s.hooks.afterCommit(err)
	}
	if err != nil {
		// The COMMIT may have been applied with its answer lost:
		// commitFailed asks the database.
		if rev, err = s.commitFailed(ctx, fmt.Sprintf("write and commit revision %d", rev), rev, id, err); err != nil {
			return 0, err
		}
	}
	done = true
	s.advanceHead(rev)
	s.wake()
	return rev, nil
}

// allocateSQL takes the revision counter's row lock and returns the new
// revision, the previous commit time, and the transaction's id and
// backend, for resolving a commit whose answer is lost (faults.go). The
// UPDATE assigns the transaction id anyway, so reading it costs nothing.
const allocateSQL = `UPDATE pemba_revision SET head = head + 1
RETURNING head, last_commit_ns, audit_hash, pg_current_xact_id()::text, pg_backend_pid()`

// begin opens a transaction on conn and allocates the next revision, in
// one round trip.
func begin(ctx context.Context, conn *pgxpool.Conn) (store.Revision, int64, store.AuditHash, txnID, error) {
	var (
		head, last int64
		prev       []byte
		id         txnID
	)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(allocateSQL).QueryRow(func(r pgx.Row) error { return r.Scan(&head, &last, &prev, &id.xid, &id.pid) })
	err := conn.SendBatch(ctx, b).Close()
	id.rev = store.Revision(head)
	h, herr := auditHashOf(prev)
	if err == nil {
		err = herr
	}
	return store.Revision(head), last, h, id, err
}

// allocate is begin for a pgx.Tx (Import, which needs CopyFrom).
func allocate(ctx context.Context, pg pgx.Tx) (store.Revision, int64, store.AuditHash, txnID, error) {
	var (
		head, last int64
		prev       []byte
		id         txnID
	)
	err := pg.QueryRow(ctx, allocateSQL).Scan(&head, &last, &prev, &id.xid, &id.pid)
	id.rev = store.Revision(head)
	h, herr := auditHashOf(prev)
	if err == nil {
		err = herr
	}
	return store.Revision(head), last, h, id, err
}

// queueCommit adds the changelog row, the audit entry (whose changes are
// encoded in audit), the schema, the commit time and the notification of
// revision rev to b, and returns the audit entry's hash. Commit times
// never go backwards.
func (s *Store) queueCommit(b *pgx.Batch, rev store.Revision, last int64, prev store.AuditHash, meta store.WriteMeta, schema *string, audit auditBody) store.AuditHash {
	now := s.opts.Now().UnixNano()
	if now < last {
		now = last
	}
	b.Queue(insertChangelog, int64(rev), now, meta.Caller, schema != nil)
	h := queueAudit(b, rev, time.Unix(0, now).UTC(), prev, meta, schema, audit)
	if schema != nil {
		b.Queue(insertSchema, int64(rev), *schema)
	}
	b.Queue(updateCommitted, now, h[:])
	// Delivered at commit; it only wakes watchers of other processes.
	b.Queue(notifySQL, strconv.FormatUint(uint64(rev), 10))
	return h
}

// The statements of a commit after the relationships' (queueCommit).
const (
	insertChangelog = `INSERT INTO pemba_changelog (revision, committed_ns, caller, schema_changed) VALUES ($1, $2, $3, $4)`
	insertSchema    = `INSERT INTO pemba_schemas (revision, text) VALUES ($1, $2)`
	updateCommitted = `UPDATE pemba_revision SET last_commit_ns = $1, audit_hash = $2`
	notifySQL       = `SELECT pg_notify('` + notifyChannel + `', $1)`
)

// keyArrays holds keys column-wise, for unnest.
type keyArrays struct {
	rt, ri, rel, st, si, sr []string
}

func (a *keyArrays) add(k tuple.Key) {
	a.rt = append(a.rt, k.Resource.Type)
	a.ri = append(a.ri, k.Resource.ID)
	a.rel = append(a.rel, k.Relation)
	a.st = append(a.st, k.Subject.Type)
	a.si = append(a.si, k.Subject.ID)
	a.sr = append(a.sr, k.Subject.Relation)
}

// closeLive ends the live version of each listed key at revision $1.
const closeLive = `UPDATE pemba_relationships r SET deleted_rev = $1
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS k(rt, ri, rel, st, si, sr)
WHERE r.resource_type = k.rt AND r.resource_id = k.ri AND r.relation = k.rel
	AND r.subject_type = k.st AND r.subject_id = k.si AND r.subject_relation = k.sr
	AND r.deleted_rev = 9223372036854775807`

// insertVersions inserts new live versions created at revision $1.
const insertVersions = `INSERT INTO pemba_relationships (resource_type, resource_id, relation, subject_type, subject_id,
	subject_relation, created_rev, created_op, caveat_name, caveat_context, expires_ns)
SELECT rt, ri, rel, st, si, sr, $1, op, cn, cc::json, ex
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int2[], $9::text[], $10::text[], $11::int8[])
	AS k(rt, ri, rel, st, si, sr, op, cn, cc, ex)`

// queueChanges adds the statements that apply changes (one per key) at
// rev to b: two statements however many changes there are.
func queueChanges(b *pgx.Batch, rev store.Revision, changes []change) {
	if len(changes) == 0 {
		return
	}
	var closed, created keyArrays
	var (
		ops     []int16
		names   []pgtype.Text
		ctxs    []pgtype.Text
		expires []pgtype.Int8
	)
	for _, c := range changes {
		closed.add(c.key)
		if c.op == store.OpDelete {
			continue
		}
		created.add(c.key)
		ops = append(ops, int16(c.op))
		names = append(names, c.row.caveatName)
		ctxs = append(ctxs, c.row.caveatCtx)
		expires = append(expires, c.row.expires)
	}
	b.Queue(closeLive, int64(rev), closed.rt, closed.ri, closed.rel, closed.st, closed.si, closed.sr)
	if len(ops) > 0 {
		b.Queue(insertVersions, int64(rev), created.rt, created.ri, created.rel, created.st, created.si, created.sr,
			ops, names, ctxs, expires)
	}
}

// change is the final write of one key in a transaction.
type change struct {
	op  store.Op
	key tuple.Key
	rel tuple.Relationship // for DeleteMatching's view of pending writes
	row row
	// audit is the change's audit log encoding, made when it is
	// recorded (store.AppendAuditChange).
	audit []byte
}

// tx is a write transaction. Writes are buffered in buf, one change per
// key (the last write wins), and sent by Update.
type tx struct {
	s    *Store
	prev *reader // the previous revision, read on the transaction's connection
	buf  *txbuf.Buffer[change]
}

// viewChange describes a change to txbuf.
func viewChange(c change) (store.Op, tuple.Key, tuple.Relationship) { return c.op, c.key, c.rel }

func (t *tx) record(c change) { t.buf.Record(c.key, c) }

func (t *tx) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if err := t.buf.Check(); err != nil {
		return func(yield func(tuple.Relationship, error) bool) { yield(tuple.Relationship{}, err) }
	}
	return t.prev.QueryRelationships(ctx, f, opts)
}

// ReverseQueryRelationships implements store.ReverseTx.
func (t *tx) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if err := t.buf.Check(); err != nil {
		return func(yield func(tuple.Relationship, error) bool) { yield(tuple.Relationship{}, err) }
	}
	return t.prev.ReverseQueryRelationships(ctx, f, opts)
}

func (t *tx) Touch(ctx context.Context, r tuple.Relationship) error {
	return t.buf.Fail(t.write(ctx, store.OpTouch, r))
}

func (t *tx) Create(ctx context.Context, r tuple.Relationship) error {
	return t.buf.Fail(t.write(ctx, store.OpCreate, r))
}

func (t *tx) write(ctx context.Context, op store.Op, r tuple.Relationship) error {
	if err := t.buf.Check(); err != nil {
		return err
	}
	enc, err := encodeRelationship(r)
	if err != nil {
		return err
	}
	if err := t.buf.Count(); err != nil {
		return err
	}
	k := r.Key()
	if op == store.OpCreate {
		exists, err := t.buf.Exists(ctx, t.prev, k, t.s.opts.Now)
		if err != nil {
			return err
		}
		if exists {
			return &store.AlreadyExistsError{Key: k}
		}
	}
	// The caller's context map is encoded now, so later changes to it
	// cannot change what is stored.
	t.record(change{op: op, key: k, rel: tuple.Relationship{Resource: r.Resource, Relation: r.Relation, Subject: r.Subject}, row: enc,
		audit: store.AppendAuditChange(nil, store.Change{Op: op, Relationship: r})})
	return nil
}

func (t *tx) Delete(ctx context.Context, k tuple.Key) error {
	if err := t.buf.Check(); err != nil {
		return err
	}
	if err := (tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}).Validate(); err != nil {
		return t.buf.Fail(fmt.Errorf("pgstore: delete: %w", err))
	}
	if err := t.buf.Count(); err != nil {
		return t.buf.Fail(err)
	}
	// Deleting an absent key is recorded too: at commit it closes no
	// version and so leaves no change behind.
	t.record(deleteChange(k))
	return nil
}

// deleteChange is the change that deletes k.
func deleteChange(k tuple.Key) change {
	rel := tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}
	return change{op: store.OpDelete, key: k, audit: store.AppendAuditChange(nil, store.Change{Op: store.OpDelete, Relationship: rel})}
}

func (t *tx) DeleteMatching(ctx context.Context, f tuple.Filter, limit int) (int, error) {
	n, err := t.deleteMatching(ctx, f, limit)
	return n, t.buf.Fail(err)
}

// deleteMatching deletes matches at the previous revision that this
// transaction has not deleted, and its own live writes that match; with a
// limit, the first ones in forward index order.
func (t *tx) deleteMatching(ctx context.Context, f tuple.Filter, limit int) (int, error) {
	if err := t.buf.Check(); err != nil {
		return 0, err
	}
	keys, err := t.buf.Matching(ctx, t.prev, f, limit, compareForward)
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		t.record(deleteChange(k))
	}
	return len(keys), nil
}

// compareForward orders keys as the forward index does (byte-wise).
func compareForward(a, b tuple.Key) int {
	return cmp.Or(
		cmp.Compare(a.Resource.Type, b.Resource.Type), cmp.Compare(a.Resource.ID, b.Resource.ID),
		cmp.Compare(a.Relation, b.Relation), cmp.Compare(a.Subject.Type, b.Subject.Type),
		cmp.Compare(a.Subject.ID, b.Subject.ID), cmp.Compare(a.Subject.Relation, b.Subject.Relation))
}

func (t *tx) WriteSchema(ctx context.Context, text string) error { return t.buf.WriteSchema(text) }
