package engine_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
)

// backupFixture is an engine over a Pebble store holding testSchema and
// a few documents.
func backupFixture(t *testing.T) (*engine.Engine, string) {
	t.Helper()
	dir := t.TempDir()
	clk := newClock()
	st, err := pebblestore.Open(dir, pebblestore.Options{Now: clk.Now, GCInterval: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := engine.Open(t.Context(), st, engine.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	f := &fixture{t: t, ctx: t.Context(), eng: eng, clk: clk}
	if _, _, err := eng.WriteSchema(t.Context(), "test", testSchema); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		f.touch(fmt.Sprintf("document:d%d#viewer@user:u%d", i, i%5), fmt.Sprintf("group:g%d#member@user:u%d", i%3, i%7),
			fmt.Sprintf("document:d%d#viewer@group:g%d#member", i, i%3))
	}
	return eng, dir
}

// backupQueries are the checks compared between the original and the
// restored datastore.
func backupQueries() []string {
	var qs []string
	for d := range 24 {
		for u := range 8 {
			qs = append(qs, fmt.Sprintf("document:d%d#view@user:u%d", d, u))
		}
	}
	return qs
}

func checkAt(t *testing.T, eng *engine.Engine, c engine.Consistency, q string) (engine.Permissionship, error) {
	t.Helper()
	r := mustParse(t, q)
	resp, err := eng.Check(t.Context(), engine.CheckRequest{Consistency: c, CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
	return resp.Permissionship, err
}

// TestBackupUnderWritesAndRestore backs up a Pebble datastore while a
// writer keeps committing, restores the backup into a new directory, and
// demands that every check at the backup's zookie answers as on the
// original, that zookies the original minted are accepted, and that the
// restored datastore is exactly at the backup's revision.
func TestBackupUnderWritesAndRestore(t *testing.T) {
	eng, dataDir := backupFixture(t)
	ctx := t.Context()
	before, err := eng.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, zBefore := (&fixture{t: t, ctx: ctx, eng: eng}).check(engine.FullyConsistent(), "document:d1#view@user:u1")

	// The writer commits until stopped; the backup is taken after its
	// first 20 writes and the writer stopped after 20 more.
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
			op := engine.OpTouch
			if i%3 == 2 {
				op = engine.OpDelete
			}
			_, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "writer", Updates: []engine.Update{
				{Op: op, Relationship: mustParse(t, fmt.Sprintf("document:d%d#viewer@user:u%d", 20+i%4, i%8))},
				{Op: engine.OpTouch, Relationship: mustParse(t, fmt.Sprintf("document:d%d#banned@user:u%d", i%20, (i+3)%8))},
			}})
			if err != nil {
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
	waitFor(20)
	b, err := eng.Backup(ctx)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	waitFor(40)
	close(stop)
	wg.Wait()
	// Whatever the writer managed after the checkpoint, these writes
	// follow it: they deny every check the comparison below makes.
	var ban []engine.Update
	for d := range 24 {
		for u := range 8 {
			ban = append(ban, engine.Update{Op: engine.OpTouch, Relationship: mustParse(t, fmt.Sprintf("document:d%d#banned@user:u%d", d, u))})
		}
	}
	if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ban}); err != nil {
		t.Fatal(err)
	}
	m := b.Manifest
	backupDir := filepath.Join(t.TempDir(), "backup")
	if err := b.Save(backupDir); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := filepath.Glob(filepath.Join(dataDir, "pemba-checkpoint-*")); len(entries) > 0 {
		t.Errorf("checkpoint left in the data directory: %v", entries)
	}
	head, err := eng.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Revision <= before+20 || m.Revision >= head {
		t.Errorf("backup at revision %d; want between %d and %d (taken under writes)", m.Revision, before+20, head)
	}
	if m.Kind != "pebble" || m.Format != pebblestore.FormatVersion || m.Schema != testSchema || len(m.Files) == 0 {
		t.Errorf("manifest %+v", m)
	}
	if _, err := engine.VerifyBackup(backupDir); err != nil {
		t.Fatal(err)
	}

	restoredDir := filepath.Join(t.TempDir(), "restored")
	if _, err := engine.RestoreBackup(ctx, backupDir, restoredDir); err != nil {
		t.Fatal(err)
	}
	st, err := pebblestore.Open(restoredDir, pebblestore.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	restored, err := engine.Open(ctx, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if h, _ := restored.Head(ctx); h != m.Revision {
		t.Errorf("restored head %d, backup revision %d", h, m.Revision)
	}
	differ := 0
	for _, q := range backupQueries() {
		want, err := checkAt(t, eng, engine.AtExactSnapshot(m.Zookie), q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := checkAt(t, restored, engine.AtExactSnapshot(m.Zookie), q)
		if err != nil {
			t.Fatalf("restored: check %s at the backup's zookie: %v", q, err)
		}
		if got != want {
			t.Errorf("check %s at the backup's zookie: restored %v, original %v", q, got, want)
		}
		now, err := checkAt(t, eng, engine.FullyConsistent(), q)
		if err != nil {
			t.Fatal(err)
		}
		if now != want {
			differ++
		}
	}
	if differ == 0 {
		t.Error("no check changed after the backup: the writes after it did not test anything")
	}
	// A zookie the original minted before the backup is accepted; one
	// minted after it names a revision the restored datastore lacks.
	if _, err := checkAt(t, restored, engine.AtLeastAsFresh(zBefore), "document:d1#view@user:u1"); err != nil {
		t.Errorf("restored refuses the original's zookie: %v", err)
	}
	_, zAfter := (&fixture{t: t, ctx: ctx, eng: eng}).check(engine.FullyConsistent(), "document:d1#view@user:u1")
	if _, err := checkAt(t, restored, engine.AtLeastAsFresh(zAfter), "document:d1#view@user:u1"); !errors.Is(err, engine.ErrFutureZookie) {
		t.Errorf("restored answered a zookie newer than the backup: %v", err)
	}
}

// TestRestoreRefusesBadBackups damages a backup in each way a copy can be
// damaged and demands a refusal that names the file, with nothing left
// at the target directory.
func TestRestoreRefusesBadBackups(t *testing.T) {
	eng, _ := backupFixture(t)
	b, err := eng.Backup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var sst string
	for _, f := range b.Manifest.Files {
		if strings.HasSuffix(f.Name, ".sst") || strings.HasSuffix(f.Name, ".log") {
			sst = f.Name
			break
		}
	}
	if sst == "" {
		t.Fatalf("no table or log file in %v", b.Manifest.Files)
	}
	editManifest := func(edit func(m *engine.BackupManifest)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			path := filepath.Join(dir, engine.BackupManifestFile)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var m engine.BackupManifest
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			edit(&m)
			data, _ = json.Marshal(m)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   error
		msg    string
	}{
		{"flipped byte", func(t *testing.T, dir string) {
			path := filepath.Join(dir, engine.BackupDataDir, sst)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0x40
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, engine.ErrBackupInvalid, sst + " has SHA-256"},
		{"missing file", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, engine.BackupDataDir, sst)); err != nil {
				t.Fatal(err)
			}
		}, engine.ErrBackupInvalid, sst + " is missing"},
		{"truncated file", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, engine.BackupDataDir, sst), 10); err != nil {
				t.Fatal(err)
			}
		}, engine.ErrBackupInvalid, sst + " has 10 bytes"},
		{"no manifest", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, engine.BackupManifestFile)); err != nil {
				t.Fatal(err)
			}
		}, engine.ErrBackupInvalid, "has no manifest.json"},
		{"newer format", editManifest(func(m *engine.BackupManifest) { m.Format = pebblestore.FormatVersion + 1 }),
			engine.ErrBackupFormat, fmt.Sprintf("storage format %d, this pemba reads formats 1 to %d", pebblestore.FormatVersion+1, pebblestore.FormatVersion)},
		{"other kind", editManifest(func(m *engine.BackupManifest) { m.Kind = "postgres" }), engine.ErrBackupFormat, `"postgres" datastore`},
		{"path in a name", editManifest(func(m *engine.BackupManifest) { m.Files[0].Name = "../x" }), engine.ErrBackupInvalid, `bad file name "../x"`},
		{"other store id", editManifest(func(m *engine.BackupManifest) { m.StoreID = "0123" }), engine.ErrBackupInvalid, "manifest says 0123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "backup")
			if err := b.Save(dir); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, dir)
			target := filepath.Join(t.TempDir(), "restored")
			_, err := engine.RestoreBackup(t.Context(), dir, target)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("restore: %v; want %v naming %q", err, tc.want, tc.msg)
			}
			if _, serr := os.Stat(target); !os.IsNotExist(serr) {
				t.Errorf("a refused restore left %s", target)
			}
			if tc.name != "other store id" {
				if _, err := engine.VerifyBackup(dir); !errors.Is(err, tc.want) {
					t.Errorf("verify: %v; want %v", err, tc.want)
				}
			}
		})
	}
	t.Run("stray file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "backup")
		if err := b.Save(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, engine.BackupDataDir, "000999.sst"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := engine.VerifyBackup(dir); !errors.Is(err, engine.ErrBackupInvalid) || !strings.Contains(err.Error(), "000999.sst is not in the manifest") {
			t.Errorf("verify: %v", err)
		}
	})
	t.Run("target not empty", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "backup")
		if err := b.Save(dir); err != nil {
			t.Fatal(err)
		}
		target := t.TempDir()
		if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := engine.RestoreBackup(t.Context(), dir, target); !errors.Is(err, engine.ErrBackupTargetNotEmpty) {
			t.Errorf("restore into a non-empty directory: %v", err)
		}
	})
}

// TestBackupUnsupported: a datastore without checkpoints says so.
func TestBackupUnsupported(t *testing.T) {
	st := memstore.New(memstore.Options{})
	defer st.Close()
	eng, err := engine.Open(t.Context(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, err := eng.Backup(t.Context()); !errors.Is(err, engine.ErrBackupUnsupported) {
		t.Errorf("backup of a memory datastore: %v", err)
	}
}
