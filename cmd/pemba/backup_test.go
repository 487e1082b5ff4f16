package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

const backupSchema = `
definition user {}
definition group {
  relation member: user
}
definition document {
  relation viewer: user | group#member
  relation banned: user
  permission view = viewer - banned
}
`

// TestBackupRestoreCommands runs pemba backup against a Pebble server
// that keeps taking writes, restores the backup with pemba restore,
// serves the restored directory and compares: every check at the
// backup's zookie answers as on the original, and a zookie the original
// minted is accepted. A key without admin rights is refused, and a
// damaged backup is refused naming the file.
func TestBackupRestoreCommands(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	const appSecret, opsSecret = "secret-of-the-app-0123456789", "secret-of-the-operator-0123456789"
	if err := os.WriteFile(keys, []byte("keys:\n  - name: app\n    secret: "+appSecret+"\n    scopes: [check, read_relationships, write_relationships, read_schema, write_schema]\n  - name: ops\n    secret: "+opsSecret+"\n    scopes: [admin]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startServe(t, "-datastore", "pebble", "-data-dir", filepath.Join(dir, "data"), "-keys-file", keys)
	ctx := context.Background()
	orig, err := client.New(addr, client.Options{Insecure: true, Key: appSecret})
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

	backup := func(token, to string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"backup", "--to", to, "--address", addr, "--token", token}, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	denied := filepath.Join(dir, "denied")
	if code, out := backup(appSecret, denied); code != 1 || !strings.Contains(out, "PermissionDenied") {
		t.Errorf("backup with a key that is not admin: exit %d, %s", code, out)
	}
	if _, err := os.Stat(denied); !os.IsNotExist(err) {
		t.Errorf("a refused backup left %s", denied)
	}

	// Back up while a writer commits: after its first 10 writes; stop it
	// 10 writes later.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	progress := make(chan int, 1000)
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
			progress <- i
		}
	})
	waitFor := func(n int) {
		for i := range progress {
			if i >= n {
				return
			}
		}
	}
	waitFor(10)
	bdir := filepath.Join(dir, "backup")
	code, out := backup(opsSecret, bdir)
	waitFor(20)
	close(stop)
	wg.Wait()
	// Whatever the writer managed after the backup, this write follows
	// it and denies every check compared below (some of which, like
	// document:d1#view@user:u0 through the groups, the writer never
	// touches and the backup allows).
	var ban []client.Update
	for d := range 10 {
		for u := range 6 {
			ban = append(ban, client.Touch(rel("document:d%d#banned@user:u%d", d, u)))
		}
	}
	if _, err := orig.Write(ctx, ban...); err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(out, "backup of pebble store") {
		t.Fatalf("backup: exit %d, %s", code, out)
	}
	m, err := engine.VerifyBackup(bdir)
	if err != nil {
		t.Fatal(err)
	}

	// A damaged copy is refused, naming the file.
	damaged := filepath.Join(dir, "damaged")
	if err := os.CopyFS(damaged, os.DirFS(bdir)); err != nil {
		t.Fatal(err)
	}
	victim := m.Files[len(m.Files)-1]
	for _, f := range m.Files {
		if f.Size > 0 {
			victim = f
		}
	}
	if err := os.WriteFile(filepath.Join(damaged, engine.BackupDataDir, victim.Name), []byte("not the file"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"restore", "--from", damaged, "-data-dir", filepath.Join(dir, "never")}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), victim.Name) {
		t.Errorf("restore of a damaged backup: exit %d, %s", code, stderr.String())
	}

	restoredDir := filepath.Join(dir, "restored")
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"restore", "--from", bdir, "-data-dir", restoredDir}, &stdout, &stderr); code != 0 {
		t.Fatalf("restore: exit %d, %s", code, stderr.String())
	}
	raddr := startServe(t, "-datastore", "pebble", "-data-dir", restoredDir, "-keys-file", keys)
	restored, err := client.New(raddr, client.Options{Insecure: true, Key: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	at := client.AtExactSnapshot(&pb.Zookie{Token: m.Zookie})
	changed := 0
	for d := range 10 {
		for u := range 6 {
			res, subj := fmt.Sprintf("document:d%d", d), fmt.Sprintf("user:u%d", u)
			want, err := orig.Check(ctx, at, res, "view", subj, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := restored.Check(ctx, at, res, "view", subj, nil)
			if err != nil {
				t.Fatalf("restored: %s#view@%s at the backup's zookie: %v", res, subj, err)
			}
			if got.GetPermissionship() != want.GetPermissionship() {
				t.Errorf("%s#view@%s at the backup's zookie: restored %v, original %v", res, subj, got.GetPermissionship(), want.GetPermissionship())
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
	if changed == 0 {
		t.Error("no answer changed after the backup: the concurrent writes tested nothing")
	}
	if _, err := restored.Check(ctx, client.AtLeastAsFresh(early), "document:d1", "view", "user:u1", nil); err != nil {
		t.Errorf("the restored server refuses a zookie the original minted: %v", err)
	}
}
