package pgstore

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
)

// testServerEnv names the PostgreSQL server the tests create databases on.
const testServerEnv = pgtest.ServerEnv

// serverURI returns the test server's URI. Without one the test fails in
// CI and is skipped elsewhere.
func serverURI(t testing.TB) string {
	t.Helper()
	return pgtest.ServerURI(t)
}

// newDatabase creates an empty database with a random name on the test
// server, drops it when the test ends, and returns its URI.
func newDatabase(t testing.TB) string {
	t.Helper()
	uri, _ := pgtest.NewDatabase(t)
	return uri
}

// newNamedDatabase is newDatabase that also returns the database's name.
func newNamedDatabase(t testing.TB) (uri, name string) {
	t.Helper()
	return pgtest.NewDatabase(t)
}

// withDatabase returns uri with its database replaced by name.
func withDatabase(t testing.TB, uri, name string) string {
	t.Helper()
	return pgtest.WithDatabase(uri, name)
}

// openTest migrates a fresh database and opens a store on it, closed when
// the test ends.
func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	uri := newDatabase(t)
	ctx := context.Background()
	if err := Migrate(ctx, uri); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if opts.GCInterval == 0 {
		opts.GCInterval = -1
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = 8
	}
	st, err := Open(ctx, uri, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st, uri
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
