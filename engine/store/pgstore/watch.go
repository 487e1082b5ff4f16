package pgstore

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/internal/changefeed"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// watchBatch bounds the change sets read per round.
const watchBatch = 64

// Watch yields the change sets committed after revision after, in
// revision order, then waits for commits. What it yields is decided only
// by the changelog read in revision order; a local commit or a
// notification from another process (LISTEN/NOTIFY) wakes it early, and
// without either it polls every second, so a lost notification delays a
// change set but never loses it.
func (s *Store) Watch(ctx context.Context, after store.Revision) iter.Seq2[store.ChangeSet, error] {
	return changefeed.Watch(ctx, after, changefeed.Source{
		Wake:   s.commits.Chan,
		Read:   s.readChanges,
		Batch:  watchBatch,
		Closed: s.closedCh,
		Poll:   pollInterval,
	})
}

// changesQuery lists the changes of revisions ($1, $2]: versions created
// there (touches and creates) and versions deleted there that no version
// of the same revision replaced (deletions).
// changelogQuery reads up to $2 changelog rows after revision $1.
const changelogQuery = `SELECT revision, committed_ns, caller, schema_changed FROM pemba_changelog
WHERE revision > $1 ORDER BY revision LIMIT $2`

const changesQuery = `SELECT created_rev, created_op, resource_type, resource_id, relation, subject_type, subject_id,
	subject_relation, caveat_name, caveat_context, expires_ns
FROM pemba_relationships
WHERE created_rev > $1 AND created_rev <= $2
UNION ALL
SELECT d.deleted_rev, 3::int2, d.resource_type, d.resource_id, d.relation, d.subject_type, d.subject_id,
	d.subject_relation, NULL, NULL, NULL
FROM pemba_relationships d
WHERE d.deleted_rev > $1 AND d.deleted_rev <= $2 AND d.deleted_rev <> 9223372036854775807
	AND NOT EXISTS (
		SELECT 1 FROM pemba_relationships n
		WHERE n.resource_type = d.resource_type AND n.resource_id = d.resource_id AND n.relation = d.relation
			AND n.subject_type = d.subject_type AND n.subject_id = d.subject_id
			AND n.subject_relation = d.subject_relation AND n.created_rev = d.deleted_rev)`

// readChanges reads up to max change sets after revision after in one
// repeatable-read snapshot, so the horizon check covers every row read.
func (s *Store) readChanges(ctx context.Context, after store.Revision, max int) ([]store.ChangeSet, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	pg, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, s.wrap(ctx, "watch: begin", err)
	}
	defer pg.Rollback(context.Background())
	var horizon int64
	if err := pg.QueryRow(ctx, selectHorizon).Scan(&horizon); err != nil {
		return nil, s.wrap(ctx, "watch: read horizon", err)
	}
	if after < store.Revision(horizon) {
		return nil, &store.CompactedError{Requested: after, Horizon: store.Revision(horizon)}
	}
	rows, err := pg.Query(ctx, changelogQuery, int64(after), max)
	if err != nil {
		return nil, s.wrap(ctx, "watch: read changelog", err)
	}
	var sets []store.ChangeSet
	for rows.Next() {
		var (
			rev, ns int64
			cs      store.ChangeSet
		)
		if err := rows.Scan(&rev, &ns, &cs.Caller, &cs.SchemaChanged); err != nil {
			rows.Close()
			return nil, s.wrap(ctx, "watch: read changelog", err)
		}
		cs.Revision, cs.Time = store.Revision(rev), time.Unix(0, ns).UTC()
		if want := after + store.Revision(len(sets)) + 1; cs.Revision != want {
			rows.Close()
			return nil, fmt.Errorf("pgstore: changelog has revision %d, want %d: %w", rev, want, store.ErrCorrupt)
		}
		sets = append(sets, cs)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "watch: read changelog", err)
	}
	if len(sets) == 0 {
		return nil, nil
	}
	rows, err = pg.Query(ctx, changesQuery, int64(after), int64(sets[len(sets)-1].Revision))
	if err != nil {
		return nil, s.wrap(ctx, "watch: read changes", err)
	}
	defer rows.Close()
	var (
		rev        int64
		op         int16
		k          tuple.Key
		caveatName pgtype.Text
		caveatCtx  []byte
		expires    pgtype.Int8
	)
	for rows.Next() {
		if err := rows.Scan(&rev, &op, &k.Resource.Type, &k.Resource.ID, &k.Relation, &k.Subject.Type,
			&k.Subject.ID, &k.Subject.Relation, &caveatName, &caveatCtx, &expires); err != nil {
			return nil, s.wrap(ctx, "watch: read changes", err)
		}
		rel, err := decodeRelationship(k, caveatName, caveatCtx, expires)
		if err != nil {
			return nil, err
		}
		i := rev - int64(after) - 1
		if i < 0 || i >= int64(len(sets)) {
			return nil, fmt.Errorf("pgstore: change of revision %d outside (%d, %d]: %w", rev, after, sets[len(sets)-1].Revision, store.ErrCorrupt)
		}
		cs := &sets[i]
		cs.Changes = append(cs.Changes, store.Change{Op: store.Op(op), Relationship: rel})
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "watch: read changes", err)
	}
	return sets, nil
}
