package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestGCWhileReading runs a writer, GC and readers at once. Every
// revision r holds exactly the members "r" of groups 0..3 (each Update
// rewrites all of them), so any reader can check that what it sees is
// one whole revision: readers get either that or ErrRevisionCompacted.
func TestGCWhileReading(t *testing.T) {
	const (
		groups  = 4
		writes  = 150
		readers = 2
	)
	ctx := context.Background()
	clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv()
	opts := e.opts()
	opts.Now = clock.Now
	opts.GCWindow = 10 * time.Second
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	write := func(i int) error {
		_, err := s.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
			for g := range groups {
				if _, err := tx.DeleteMatching(ctx, tuple.Filter{ResourceType: "group", ResourceID: fmt.Sprint(g)}, 0); err != nil {
					return err
				}
				if err := tx.Touch(ctx, tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "group", ID: fmt.Sprint(g)},
					Relation: "member",
					Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprint(i)},
				}); err != nil {
					return err
				}
			}
			return nil
		})
		return err
	}
	if err := write(1); err != nil {
		t.Fatal(err)
	}

	// check reads rev and verifies that it is exactly one whole revision.
	check := func(rev store.Revision, rd store.Reader) error {
		n := 0
		for r, err := range rd.QueryRelationships(ctx, tuple.Filter{ResourceType: "group"}, store.QueryOptions{}) {
			if err != nil {
				return err
			}
			if r.Subject.ID != fmt.Sprint(rev) {
				return fmt.Errorf("at revision %d: %s", rev, r)
			}
			n++
		}
		if n != groups {
			return fmt.Errorf("at revision %d: %d members, want %d", rev, n, groups)
		}
		return nil
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, readers+2)
	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		defer close(done)
		for i := 2; i <= writes; i++ {
			clock.Advance(time.Second)
			if err := write(i); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Add(1)
	go func() { // GC
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := s.GC(ctx, clock.Now()); err != nil {
				errs <- err
				return
			}
		}
	}()
	compacted := 0
	var mu sync.Mutex
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				head, _ := s.HeadRevision(ctx)
				// An old revision too: the one most likely to be collected.
				for _, rev := range []store.Revision{head, max(s.Horizon(), 1)} {
					rd, err := s.Snapshot(ctx, rev)
					if err == nil {
						err = check(rev, rd)
					}
					if errors.Is(err, store.ErrRevisionCompacted) {
						mu.Lock()
						compacted++
						mu.Unlock()
						continue
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A last GC, now that nothing runs: write i committed at t0+(i-1)s, so
	// with a 10s window the horizon is revision writes-10.
	stats, err := s.GC(ctx, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	const horizon = writes - 10
	if stats.Horizon != horizon {
		t.Errorf("horizon = %d, want %d", stats.Horizon, horizon)
	}
	// Left: the members of revisions horizon..writes, and the tombstones
	// that ended them after the horizon.
	if got, want := rawKeys(t, s, tagForward), groups*((writes-horizon+1)+(writes-horizon)); got != want {
		t.Errorf("%d forward entries left, want %d", got, want)
	}
	if err := check(writes, mustReader(t, s, writes)); err != nil {
		t.Error(err)
	}
	t.Logf("%d reads hit a compacted revision", compacted)
}

// TestConcurrentWriters: with group commit, every acknowledged revision is
// distinct, readable at once, and holds its write; nothing is lost.
func TestConcurrentWriters(t *testing.T) {
	const writers, each = 4, 25
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{GCInterval: -1, Logger: quietLogger()}) // real fsyncs
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	revs := make(chan store.Revision, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("w%d-%d", w, i)},
					Relation: "viewer",
					Subject:  tuple.SubjectRef{Type: "user", ID: "a"},
				}
				rev, err := s.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error { return tx.Touch(ctx, r) })
				if err != nil {
					errs <- err
					return
				}
				// Acknowledged means readable, with the write in it.
				rd, err := s.Snapshot(ctx, rev)
				if err != nil {
					errs <- fmt.Errorf("Snapshot(%d) right after its Update: %w", rev, err)
					return
				}
				found := false
				for _, err := range rd.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc", ResourceID: r.Resource.ID}, store.QueryOptions{}) {
					found = err == nil
				}
				if !found {
					errs <- fmt.Errorf("revision %d does not show its own write %s", rev, r)
					return
				}
				revs <- rev
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(revs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[store.Revision]bool{}
	for rev := range revs {
		if seen[rev] {
			t.Errorf("revision %d acknowledged twice", rev)
		}
		seen[rev] = true
	}
	if head, _ := s.HeadRevision(ctx); head != writers*each || len(seen) != writers*each {
		t.Errorf("head %d, %d distinct revisions; want %d", head, len(seen), writers*each)
	}
}
