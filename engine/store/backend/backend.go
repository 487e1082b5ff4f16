// Package backend opens the datastore a command asks for by name: the one
// switch over memory, pebble and postgres that both `pemba serve` and the
// benchmark harness use. It lives beside the backends, not in package
// engine, so that the engine itself never links Pebble or pgx; only the
// programs that choose a backend at run time import it.
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
	// Pebble and Postgres are the rest of each backend's options.
	Pebble   pebblestore.Options
	Postgres pgstore.Options
}

// Open opens the datastore o names. Errors in o wrap ErrUsage.
func Open(ctx context.Context, o Options) (store.Store, error) {
	switch o.Kind {
	case Memory:
		return memstore.New(memstore.Options{GCWindow: o.GCWindow}), nil
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
		st, err := pebblestore.Open(o.Dir, po)
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
