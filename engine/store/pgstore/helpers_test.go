package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testServerEnv names the PostgreSQL server the tests create databases on.
const testServerEnv = "PEMBA_TEST_POSTGRES_URI"

// serverURI returns the test server's URI. Without one the test fails in
// CI and is skipped elsewhere.
func serverURI(t testing.TB) string {
	t.Helper()
	uri := os.Getenv(testServerEnv)
	if uri != "" {
		return uri
	}
	const how = testServerEnv + " is not set; start a throwaway server, e.g.\n" +
		"\td=$(mktemp -d) && chown postgres $d && runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D $d -A trust -U postgres &&\n" +
		"\trunuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D $d -o '-p 5433 -k $d' -w start\n" +
		"\texport " + testServerEnv + "='postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable'\n" +
		"(bash .ci/run does this by itself)"
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	t.Skip(how)
	return ""
}

// newDatabase creates an empty database with a random name on the test
// server, drops it when the test ends, and returns its URI.
func newDatabase(t testing.TB) string {
	t.Helper()
	uri, _ := newNamedDatabase(t)
	return uri
}

// newNamedDatabase is newDatabase that also returns the database's name.
func newNamedDatabase(t testing.TB) (uri, name string) {
	t.Helper()
	server := serverURI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("connect to %s: %v", testServerEnv, err)
	}
	defer admin.Close(context.Background())
	var raw [6]byte
	_, _ = rand.Read(raw[:])
	name = "pemba_test_" + hex.EncodeToString(raw[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return withDatabase(t, server, name), name
}

// withDatabase returns uri with its database replaced by name. It accepts
// URLs and key=value strings.
func withDatabase(t testing.TB, uri, name string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return uri + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
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
