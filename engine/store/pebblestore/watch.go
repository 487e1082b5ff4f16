package pebblestore

import (
	"context"
	"fmt"
	"iter"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/internal/changefeed"
)

// watchBatch bounds the change sets read per round, so that Watch never
// holds the database (which Close waits for) while its consumer runs.
const watchBatch = 64

// Watch yields the change sets committed after revision after, from the
// changelog, then waits for commits. It wakes on a channel that every
// commit closes and replaces, so it never polls.
func (s *Store) Watch(ctx context.Context, after store.Revision) iter.Seq2[store.ChangeSet, error] {
	return changefeed.Watch(ctx, after, changefeed.Source{
		Wake:   s.commits.Chan,
		Read:   s.readChanges,
		Batch:  watchBatch,
		Closed: s.closedCh,
	})
}

// readChanges reads up to max change sets after revision after, up to head.
func (s *Store) readChanges(ctx context.Context, after store.Revision, max int) ([]store.ChangeSet, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	head := store.Revision(s.head.Load())
	if after >= head {
		// Still refuse a compacted start even when there is nothing new.
		if hz := store.Revision(s.horizon.Load()); after < hz {
			return nil, &store.CompactedError{Requested: after, Horizon: hz}
		}
		return nil, nil
	}
	last := min(head, after+store.Revision(max))
	it, err := s.newIter(after, changelogKey(after+1, 0), changelogKey(last+1, 0))
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var sets []store.ChangeSet
	for ok := it.First(); ok; ok = it.Next() {
		rev, seq, err := decodeChangelogKey(it.Key())
		if err != nil {
			return nil, err
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("pebblestore: read changelog: %w", err)
		}
		hdr, changes, err := decodeChangeChunk(val, seq)
		if err != nil {
			return nil, fmt.Errorf("changelog of revision %d: %w", rev, err)
		}
		if seq == 0 {
			want := after + 1
			if len(sets) > 0 {
				want = sets[len(sets)-1].Revision + 1
			}
			if rev != want {
				return nil, fmt.Errorf("pebblestore: changelog has revision %d, want %d: %w", rev, want, store.ErrCorrupt)
			}
			sets = append(sets, store.ChangeSet{
				Revision:      rev,
				Time:          hdr.time,
				Caller:        hdr.caller,
				SchemaChanged: hdr.schemaChanged,
				Changes:       changes,
			})
			continue
		}
		if len(sets) == 0 || sets[len(sets)-1].Revision != rev {
			return nil, fmt.Errorf("pebblestore: changelog chunk %d of revision %d without a header: %w", seq, rev, store.ErrCorrupt)
		}
		cs := &sets[len(sets)-1]
		cs.Changes = append(cs.Changes, changes...)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("pebblestore: read changelog: %w", err)
	}
	if len(sets) == 0 || sets[len(sets)-1].Revision != last {
		return nil, fmt.Errorf("pebblestore: changelog ends before revision %d: %w", last, store.ErrCorrupt)
	}
	return sets, ctx.Err()
}
