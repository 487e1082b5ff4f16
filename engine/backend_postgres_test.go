package engine_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/pgstore"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
)

// postgresBackend opens a PostgreSQL store in a fresh database of the test
// server (scripts/with-postgres.sh starts one; pgtest.ServerURI skips the
// test without one outside CI and fails it in CI). It is not among
// backends() (every domain test would then need the server); tests whose
// reads take access paths the other backends do not share (the reverse
// queries of scoped lookups) add it.
func postgresBackend() backend {
	return backend{"pgstore", func(t *testing.T, now func() time.Time) store.Store {
		uri, _ := pgtest.NewDatabase(t)
		if err := pgstore.Migrate(t.Context(), uri); err != nil {
			t.Fatalf("migrate %s: %v", uri, err)
		}
		st, err := pgstore.Open(t.Context(), uri, pgstore.Options{
			Now: now, GCInterval: -1, MaxConns: 8,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatalf("open %s: %v", uri, err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}}
}
