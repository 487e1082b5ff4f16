package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
	"github.com/pemba-authz/pemba/engine/tuple"
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

// TestDatastoreIndex writes nested groups into a Pebble directory with the
// index off (so that it is stale), verifies (stale: exit 1), rebuilds and
// verifies again (complete, with the rows of the closure).
func TestDatastoreIndex(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := engine.OpenStore(ctx, engine.StoreOptions{Kind: engine.StorePebble, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(ctx, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", "definition user {}\ndefinition group {\n\trelation member: user | group#member\n}\n"); err != nil {
		t.Fatal(err)
	}
	off, err := engine.Open(ctx, st, engine.Options{NoNestedIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	var ups []engine.Update
	for _, r := range []string{"group:a#member@group:b#member", "group:b#member@group:c#member"} {
		rel, err := tuple.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, engine.Update{Op: store.OpTouch, Relationship: rel})
	}
	if _, err := off.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sub, out string
		code     int
	}{
		{"verify-index", "group#member at revision 2: stale, 0 rows; 3 missing, 0 extra, 0 with a wrong distance\n", 1},
		{"rebuild-index", "group#member at revision 4: complete, 3 rows; 0 missing, 0 extra, 0 with a wrong distance\n", 0},
		{"verify-index", "group#member at revision 4: complete, 3 rows; 0 missing, 0 extra, 0 with a wrong distance\n", 0},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, []string{"datastore", c.sub, "-data-dir", dir}, &stdout, &stderr); code != c.code || stdout.String() != c.out {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q", c.sub, code, stdout.String(), stderr.String(), c.code, c.out)
		}
	}
}
