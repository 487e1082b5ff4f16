package pebblestore

import (
	"context"
	"fmt"

	"github.com/pemba-authz/pemba/engine/store"
)

var _ store.Compacter = (*Store)(nil)

// compactStart and compactEnd bound every key the store writes: each
// starts with a keyspace tag (keys.go), a lowercase letter.
var (
	compactStart = []byte{0x00}
	compactEnd   = []byte{0xff}
)

// Compact flushes the memtable and compacts every key into Pebble's
// bottom level (store.Compacter), in parallel where the bottom level's
// files allow. A bulk import and the nested-group index's rebuild after
// it leave millions of fresh rows in two or more overlapping levels; a
// read that misses the block cache then seeks and reads a data block in
// each. One level, with whole sstables of sorted keys, halves those
// seeks. Reads and writes go on meanwhile; it costs about one rewrite of
// the store's bytes.
func (s *Store) Compact(ctx context.Context) (err error) {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	defer s.catchFatal(&err, store.ErrUnavailable)
	if err := s.writable(); err != nil {
		return err
	}
	err = s.db.Compact(ctx, compactStart, compactEnd, true)
	// A pooled iterator reads the version of the LSM it was created on:
	// one from before the compaction would go on seeking in the old,
	// overlapping files (and keep them on disk) until the next commit.
	// Retire them, as GC does, whether the compaction finished or not.
	s.iters.gen.Add(1)
	s.closeIters()
	if err != nil {
		return fmt.Errorf("pebblestore: compact: %w", err)
	}
	return nil
}
