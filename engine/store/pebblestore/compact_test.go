package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
)

// TestCompact checks that Compact leaves every key in the bottom level,
// every revision in the GC window reading as before and no iterator of
// the old files pooled, and that a closed store refuses it.
func TestCompact(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	opts := e.opts()
	opts.noAutoCompactions = true // else Pebble may move the L0 tables first
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	// Several revisions, each flushed to its own L0 table, so that the
	// tables overlap: a replaced and a deleted tuple keep older versions.
	var revs []store.Revision
	for i := range 4 {
		revs = append(revs, touch(t, s,
			fmt.Sprintf("doc:%d#viewer@user:a", i),
			fmt.Sprintf("doc:x#viewer@user:u%d", i),
			"doc:shared#viewer@user:b[expiration:2100-01-0"+fmt.Sprint(i+1)+"T00:00:00Z]"))
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	revs = append(revs, del(t, s, "doc:0#viewer@user:a"))
	want := make([][]string, len(revs))
	for i, rev := range revs {
		want[i] = mustAll(t, s, rev)
	}
	if m := s.db.Metrics(); m.Levels[0].TablesCount < 2 {
		t.Fatalf("L0 holds %d tables before compacting, want several", m.Levels[0].TablesCount)
	}

	if len(s.iters.pooled()) == 0 {
		t.Fatal("no pooled iterator after the reads")
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	// A pooled iterator from before would read the old files.
	if n := len(s.iters.pooled()); n != 0 {
		t.Errorf("%d iterators from before the compaction still pooled", n)
	}
	m := s.db.Metrics()
	for l := range len(m.Levels) - 1 {
		if n := m.Levels[l].TablesCount; n != 0 {
			t.Errorf("L%d holds %d tables after Compact, want 0", l, n)
		}
	}
	if m.Levels[len(m.Levels)-1].TablesCount == 0 {
		t.Error("the bottom level is empty after Compact")
	}
	for i, rev := range revs {
		if got := mustAll(t, s, rev); !slices.Equal(got, want[i]) {
			t.Errorf("at %d after Compact: %q, want %q", rev, got, want[i])
		}
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Compact on a closed store: %v, want store.ErrClosed", err)
	}
}
