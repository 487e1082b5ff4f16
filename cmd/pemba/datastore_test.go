package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestDatastoreUsage(t *testing.T) {
	t.Setenv("PEMBA_DATASTORE_URI", "")
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no subcommand", nil, "usage: pemba datastore migrate"},
		{"unknown subcommand", []string{"drop"}, "usage: pemba datastore migrate"},
		{"no uri", []string{"migrate"}, "give --datastore-uri"},
		{"stray argument", []string{"migrate", "--datastore-uri", "postgres://x", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), append([]string{"datastore"}, tt.args...), &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.stderr)
			}
		})
	}
}

// TestDatastoreMigrate migrates a fresh database on the server named by
// PEMBA_TEST_POSTGRES_URI (which .ci/run starts), twice: migration is
// idempotent.
func TestDatastoreMigrate(t *testing.T) {
	base := os.Getenv("PEMBA_TEST_POSTGRES_URI")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PEMBA_TEST_POSTGRES_URI is unset; .ci/run starts a PostgreSQL server and sets it")
		}
		t.Skip("set PEMBA_TEST_POSTGRES_URI to a PostgreSQL server to run this test")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("pemba_cmd_%d", rand.Uint64())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	for i := 0; i < 2; i++ {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, []string{"datastore", "migrate", "--datastore-uri", u.String()}, &stdout, &stderr); code != 0 {
			t.Fatalf("run %d: exit %d, stderr %q", i, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "schema version") {
			t.Errorf("stdout %q", stdout.String())
		}
	}
}
