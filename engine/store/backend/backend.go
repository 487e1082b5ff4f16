// Package backend opens the datastore a command asks for by name: the one
// switch over memory, pebble and postgres. Callers above the engine reach
// it through engine.OpenStore and engine.MigrateStore (the engine is their
// one door); it stays a package of its own so that the switch, and the
// knowledge of every backend's options, sits beside the backends.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
	"github.com/pemba-authz/pemba/engine/store/pgstore"
)

// The kinds of datastore Open knows.
const (
	Memory   = "memory"
	Pebble   = "pebble"
	Postgres = "postgres"
)

// ErrUsage marks options that name no known backend or lack what the
// backend needs; commands report it as a usage error.
var ErrUsage = errors.New("bad datastore options")

// Options choose and configure a datastore.
type Options struct {
	// Kind is Memory, Pebble (Dir required) or Postgres (URI required).
	Kind string
	// Dir is the Pebble data directory.
	Dir string
	// URI is the PostgreSQL connection URI.
	URI string
	// Migrate creates or upgrades the PostgreSQL tables before opening;
	// without it the database must have been migrated already.
	Migrate bool
	// GCWindow and Logger, when set, apply to whichever backend is opened
	// (memory has no logger), overriding the per-backend options below.
	GCWindow time.Duration
	Logger   *slog.Logger
	// Now, when set, is the clock of a memory or Pebble store (commit
	// times, expiration checks); PostgreSQL uses the database's clock.
	Now func() time.Time
	// Pebble and Postgres are the rest of each backend's options.
	Pebble   PebbleOptions
	Postgres PostgresOptions
}

// PebbleOptions are the options of a Pebble datastore.
type PebbleOptions = pebblestore.Options

// PostgresOptions are the options of a PostgreSQL datastore.
type PostgresOptions = pgstore.Options

// Open opens the datastore o names. Errors in o wrap ErrUsage.
func Open(ctx context.Context, o Options) (store.Store, error) {
	switch o.Kind {
	case Memory:
		return memstore.New(memstore.Options{GCWindow: o.GCWindow, Now: o.Now}), nil
	case Pebble:
		if o.Dir == "" {
			return nil, fmt.Errorf("%w: -datastore pebble needs a -data-dir", ErrUsage)
		}
		po := o.Pebble
		if o.GCWindow != 0 {
			po.GCWindow = o.GCWindow
		}
		if o.Logger != nil {
			po.Logger = o.Logger
		}
		if o.Now != nil {
			po.Now = o.Now
		}
		st, err := pebblestore.Open(o.Dir, po)
		if errors.Is(err, pebblestore.ErrLocked) {
			return nil, fmt.Errorf("open pebble datastore: -data-dir %s is in use by another process (another pemba serve?): stop it, or give another -data-dir: %w", o.Dir, err)
		}
		if err != nil {
			return nil, fmt.Errorf("open pebble datastore: %w", err)
		}
		return st, nil
	case Postgres:
		if o.URI == "" {
			return nil, fmt.Errorf("%w: -datastore postgres needs a -datastore-uri", ErrUsage)
		}
		if o.Migrate {
			if err := pgstore.Migrate(ctx, o.URI); err != nil {
				return nil, fmt.Errorf("migrate postgres datastore: %w", err)
			}
		}
		po := o.Postgres
		if o.GCWindow != 0 {
			po.GCWindow = o.GCWindow
		}
		if o.Logger != nil {
			po.Logger = o.Logger
		}
		st, err := pgstore.Open(ctx, o.URI, po)
		if err != nil {
			return nil, fmt.Errorf("open postgres datastore: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("%w: unknown -datastore %q (want pebble, postgres or memory)", ErrUsage, o.Kind)
}

// Version returns the schema version the datastore o names is at (0: not
// migrated yet). Only Postgres has one; other kinds wrap ErrUsage.
func Version(ctx context.Context, o Options) (int, error) {
	if o.Kind != Postgres {
		return 0, fmt.Errorf("%w: datastore %q has no schema version (only postgres does)", ErrUsage, o.Kind)
	}
	if o.URI == "" {
		return 0, fmt.Errorf("%w: reading a postgres schema version needs a -datastore-uri", ErrUsage)
	}
	return pgstore.CurrentVersion(ctx, o.URI)
}

// Migrate creates or upgrades the tables of the datastore o names and
// returns the schema version it is now at. Only Postgres has tables to
// migrate; other kinds wrap ErrUsage.
func Migrate(ctx context.Context, o Options) (int, error) {
	if o.Kind != Postgres {
		return 0, fmt.Errorf("%w: datastore %q needs no migration (only postgres does)", ErrUsage, o.Kind)
	}
	if o.URI == "" {
		return 0, fmt.Errorf("%w: migrating postgres needs a -datastore-uri", ErrUsage)
	}
	if err := pgstore.Migrate(ctx, o.URI); err != nil {
		return 0, err
	}
	return pgstore.SchemaVersion(), nil
}

// Collector returns the metrics collector of a backend that exports its
// own (Pebble and PostgreSQL: a prometheus.Collector), typed any so that callers that do
// not export metrics need not know the metrics library.
func Collector(st store.Store) (any, bool) {
	switch s := st.(type) {
	case *pebblestore.Store:
		return s.Collector(), true
	case *pgstore.Store:
		return s.Collector(), true
	}
	return nil, false
}

// Formats names the storage format each persistent backend writes: the
// Pebble on-disk format and the PostgreSQL schema version.
func Formats() map[string]int {
	return map[string]int{"pebble": pebblestore.FormatVersion, "postgres": pgstore.SchemaVersion()}
}
