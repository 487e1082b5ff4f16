package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
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

// TestDatastoreMigrate migrates a fresh database on the test server (which
// .ci/run starts), twice: migration is idempotent.
func TestDatastoreMigrate(t *testing.T) {
	uri, _ := pgtest.NewDatabase(t)
	for i, want := range []string{
		fmt.Sprintf("pemba: datastore created at schema version %d\n", engine.StorageFormats()["postgres"]),
		fmt.Sprintf("pemba: datastore already at schema version %d; nothing to do\n", engine.StorageFormats()["postgres"]),
	} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{"datastore", "migrate", "--datastore-uri", uri}, &stdout, &stderr); code != 0 {
			t.Fatalf("run %d: exit %d, stderr %q", i, code, stderr.String())
		}
		if stdout.String() != want {
			t.Errorf("run %d: stdout %q, want %q", i, stdout.String(), want)
		}
	}
}
