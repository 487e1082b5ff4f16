package pebblestore

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestCheckpoint: a checkpoint is a store of its own at the head it
// reports, with the same ID and schema; it lives inside the data
// directory until Close, and Open removes one a dead process left.
func TestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{GCInterval: -1, NoSync: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	head, err := s.Update(ctx, store.WriteMeta{Caller: "t"}, func(ctx context.Context, tx store.Tx) error {
		if err := tx.WriteSchema(ctx, "definition user {}"); err != nil {
			return err
		}
		r, err := tuple.Parse("doc:1#viewer@user:a")
		if err != nil {
			return err
		}
		return tx.Touch(ctx, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.ID != s.ID() || cp.Revision != head || cp.Schema != "definition user {}" || cp.Format != FormatVersion {
		t.Errorf("checkpoint %+v; want id %s at %d", cp, s.ID(), head)
	}
	if !slices.IsSorted(cp.Files) || slices.Contains(cp.Files, "LOCK") || len(cp.Files) == 0 {
		t.Errorf("files %v", cp.Files)
	}
	f, err := cp.OpenFile(cp.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := cp.OpenFile("../LOCK"); err == nil {
		t.Error("OpenFile opened a file outside the checkpoint")
	}
	dirs, _ := filepath.Glob(filepath.Join(dir, checkpointPrefix+"*"))
	if len(dirs) != 1 {
		t.Fatalf("checkpoint directories %v", dirs)
	}
	// A second checkpoint left behind, as by a process killed mid-backup.
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Errorf("Close left %s", dirs[0])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Checkpoint(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("checkpoint of a closed store: %v", err)
	}
	s, err = Open(dir, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if left, _ := filepath.Glob(filepath.Join(dir, checkpointPrefix+"*")); len(left) != 0 {
		t.Errorf("Open left stale checkpoints %v", left)
	}
}
