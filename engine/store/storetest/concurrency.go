package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func (s *suite) testConcurrency(t *testing.T) {
	ctx := context.Background()
	st, _ := s.open(t, Config{})
	const writers, perWriter, readers = 4, 25, 2
	total := writers * perWriter

	var (
		mu   sync.Mutex
		revs []store.Revision
		wg   sync.WaitGroup
	)
	errs := make(chan error, writers+readers)
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				rel := tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("w%d_%d", w, i)}, Relation: "viewer",
					Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint(w)},
				}
				rev, err := st.Update(ctx, store.WriteMeta{Caller: fmt.Sprint(w)}, func(ctx context.Context, tx store.Tx) error {
					return tx.Touch(ctx, rel)
				})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				revs = append(revs, rev)
				mu.Unlock()
			}
		}()
	}
	// Readers check an invariant that holds at every revision: each
	// Update added exactly one relationship.
	var rg sync.WaitGroup
	for reader := range readers {
		paged := reader%2 == 1 // odd readers page through by 7
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				head, err := st.HeadRevision(ctx)
				if err != nil {
					errs <- err
					return
				}
				r, err := st.Snapshot(ctx, head)
				if err != nil {
					errs <- err
					return
				}
				var got []tuple.Relationship
				if paged {
					got, err = collectPaged(ctx, r, 7)
				} else {
					got, err = Collect(r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}))
				}
				if err == nil && len(got) != int(head) {
					err = fmt.Errorf("reader at %d saw %d relationships", head, len(got))
				}
				if err == nil {
					got, err = Collect(r.ReverseQueryRelationships(ctx, tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}, store.QueryOptions{}))
					if err == nil && len(got) != int(head) {
						err = fmt.Errorf("reverse reader at %d saw %d relationships", head, len(got))
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	slices.Sort(revs)
	for i, rev := range revs {
		if rev != store.Revision(i+1) {
			t.Fatalf("concurrent updates committed revisions %v, want 1..%d each once", revs, total)
		}
	}
	if len(revs) != total {
		t.Fatalf("%d updates committed, want %d", len(revs), total)
	}
	got, err := Collect(MustSnapshot(t, st, store.Revision(total)).QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}))
	if err != nil || len(got) != total {
		t.Errorf("after concurrent updates: %d relationships (err %v), want %d", len(got), err, total)
	}
}

func (s *suite) testClose(t *testing.T) {
	ctx := context.Background()
	st, _ := s.open(t, Config{})
	MustTouch(t, st, MustParse(t, "doc:1#viewer@user:1")...)
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := st.HeadRevision(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("HeadRevision after Close: %v, want ErrClosed", err)
	}
	if _, err := st.Snapshot(ctx, 1); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Snapshot after Close: %v, want ErrClosed", err)
	}
	if _, err := st.Update(ctx, store.WriteMeta{}, func(context.Context, store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
	}
}

// collectPaged reads every doc relationship at r in pages of k.
func collectPaged(ctx context.Context, r store.Reader, k int) ([]tuple.Relationship, error) {
	var out []tuple.Relationship
	opts := store.QueryOptions{Limit: k}
	for {
		page, err := Collect(r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, opts))
		if err != nil {
			return out, err
		}
		out = append(out, page...)
		if len(page) < k {
			return out, nil
		}
		last := page[len(page)-1].Key()
		opts.After = &last
	}
}
