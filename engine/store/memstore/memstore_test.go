package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/storetest"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func newStore(t testing.TB, cfg storetest.Config) store.Store {
	st := memstore.New(memstore.Options{GCWindow: cfg.GCWindow, Now: cfg.Now, MaxBatchOps: cfg.MaxBatchOps, AuditRetention: cfg.AuditRetention})
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newStore)
}

func TestIdentity(t *testing.T) {
	a, b := memstore.New(memstore.Options{}), memstore.New(memstore.Options{})
	if a.Kind() != "memory" {
		t.Errorf("Kind() = %q, want memory", a.Kind())
	}
	if len(a.ID()) != 32 || strings.Trim(a.ID(), "0123456789abcdef") != "" {
		t.Errorf("ID() = %q, want 32 hex digits", a.ID())
	}
	if a.ID() == b.ID() {
		t.Errorf("two stores share ID %q", a.ID())
	}
}

// TestCloseEndsWatch checks that a waiting watcher ends with ErrClosed.
func TestCloseEndsWatch(t *testing.T) {
	st := memstore.New(memstore.Options{})
	errc := make(chan error, 1)
	go func() {
		for _, err := range st.Watch(context.Background(), 0) {
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, store.ErrClosed) {
		t.Errorf("watch after Close ended with %v, want ErrClosed", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestTxAfterUpdate checks that a transaction kept past its Update refuses
// to write.
func TestTxAfterUpdate(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	var kept store.Tx
	storetest.MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error { kept = tx; return nil })
	rel := storetest.MustParse(t, "doc:1#viewer@user:1")[0]
	if err := kept.Touch(ctx, rel); err == nil {
		t.Errorf("Touch on a finished transaction succeeded")
	}
	if _, err := kept.DeleteMatching(ctx, tuple.Filter{}, 0); err == nil {
		t.Errorf("DeleteMatching on a finished transaction succeeded")
	}
	if _, err := storetest.Collect(kept.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{})); err == nil {
		t.Errorf("QueryRelationships on a finished transaction succeeded")
	}
	if got := storetest.MustHead(t, st); got != 1 {
		t.Errorf("head = %d, want 1", got)
	}
}

// benchStore returns a store holding docs×users viewer relationships:
// doc:d#viewer@user:u for every d < docs and u < users.
func benchStore(b *testing.B, docs, users int) *memstore.Store {
	st := memstore.New(memstore.Options{})
	b.Cleanup(func() { _ = st.Close() })
	rels := func(yield func(tuple.Relationship, error) bool) {
		for d := range docs {
			for u := range users {
				r := tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(d)}, Relation: "viewer",
					Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint(u)},
				}
				if !yield(r, nil) {
					return
				}
			}
		}
	}
	if _, _, err := st.Import(context.Background(), store.WriteMeta{}, rels); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkQuery measures queries against 100,000 relationships
// (100 documents × 1,000 users): a point lookup of one relationship and
// scans of the 1,000 subjects of one document (forward) and of the 100
// documents of one user (reverse).
func BenchmarkQuery(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b, 100, 1000)
	r, err := st.Snapshot(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		want int
		run  func() iter.Seq2[tuple.Relationship, error]
	}{
		{"point", 1, func() iter.Seq2[tuple.Relationship, error] {
			return r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc", ResourceID: "42", Relation: "viewer",
				Subject: &tuple.SubjectFilter{Type: "user", ID: "777", Relation: tuple.Ellipsis}}, store.QueryOptions{})
		}},
		{"reverse-point", 1, func() iter.Seq2[tuple.Relationship, error] {
			return r.ReverseQueryRelationships(ctx, tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user", ID: "777", Relation: tuple.Ellipsis},
				ResourceType: "doc", Relation: "viewer"}, store.QueryOptions{Limit: 1})
		}},
		{"scan-1000-subjects", 1000, func() iter.Seq2[tuple.Relationship, error] {
			return r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc", ResourceID: "42", Relation: "viewer"}, store.QueryOptions{})
		}},
		{"reverse-scan-100-resources", 100, func() iter.Seq2[tuple.Relationship, error] {
			return r.ReverseQueryRelationships(ctx, tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user", ID: "777"}, ResourceType: "doc"}, store.QueryOptions{})
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for _, err := range c.run() {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != c.want {
					b.Fatalf("got %d relationships, want %d", n, c.want)
				}
			}
		})
	}
}

// BenchmarkTouch measures a one-relationship Update on a store that holds
// 100,000 relationships.
func BenchmarkTouch(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b, 100, 1000)
	i := 0
	for b.Loop() {
		r := tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i % 1000)}, Relation: "editor",
			Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint(i)},
		}
		i++
		if _, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
			return tx.Touch(ctx, r)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCommitTimeMonotonic checks that commit times never go backwards even
// when the injected clock does, so that GC's "newest revision committed
// at or before" stays well defined.
func TestCommitTimeMonotonic(t *testing.T) {
	clock := storetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	st := memstore.New(memstore.Options{Now: clock.Now})
	rel := storetest.MustParse(t, "doc:1#viewer@user:1")
	steps := []time.Duration{time.Hour, -2 * time.Hour, time.Minute, 3 * time.Hour}
	for _, d := range steps {
		clock.Advance(d)
		storetest.MustTouch(t, st, rel...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var times []time.Time
	for cs, err := range st.Watch(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, cs.Time)
		if len(times) == len(steps) {
			break
		}
	}
	for i := 1; i < len(times); i++ {
		if times[i].Before(times[i-1]) {
			t.Errorf("commit times %v go backwards", times)
		}
	}
	if !times[1].Equal(times[0]) || !times[3].After(times[2]) {
		t.Errorf("commit times %v: want the backward step clamped and later steps kept", times)
	}
}

// BenchmarkImport measures loading 100,000 relationships with Import.
func BenchmarkImport(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchStore(b, 100, 1000)
	}
}

func TestAuditTamper(t *testing.T) {
	storetest.RunAuditTamper(t, newStore, func(t testing.TB, st store.Store, rev store.Revision, edit func([]byte) []byte) {
		s := st.(*memstore.Store)
		var enc []byte
		_, _, recs, err := s.AuditChain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for r, err := range recs {
			if err != nil {
				t.Fatal(err)
			}
			if r.Revision == rev {
				enc = r.Encoding
			}
		}
		if !s.TamperAudit(rev, edit(enc)) {
			t.Fatalf("no audit entry at revision %d", rev)
		}
	})
}
