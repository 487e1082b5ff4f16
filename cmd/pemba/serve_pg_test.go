package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
)

// TestServePostgres: serve refuses an unmigrated database and names the
// command that fixes it; after `pemba datastore migrate` it serves from
// PostgreSQL.
func TestServePostgres(t *testing.T) {
	uri, _ := pgtest.NewDatabase(t)
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"serve", "-listen", "127.0.0.1:0", "-datastore", "postgres", "-datastore-uri", uri}, &stdout, &stderr); code != 1 {
		t.Fatalf("serve on an unmigrated database: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "pemba datastore migrate") {
		t.Errorf("stderr %q does not name the migrate command", stderr.String())
	}
	if code := run(t.Context(), []string{"datastore", "migrate", "--datastore-uri", uri}, &stdout, &stderr); code != 0 {
		t.Fatalf("migrate: exit %d, stderr %q", code, stderr.String())
	}
	conn := dial(t, startServe(t, "-datastore", "postgres", "-datastore-uri", uri, "-insecure-no-auth"))
	ctx := context.Background()
	if _, err := pb.NewSchemaServiceClient(conn).WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition user {}"}); err != nil {
		t.Fatal(err)
	}
	got, err := pb.NewSchemaServiceClient(conn).ReadSchema(ctx, &pb.ReadSchemaRequest{})
	if err != nil || !strings.Contains(got.GetSchemaText(), "definition user") {
		t.Fatalf("ReadSchema = %q, %v", got.GetSchemaText(), err)
	}
}
