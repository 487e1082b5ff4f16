package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// pgTool finds a PostgreSQL client program: on PATH, or in Debian's
// PostgreSQL 15 directory.
func pgTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/lib/postgresql/15/bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found on PATH or in /usr/lib/postgresql/15/bin", name)
	}
	return p
}

// TestPostgresDumpRestore follows docs/operations.md's PostgreSQL backup
// procedure: pg_dump -Fc -t 'pemba_*' of a database that a server keeps
// writing to, pg_restore into a new database, serve it, and compare: the
// restored server answers every check as the original does at the
// restored head's zookie, and accepts a zookie the original minted.
func TestPostgresDumpRestore(t *testing.T) {
	uri, _ := pgtest.NewDatabase(t)
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"datastore", "migrate", "--datastore-uri", uri}, &stdout, &stderr); code != 0 {
		t.Fatalf("migrate: exit %d, %s", code, stderr.String())
	}
	orig, err := client.New(startServe(t, "-datastore", "postgres", "-datastore-uri", uri, "-insecure-no-auth"), client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if _, err := orig.Schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: backupSchema}); err != nil {
		t.Fatal(err)
	}
	rel := func(format string, args ...any) tuple.Relationship {
		r, err := tuple.Parse(fmt.Sprintf(format, args...))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var early *pb.Zookie
	for i := range 30 {
		if early, err = orig.Write(ctx, client.Touch(rel("document:d%d#viewer@user:u%d", i%10, i%6)), client.Touch(rel("group:g%d#member@user:u%d", i%3, i%5)),
			client.Touch(rel("document:d%d#viewer@group:g%d#member", i%10, i%3))); err != nil {
			t.Fatal(err)
		}
	}

	// pg_dump while a writer commits (pg_dump reads one snapshot).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			u := client.Touch(rel("document:d%d#banned@user:u%d", i%10, i%6))
			if i%2 == 1 {
				u = client.Delete(rel("document:d%d#viewer@user:u%d", i%10, i%6))
			}
			if _, err := orig.Write(ctx, u); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
	})
	dump := filepath.Join(t.TempDir(), "pemba.dump")
	out, err := exec.Command(pgTool(t, "pg_dump"), "-Fc", "-t", "pemba_*", "-f", dump, uri).CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	newURI, _ := pgtest.NewDatabase(t)
	if out, err := exec.Command(pgTool(t, "pg_restore"), "--no-owner", "-d", newURI, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	restored, err := client.New(startServe(t, "-datastore", "postgres", "-datastore-uri", newURI, "-insecure-no-auth"), client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()

	head, err := restored.Check(ctx, client.FullyConsistent(), "document:d0", "view", "user:u0", nil)
	if err != nil {
		t.Fatal(err)
	}
	at := client.AtExactSnapshot(head.GetCheckedAt())
	changed := 0
	for d := range 10 {
		for u := range 6 {
			res, subj := fmt.Sprintf("document:d%d", d), fmt.Sprintf("user:u%d", u)
			want, err := orig.Check(ctx, at, res, "view", subj, nil)
			if err != nil {
				t.Fatalf("original at the restored head's zookie: %v", err)
			}
			got, err := restored.Check(ctx, at, res, "view", subj, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.GetPermissionship() != want.GetPermissionship() {
				t.Errorf("%s#view@%s at the restored head: restored %v, original %v", res, subj, got.GetPermissionship(), want.GetPermissionship())
			}
			now, err := orig.Check(ctx, client.FullyConsistent(), res, "view", subj, nil)
			if err != nil {
				t.Fatal(err)
			}
			if now.GetPermissionship() != want.GetPermissionship() {
				changed++
			}
		}
	}
	t.Logf("%d of 60 answers changed after the dump", changed)
	if _, err := restored.Check(ctx, client.AtLeastAsFresh(early), "document:d1", "view", "user:u1", nil); err != nil {
		t.Errorf("the restored server refuses a zookie the original minted: %v", err)
	}
}
