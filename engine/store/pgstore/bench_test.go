package pgstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// benchStore returns a store holding n relationships from planData (10
// subjects per document).
func benchStore(b *testing.B, n int) *Store {
	b.Helper()
	st, _ := openTest(b, Options{})
	if _, _, err := st.Import(context.Background(), store.WriteMeta{}, planData(n)); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkPointRead is Check's innermost query: one relationship by its
// full key, at the head revision.
func BenchmarkPointRead(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b, 100_000)
	r, err := st.Snapshot(ctx, store.Revision(st.head.Load()))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		doc := i % 10_000
		f := tuple.Filter{ResourceType: "doc", ResourceID: fmt.Sprint(doc), Relation: "viewer",
			Subject: &tuple.SubjectFilter{Type: "user", ID: fmt.Sprint((doc * 10) % 997), Relation: tuple.Ellipsis}}
		for _, err := range r.QueryRelationships(ctx, f, store.QueryOptions{Now: now}) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkScan reads every subject of 100 resources per operation in one
// resource-type scan (pages of 500), about 1,000 relationships.
func BenchmarkScan(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b, 100_000)
	r, err := st.Snapshot(ctx, store.Revision(st.head.Load()))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	n := 0
	for i := 0; b.Loop(); i++ {
		after := tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i % 9000)}}
		for _, err := range r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{After: &after, Limit: 1000}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rels/s")
}

// BenchmarkWrite commits one Touch per Update (each a durable commit).
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	st, _ := openTest(b, Options{})
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rel := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i)}, Relation: "viewer",
			Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint(i % 100)}}
		if _, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
			return tx.Touch(ctx, rel)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteParallel commits single-Touch Updates from 8 goroutines
// per CPU: writers serialise on the revision counter, so this measures the
// write throughput ceiling, not scaling.
func BenchmarkWriteParallel(b *testing.B) {
	ctx := context.Background()
	st, _ := openTest(b, Options{MaxConns: 16})
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			rel := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i)}, Relation: "viewer",
				Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint(i % 100)}}
			if _, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
				return tx.Touch(ctx, rel)
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// BenchmarkImport imports 100,000 relationships per operation into a
// fresh store and reports the rate.
func BenchmarkImport(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	total := 0
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		st, _ := openTest(b, Options{})
		b.StartTimer()
		start := time.Now()
		if _, _, err := st.Import(ctx, store.WriteMeta{}, planData(n)); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		total += n
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "rels/s")
}
