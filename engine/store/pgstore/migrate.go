package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migration is one step of the database schema. Steps are applied in
// order, each in the transaction that also records its version.
type migration struct {
	version int
	stmts   []string
}

// migrations is the schema history. Never edit a released step; append a
// new one.
var migrations = []migration{
	{version: 1, stmts: []string{
		// One row: the store's identity (zookies embed it).
		`CREATE TABLE pemba_metadata (
			singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),
			store_id text NOT NULL
		)`,
		// One row: the revision counter. Every write transaction updates
		// it first and holds its row lock until commit, which serialises
		// writers and makes revisions commit in order.
		`CREATE TABLE pemba_revision (
			singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),
			head bigint NOT NULL,
			last_commit_ns bigint NOT NULL
		)`,
		// One row: the GC horizon, apart from the counter so that GC never
		// waits for writers.
		`CREATE TABLE pemba_horizon (
			singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),
			horizon bigint NOT NULL
		)`,
		// Every version of every relationship: visible at revision R when
		// created_rev <= R < deleted_rev. The primary key is the forward
		// index (resource first); COLLATE "C" orders byte-wise.
		`CREATE TABLE pemba_relationships (
			resource_type text COLLATE "C" NOT NULL,
			resource_id text COLLATE "C" NOT NULL,
			relation text COLLATE "C" NOT NULL,
			subject_type text COLLATE "C" NOT NULL,
			subject_id text COLLATE "C" NOT NULL,
			subject_relation text COLLATE "C" NOT NULL,
			created_rev bigint NOT NULL,
			deleted_rev bigint NOT NULL DEFAULT 9223372036854775807,
			created_op smallint NOT NULL,
			caveat_name text,
			caveat_context json,
			expires_ns bigint,
			PRIMARY KEY (resource_type, resource_id, relation, subject_type, subject_id, subject_relation, deleted_rev)
		)`,
		// The reverse index (subject first), for LookupResources.
		`CREATE INDEX pemba_relationships_reverse ON pemba_relationships
			(subject_type, subject_id, subject_relation, resource_type, relation, resource_id, deleted_rev)`,
		// Watch reads a revision's creations and deletions; GC finds dead
		// versions. Only deleted versions enter the second index.
		`CREATE INDEX pemba_relationships_created ON pemba_relationships (created_rev)`,
		`CREATE INDEX pemba_relationships_deleted ON pemba_relationships (deleted_rev)
			WHERE deleted_rev <> 9223372036854775807`,
		// One row per revision: who wrote it and when (the audit trail).
		`CREATE TABLE pemba_changelog (
			revision bigint PRIMARY KEY,
			committed_ns bigint NOT NULL,
			caller text NOT NULL,
			schema_changed bool NOT NULL
		)`,
		`CREATE INDEX pemba_changelog_committed ON pemba_changelog (committed_ns)`,
		// Schema texts by the revision that wrote them.
		`CREATE TABLE pemba_schemas (
			revision bigint PRIMARY KEY,
			text text NOT NULL
		)`,
		`INSERT INTO pemba_metadata (store_id) VALUES (@store_id)`,
		`INSERT INTO pemba_revision (head, last_commit_ns) VALUES (0, 0)`,
		`INSERT INTO pemba_horizon (horizon) VALUES (0)`,
	}},
	{version: 2, stmts: []string{
		// GC finds expired live versions by expiration. Only live
		// versions that expire enter it, and closing a version takes it
		// out, so it stays as small as the expiring grants. IF NOT
		// EXISTS: an operator may build it first, CONCURRENTLY.
		`CREATE INDEX IF NOT EXISTS pemba_relationships_expires ON pemba_relationships (expires_ns)
			WHERE expires_ns IS NOT NULL AND deleted_rev = 9223372036854775807`,
	}},
	{version: 3, stmts: []string{
		// The audit log (audit.go): one row per revision, kept apart from
		// the changelog so that GC never removes it. entry is the canonical
		// encoding (the source of truth, covered by hash); committed_ns
		// and caller repeat it for indexed queries.
		`CREATE TABLE pemba_audit (
			revision bigint PRIMARY KEY,
			committed_ns bigint NOT NULL,
			caller text NOT NULL,
			entry bytea NOT NULL,
			hash bytea NOT NULL
		)`,
		`CREATE INDEX pemba_audit_committed ON pemba_audit (committed_ns)`,
		`CREATE INDEX pemba_audit_caller ON pemba_audit (caller, revision)`,
		// The chain's anchor: the entry before the oldest row kept. A
		// database migrated with revisions already written starts its log
		// after them.
		`CREATE TABLE pemba_audit_anchor (
			singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),
			revision bigint NOT NULL,
			hash bytea NOT NULL
		)`,
		`INSERT INTO pemba_audit_anchor (revision, hash) SELECT head, '\x` + zeroHashHex + `'::bytea FROM pemba_revision`,
		// The hash of the newest entry, beside the revision counter whose
		// row lock every writer holds: a writer reads it when it allocates
		// its revision and sets it with its entry.
		`ALTER TABLE pemba_revision ADD COLUMN audit_hash bytea NOT NULL DEFAULT '\x` + zeroHashHex + `'::bytea`,
	}},
}

// zeroHashHex is the all-zero hash of an anchor that starts a chain.
var zeroHashHex = strings.Repeat("00", 32)

// SchemaVersion is the database schema version this binary writes and reads.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// migrateLockKey names the advisory lock that serialises concurrent
// Migrate calls ("pemba" in ASCII).
const migrateLockKey = 0x70656d6261

// The statements of Migrate around the migrations' steps.
const (
	migrateLock        = `SELECT pg_advisory_xact_lock($1)`
	createVersionTable = `CREATE TABLE IF NOT EXISTS pemba_schema_version (
	singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),
	version integer NOT NULL
)`
	recordVersion = `INSERT INTO pemba_schema_version (version) VALUES ($1)
ON CONFLICT (singleton) DO UPDATE SET version = excluded.version`
	// The one-row tables are read by every query but never grow enough
	// for autovacuum to analyse them: without statistics the planner
	// guesses them far larger than they are, and plans (and, with JIT on,
	// compiles) for that.
	analyzeOneRowTables = `ANALYZE pemba_metadata, pemba_revision, pemba_horizon, pemba_audit_anchor, pemba_schema_version`
	selectVersion       = `SELECT version FROM pemba_schema_version`
)

// Migrate creates Pemba's tables in the database named by uri, or upgrades
// them to this binary's SchemaVersion. It is idempotent, safe to run while
// old servers still serve (steps only add), and refuses a database
// migrated by a newer Pemba (ErrSchemaTooNew).
func Migrate(ctx context.Context, uri string) error {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return fmt.Errorf("pgstore: connect: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, migrateLock, int64(migrateLockKey)); err != nil {
		return fmt.Errorf("pgstore: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, createVersionTable); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	version, err := readVersion(ctx, tx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if version > SchemaVersion() {
		return &VersionError{Found: version, Supported: SchemaVersion()}
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	args := pgx.NamedArgs{"store_id": hex.EncodeToString(raw[:])}
	for _, m := range migrations {
		if m.version <= version {
			continue
		}
		for _, stmt := range m.stmts {
			var err error
			if strings.Contains(stmt, "@store_id") {
				_, err = tx.Exec(ctx, stmt, args)
			} else {
				_, err = tx.Exec(ctx, stmt)
			}
			if err != nil {
				return fmt.Errorf("pgstore: migrate to version %d: %w", m.version, err)
			}
		}
		version = m.version
	}
	if _, err := tx.Exec(ctx, recordVersion, version); err != nil {
		return fmt.Errorf("pgstore: migrate: record version: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: migrate: commit: %w", err)
	}
	if _, err := conn.Exec(ctx, analyzeOneRowTables); err != nil {
		return fmt.Errorf("pgstore: migrate: analyze: %w", err)
	}
	return nil
}

// checkVersion returns a *VersionError unless the database is at exactly
// this binary's schema version.
func checkVersion(ctx context.Context, q rowQuerier) error {
	version, err := readVersion(ctx, q)
	if err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if version != SchemaVersion() {
		return &VersionError{Found: version, Supported: SchemaVersion()}
	}
	return nil
}

// rowQuerier is a pool, connection or transaction that reads one row.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readVersion returns the database's schema version: 0 when Migrate never
// ran there (no version table, or no row in it).
func readVersion(ctx context.Context, q rowQuerier) (int, error) {
	version := 0
	err := q.QueryRow(ctx, selectVersion).Scan(&version)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return 0, nil
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return version, nil
}
