package pebblestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
)

// checkpointPrefix names the directories, inside the data directory, that
// hold a checkpoint while a backup reads it. Pebble ignores names it does
// not know; Open removes any left by a process that died mid-backup.
const checkpointPrefix = "pemba-checkpoint-"

var _ store.Checkpointer = (*Store)(nil)

// Checkpoint copies the store, while it serves, into a new directory
// inside its data directory (hard links to the immutable table files, the
// write-ahead log flushed and copied): a Pebble checkpoint. The copy is
// then opened as a store of its own, which rolls back an import the
// checkpoint caught half-written, and closed again, so that its files are
// those of a cleanly closed store whose head, ID and schema the result
// reports. Writers wait only for the write-ahead log flush; readers not
// at all. Call Close on the result to remove the copy.
func (s *Store) Checkpoint(ctx context.Context) (_ *store.Checkpoint, err error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	defer s.catchFatal(&err, store.ErrUnavailable)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("pebblestore: checkpoint name: %w", err)
	}
	dir := s.opts.FS.PathJoin(s.dir, checkpointPrefix+hex.EncodeToString(raw[:]))
	fs := s.opts.FS
	remove := func() error {
		if err := fs.RemoveAll(dir); err != nil {
			return fmt.Errorf("pebblestore: remove checkpoint %s: %w", dir, err)
		}
		return nil
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return nil, errors.Join(fmt.Errorf("pebblestore: checkpoint: %w", err), remove())
	}
	cp, err := s.describeCheckpoint(ctx, dir)
	if err != nil {
		return nil, errors.Join(err, remove())
	}
	cp.OpenFile = func(name string) (io.ReadCloser, error) {
		if !slices.Contains(cp.Files, name) {
			return nil, fmt.Errorf("pebblestore: %q is not a file of the checkpoint", name)
		}
		f, err := fs.Open(fs.PathJoin(dir, name))
		if err != nil {
			return nil, fmt.Errorf("pebblestore: checkpoint: %w", err)
		}
		return f, nil
	}
	cp.Close = remove
	return cp, nil
}

// describeCheckpoint opens the checkpoint in dir as a store, reads what a
// backup records of it, closes it and lists its files.
func (s *Store) describeCheckpoint(ctx context.Context, dir string) (*store.Checkpoint, error) {
	opts := s.opts
	opts.GCInterval = -1
	opts.CacheSize = 1 << 20
	opts.NoSync = false
	cs, err := Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open the checkpoint: %w", err)
	}
	cp := &store.Checkpoint{Format: formatVersion, ID: cs.ID()}
	err = func() error {
		head, err := cs.HeadRevision(ctx)
		if err != nil {
			return err
		}
		cp.Revision = head
		r, err := cs.Snapshot(ctx, head)
		if err != nil {
			return err
		}
		cp.Schema, _, err = r.ReadSchema(ctx)
		return err
	}()
	if err := errors.Join(err, cs.Close()); err != nil {
		return nil, fmt.Errorf("pebblestore: read the checkpoint: %w", err)
	}
	if cp.ID != s.id {
		return nil, fmt.Errorf("pebblestore: checkpoint has store id %s, not %s: %w", cp.ID, s.id, store.ErrCorrupt)
	}
	names, err := s.opts.FS.List(dir)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: list the checkpoint: %w", err)
	}
	for _, name := range names {
		st, err := s.opts.FS.Stat(s.opts.FS.PathJoin(dir, name))
		if err != nil {
			return nil, fmt.Errorf("pebblestore: list the checkpoint: %w", err)
		}
		if st.IsDir() {
			return nil, fmt.Errorf("pebblestore: checkpoint holds a directory %q", name)
		}
		if name == "LOCK" {
			// Pebble's lock file: empty, and recreated by Open.
			continue
		}
		cp.Files = append(cp.Files, name)
	}
	slices.Sort(cp.Files)
	return cp, nil
}

// removeCheckpoints removes checkpoint directories left in dir by a
// process that stopped during a backup: Open holds the directory's lock,
// so no backup is reading them.
func removeCheckpoints(dir string, opts Options) error {
	names, err := opts.FS.List(dir)
	if err != nil {
		return nil // a new directory; Open reports real problems
	}
	for _, name := range names {
		if strings.HasPrefix(name, checkpointPrefix) {
			if err := opts.FS.RemoveAll(opts.FS.PathJoin(dir, name)); err != nil {
				return fmt.Errorf("pebblestore: remove a stale checkpoint: %w", err)
			}
		}
	}
	return nil
}
