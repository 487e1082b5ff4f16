package pgstore

import (
	"context"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// importCols are the columns of the staging table, in COPY order.
var importCols = []string{"seq", "resource_type", "resource_id", "relation", "subject_type", "subject_id",
	"subject_relation", "caveat_name", "caveat_context", "expires_ns"}

// closeImported ends the live versions of the staged keys at revision $1.
// createImportTable is an import's staging table, dropped at commit;
// importWorkMem lets the final INSERT sort it in memory.
const (
	createImportTable = `CREATE TEMPORARY TABLE pemba_import (
	seq bigint NOT NULL,
	resource_type text COLLATE "C" NOT NULL, resource_id text COLLATE "C" NOT NULL,
	relation text COLLATE "C" NOT NULL, subject_type text COLLATE "C" NOT NULL,
	subject_id text COLLATE "C" NOT NULL, subject_relation text COLLATE "C" NOT NULL,
	caveat_name text, caveat_context text, expires_ns bigint
) ON COMMIT DROP`
	importWorkMem = `SET LOCAL work_mem = '256MB'`
)

// insertImported inserts the staged relationships as live versions
// created at revision $1 by operation $2, the last of each key.
const insertImported = `INSERT INTO pemba_relationships (resource_type, resource_id, relation, subject_type, subject_id,
	subject_relation, created_rev, created_op, caveat_name, caveat_context, expires_ns)
SELECT DISTINCT ON (resource_type, resource_id, relation, subject_type, subject_id, subject_relation)
	resource_type, resource_id, relation, subject_type, subject_id, subject_relation,
	$1, $2, caveat_name, caveat_context::json, expires_ns
FROM pemba_import
ORDER BY resource_type, resource_id, relation, subject_type, subject_id, subject_relation, seq DESC`

const closeImported = `UPDATE pemba_relationships r SET deleted_rev = $1
FROM pemba_import k
WHERE r.resource_type = k.resource_type AND r.resource_id = k.resource_id AND r.relation = k.relation
	AND r.subject_type = k.subject_type AND r.subject_id = k.subject_id AND r.subject_relation = k.subject_relation
	AND r.deleted_rev = 9223372036854775807`

// Import writes rels at one new revision with Touch semantics (for a key
// given twice the later one wins), in one PostgreSQL transaction: it
// takes the next revision as Update does (writers wait; readers do not),
// streams the input with COPY into a temporary staging table, then closes
// the live versions of the imported keys and inserts the new versions in
// two set-based statements. An error in the input or a failure anywhere
// rolls everything back; no revision is used.
func (s *Store) Import(ctx context.Context, meta store.WriteMeta, rels iter.Seq2[tuple.Relationship, error]) (store.Revision, int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, 0, err
	}
	if err := s.lockWriter(ctx); err != nil {
		return 0, 0, err
	}
	defer s.unlockWriter()
	pg, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, 0, s.wrap(ctx, "begin import", err)
	}
	defer pg.Rollback(context.Background())
	rev, last, prevHash, id, err := allocate(ctx, pg)
	if err != nil {
		return 0, 0, s.wrap(ctx, "allocate revision", err)
	}
	if _, err := pg.Exec(ctx, createImportTable); err != nil {
		return 0, 0, s.wrap(ctx, "import: staging table", err)
	}
	observed := 0
	next, stop := iter.Pull2(store.ObservedImport(rels, &observed))
	defer stop()
	var (
		n      int64
		srcErr error // the input's own error, returned as is
		vals   = make([]any, len(importCols))
		audit  auditBody
	)
	src := pgx.CopyFromFunc(func() ([]any, error) {
		r, err, ok := next()
		if !ok {
			return nil, nil
		}
		if err == nil {
			var enc row
			if enc, err = encodeRelationship(r); err == nil {
				vals[0], vals[1], vals[2], vals[3] = n, r.Resource.Type, r.Resource.ID, r.Relation
				vals[4], vals[5], vals[6] = r.Subject.Type, r.Subject.ID, r.Subject.Relation
				vals[7], vals[8], vals[9] = enc.caveatName, enc.caveatCtx, enc.expires
				audit.add(store.Change{Op: store.OpTouch, Relationship: r})
				n++
				return vals, nil
			}
		}
		srcErr = err
		return nil, err
	})
	if _, err := pg.CopyFrom(ctx, pgx.Identifier{"pemba_import"}, importCols, src); err != nil {
		if srcErr != nil {
			return 0, 0, fmt.Errorf("pgstore: import: %w", srcErr)
		}
		return 0, 0, s.wrap(ctx, "import: copy", err)
	}
	b := &pgx.Batch{}
	// Room to sort the staging table in memory for DISTINCT ON.
	b.Queue(importWorkMem)
	// No ANALYZE: without statistics the planner sizes a temporary table
	// by its pages, which is enough to choose between an index join (a
	// small import into a large store) and a hash join, and ANALYZE would
	// cost a tenth of the import.
	b.Queue(closeImported, int64(rev))
	b.Queue(insertImported, int64(rev), int16(store.OpTouch))
	id.audit = s.queueCommit(b, rev, last, prevHash, meta, nil, audit)
	if err := pg.SendBatch(ctx, b).Close(); err != nil {
		return 0, 0, s.wrap(ctx, fmt.Sprintf("import revision %d", rev), err)
	}
	err = pg.Commit(ctx)
	if s.hooks != nil && s.hooks.afterCommit != nil {
		err = s.hooks.afterCommit(err)
	}
	if err != nil {
		// The COMMIT may have been applied with its answer lost.
		if rev, err = s.commitFailed(ctx, fmt.Sprintf("commit import revision %d", rev), rev, id, err); err != nil {
			return 0, 0, err
		}
	}
	s.advanceHead(rev)
	s.wake()
	s.stats.Observe(observed)
	return rev, int(n), nil
}
