package engine

import (
	"context"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/backend"
)

// Store is the storage interface an engine reads and writes (package
// engine/store). Callers open one with OpenStore (or, in tests, a backend
// package's constructor), pass it to Open and close it after the engine.
type Store = store.Store

// Datastore options, as package engine/store/backend defines them.
type (
	// StoreOptions choose and configure a datastore for OpenStore.
	StoreOptions = backend.Options
	// PebbleOptions are the rest of a Pebble datastore's options.
	PebbleOptions = backend.PebbleOptions
	// PostgresOptions are the rest of a PostgreSQL datastore's options.
	PostgresOptions = backend.PostgresOptions
)

// Kinds of datastore (StoreOptions.Kind).
const (
	StoreMemory   = backend.Memory
	StorePebble   = backend.Pebble
	StorePostgres = backend.Postgres
)

// ErrStoreUsage marks StoreOptions that name no known datastore or lack
// what it needs (a directory, a URI): a usage error of the command that
// chose them, returned only by OpenStore and MigrateStore.
var ErrStoreUsage = backend.ErrUsage

// OpenStore opens the datastore o names. The caller closes it.
func OpenStore(ctx context.Context, o StoreOptions) (Store, error) { return backend.Open(ctx, o) }

// MigrateStore creates or upgrades the tables of the datastore o names
// (PostgreSQL; other kinds need none and fail with ErrStoreUsage) and
// returns the schema version it is now at.
func MigrateStore(ctx context.Context, o StoreOptions) (int, error) { return backend.Migrate(ctx, o) }

// StoreVersion returns the schema version of the datastore o names (0:
// not migrated yet), changing nothing: PostgreSQL only.
func StoreVersion(ctx context.Context, o StoreOptions) (int, error) { return backend.Version(ctx, o) }

// StoreKind names the engine's datastore ("memory", "pebble", "postgres").
func (e *Engine) StoreKind() string { return e.st.Kind() }

// Head returns the newest committed revision of the datastore, read now
// (not quantized): for metrics and tests, not for choosing a revision to
// read at (use a Consistency).
func (e *Engine) Head(ctx context.Context) (Revision, error) { return e.st.HeadRevision(ctx) }

// GCTotals count a datastore's GC runs since it was opened.
type GCTotals = store.GCTotals

// GCStatus is what the datastore reports about its garbage collection.
type GCStatus struct {
	// Horizon is the oldest revision still readable; HasHorizon says
	// whether the datastore reports one.
	Horizon    Revision
	HasHorizon bool
	// Totals count GC runs since the datastore was opened; HasTotals
	// says whether the datastore counts them.
	Totals    GCTotals
	HasTotals bool
}

// GCStatus returns the datastore's garbage-collection status, read now.
func (e *Engine) GCStatus() GCStatus {
	var s GCStatus
	if h, ok := e.st.(interface{ Horizon() store.Revision }); ok {
		s.Horizon, s.HasHorizon = h.Horizon(), true
	}
	if r, ok := e.st.(store.GCReporter); ok {
		s.Totals, s.HasTotals = r.GCTotals(), true
	}
	return s
}

// StoreCollector returns the datastore's own metrics collector (a
// prometheus.Collector: Pebble's compactions, caches, disk usage) and
// true, when the backend exports one. It is typed any so that the engine
// does not depend on the metrics library; the caller asserts the type.
func (e *Engine) StoreCollector() (any, bool) { return backend.Collector(e.st) }

// StorageFormats names the storage format each persistent backend writes
// ("pebble": its on-disk format, "postgres": its schema version), as
// `pemba version` reports them.
func StorageFormats() map[string]int { return backend.Formats() }
