// Package pgstore is Pemba's PostgreSQL datastore: a store.Store on
// ordinary tables, for deployments that run several Pemba servers on one
// database or already operate PostgreSQL. It is the only package that
// imports pgx.
//
// # Tables
//
// Migrate creates them (schema version in pemba_schema_version); Open
// refuses a database at another version. pemba_relationships holds every
// version of every relationship; pemba_changelog one row per revision
// (caller, commit time, schema flag); pemba_schemas the schema texts;
// three one-row tables hold the store ID, the revision counter and the GC
// horizon. docs/storage.md lists the columns, indexes and query plans.
//
// # Visibility
//
// A version is visible at revision R when created_rev <= R < deleted_rev;
// a live version has deleted_rev = max int8. Writing a key closes its live
// version (deleted_rev = R) and inserts the new one (created_rev = R), so
// a reader at any revision inside the GC window sees exactly that
// revision, without locks, whatever commits meanwhile.
//
// # Revisions
//
// Every write transaction begins by incrementing the one-row revision
// counter and holds that row's lock until it commits or rolls back. So
// writers are serialised, revision N+1 is allocated only after N has
// committed, revisions commit in order with no gaps, and the counter's
// committed value is a head below which every revision has committed. A
// bare sequence would not do: transactions holding sequence values 7 and
// 8 can commit as 8 then 7, and a reader at 8 would miss 7's writes.
//
// # Queries
//
// Queries fetch pages of 500 rows and release the connection before
// yielding, so callers may nest queries and write inside loops. Each page
// statement joins the GC horizon row, so the horizon check and the rows
// come from one snapshot: GC commits the horizon before it deletes.
//
// # Watch and notifications
//
// Watch reads the changelog and the versions created or deleted in each
// revision, in revision order, in one repeatable-read snapshot. NOTIFY
// from a commit (and a local commit) only wakes watchers; without one
// they poll every second, so a missed notification delays but never
// loses a change set.
//
// # Read replicas
//
// Options.ReadReplicas names hot standbys. Since the counter row changes in
// each revision's own transaction and standbys replay commits in order, a
// standby whose counter shows H holds every revision <= H exactly; a
// snapshot at R reads from such a standby, else from the primary, and a
// failed replica statement is retried on the primary.
//
// # Faults
//
// Connection failures (refused, reset, closed, a server shutting down or
// starting up) are store.ErrUnavailable; a write that returns it wrote
// nothing. The counter's UPDATE also returns the transaction id and
// backend pid, so that when a COMMIT's answer is lost Update and Import
// can ask pg_xact_status on a fresh connection: committed is a success,
// aborted is store.ErrUnavailable, and no answer within
// Options.CommitOutcomeTimeout is store.ErrCommitUnknown (faults.go).
//
// # Import and GC
//
// Import COPYs into a temporary table and applies it at one revision in
// one transaction. GC persists the new horizon, then deletes dead versions
// and old changelog rows in autocommitted batches of 1,000.
package pgstore
