package pebblestore

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Benchmarks run on the real filesystem (b.TempDir), so that fsync and
// block reads cost what they cost in production.
//
//	go test ./engine/store/pebblestore -run '^$' -bench . -benchtime 2s

// processCPU returns the CPU time this process has used (user + system,
// every goroutine, Pebble's background work included). On a shared
// machine CPU time per operation is steadier than wall time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start.
func reportCPU(b *testing.B, start time.Duration, ops int) {
	b.ReportMetric(float64(processCPU(b)-start)/float64(ops), "cpu-ns/op")
}

func benchOpen(b *testing.B, noSync bool) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{GCInterval: -1, NoSync: noSync, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchRels yields docs documents with subjects viewers each, then one
// document with 100 and one with 10,000 viewers, then 100 documents that
// one user can view.
func benchRels(docs, subjects int) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		rel := func(doc, user string) bool {
			return yield(tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "document", ID: doc},
				Relation: "viewer",
				Subject:  tuple.SubjectRef{Type: "user", ID: user},
			}, nil)
		}
		for d := range docs {
			for u := range subjects {
				if !rel(fmt.Sprintf("doc%08d", d), fmt.Sprintf("user%08d", (d*7+u*13)%1000003)) {
					return
				}
			}
		}
		for _, n := range []int{100, 10000} {
			for u := range n {
				if !rel(fmt.Sprintf("wide%d", n), fmt.Sprintf("user%08d", u)) {
					return
				}
			}
		}
		for d := range 100 {
			if !rel(fmt.Sprintf("shared%03d", d), "reader") {
				return
			}
		}
	}
}

// benchStore holds 100,000 small relationships plus the wide documents.
func benchStore(b *testing.B) *Store {
	b.Helper()
	s := benchOpen(b, true)
	if _, _, err := s.Import(context.Background(), store.WriteMeta{}, benchRels(10000, 10)); err != nil {
		b.Fatal(err)
	}
	// A few later revisions, so reads skip versions.
	for i := range 10 {
		if _, err := s.Update(context.Background(), store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
			return tx.Touch(ctx, tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%08d", i)},
				Relation: "viewer",
				Subject:  tuple.SubjectRef{Type: "user", ID: "late"},
			})
		}); err != nil {
			b.Fatal(err)
		}
	}
	// Read from sstables, as a long-running store mostly does, not from
	// the memtable.
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkPointRead(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	head, _ := s.HeadRevision(ctx)
	rd, _ := s.Snapshot(ctx, head)
	var filters []tuple.Filter
	for d := 0; d < 10000; d += 97 {
		for u := range 10 {
			filters = append(filters, tuple.Filter{
				ResourceType: "document", ResourceID: fmt.Sprintf("doc%08d", d), Relation: "viewer",
				Subject: &tuple.SubjectFilter{Type: "user", ID: fmt.Sprintf("user%08d", (d*7+u*13)%1000003), Relation: tuple.Ellipsis},
			})
		}
	}
	found := 0
	cpu := processCPU(b)
	for i := 0; b.Loop(); i++ {
		for _, err := range rd.QueryRelationships(ctx, filters[i%len(filters)], store.QueryOptions{}) {
			if err != nil {
				b.Fatal(err)
			}
			found++
		}
	}
	reportCPU(b, cpu, b.N)
	m := s.db.Metrics()
	b.Logf("block cache hits %d misses %d size %d count %d; file cache hits %d misses %d", m.BlockCache.Hits, m.BlockCache.Misses, m.BlockCache.Size, m.BlockCache.Count, m.FileCache.Hits, m.FileCache.Misses)
	if found == 0 {
		b.Fatal("found nothing")
	}
}

// BenchmarkReadRelationship is BenchmarkPointRead through the evaluator's
// point reads (store.PointReader), and BenchmarkAppendScan its queries of
// a document's viewers of one subject type (store.BatchReader), the two
// store calls an uncached check makes most.
func BenchmarkReadRelationship(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	head, _ := s.HeadRevision(ctx)
	rd, _ := s.Snapshot(ctx, head)
	pr := rd.(store.PointReader)
	var keys []tuple.Key
	for d := 0; d < 10000; d += 97 {
		for u := range 10 {
			keys = append(keys, tuple.Key{
				Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%08d", d)}, Relation: "viewer",
				Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("user%08d", (d*7+u*13+u%2)%1000003)},
			})
		}
	}
	found := 0
	cpu := processCPU(b)
	for i := 0; b.Loop(); i++ {
		_, ok, err := pr.ReadRelationship(ctx, keys[i%len(keys)], time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			found++
		}
	}
	reportCPU(b, cpu, b.N)
	if found == 0 || found == b.N {
		b.Fatalf("found %d of %d; want some", found, b.N)
	}
}

func BenchmarkAppendScan(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	head, _ := s.HeadRevision(ctx)
	rd, _ := s.Snapshot(ctx, head)
	br := rd.(store.BatchReader)
	var filters []tuple.Filter
	for d := 0; d < 10000; d += 97 {
		filters = append(filters, tuple.Filter{ResourceType: "document", ResourceID: fmt.Sprintf("doc%08d", d), Relation: "viewer",
			Subject: &tuple.SubjectFilter{Type: "user"}})
	}
	var buf []tuple.Relationship
	cpu := processCPU(b)
	for i := 0; b.Loop(); i++ {
		var err error
		if buf, err = br.AppendRelationships(ctx, buf[:0], filters[i%len(filters)], store.QueryOptions{}); err != nil {
			b.Fatal(err)
		}
		if len(buf) == 0 {
			b.Fatal("found nothing")
		}
	}
	reportCPU(b, cpu, b.N)
}

func BenchmarkScan(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	head, _ := s.HeadRevision(ctx)
	rd, _ := s.Snapshot(ctx, head)
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("subjects=%d", n), func(b *testing.B) {
			f := tuple.Filter{ResourceType: "document", ResourceID: fmt.Sprintf("wide%d", n), Relation: "viewer"}
			cpu := processCPU(b)
			for b.Loop() {
				got := 0
				for _, err := range rd.QueryRelationships(ctx, f, store.QueryOptions{}) {
					if err != nil {
						b.Fatal(err)
					}
					got++
				}
				if got != n {
					b.Fatalf("got %d, want %d", got, n)
				}
			}
			reportCPU(b, cpu, b.N)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/rel")
		})
	}
}

func BenchmarkReverseScan(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	head, _ := s.HeadRevision(ctx)
	rd, _ := s.Snapshot(ctx, head)
	f := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user", ID: "reader", Relation: tuple.Ellipsis}, ResourceType: "document", Relation: "viewer"}
	cpu := processCPU(b)
	for b.Loop() {
		got := 0
		for _, err := range rd.ReverseQueryRelationships(ctx, f, store.QueryOptions{}) {
			if err != nil {
				b.Fatal(err)
			}
			got++
		}
		if got != 100 {
			b.Fatalf("got %d, want 100", got)
		}
	}
	reportCPU(b, cpu, b.N)
}

func BenchmarkWrite(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			s := benchOpen(b, noSync)
			ctx := context.Background()
			cpu := processCPU(b)
			for i := 0; b.Loop(); i++ {
				if _, err := s.Update(ctx, store.WriteMeta{Caller: "bench"}, func(ctx context.Context, tx store.Tx) error {
					return tx.Touch(ctx, tuple.Relationship{
						Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%d", i)},
						Relation: "viewer",
						Subject:  tuple.SubjectRef{Type: "user", ID: "anne"},
					})
				}); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu, b.N)
		})
	}
}

// BenchmarkWriteParallel: concurrent durable writers share fsyncs.
func BenchmarkWriteParallel(b *testing.B) {
	s := benchOpen(b, false)
	ctx := context.Background()
	var id atomic.Int64
	b.SetParallelism(8) // 16 writers on 2 cores
	cpu := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := id.Add(1)
			if _, err := s.Update(ctx, store.WriteMeta{Caller: "bench"}, func(ctx context.Context, tx store.Tx) error {
				return tx.Touch(ctx, tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%d", i)},
					Relation: "viewer",
					Subject:  tuple.SubjectRef{Type: "user", ID: "anne"},
				})
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportCPU(b, cpu, b.N)
}

// BenchmarkImport imports 1,000,000 relationships per iteration into a
// fresh store; run it with -benchtime 1x.
func BenchmarkImport(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		b.StopTimer()
		s := benchOpen(b, false)
		b.StartTimer()
		start, cpu := time.Now(), processCPU(b)
		_, got, err := s.Import(context.Background(), store.WriteMeta{}, benchRels(n/10, 10))
		if err != nil || got != n+10200 {
			b.Fatalf("Import = %d, %v", got, err)
		}
		b.ReportMetric(float64(got)/time.Since(start).Seconds(), "rels/s")
		b.ReportMetric(float64(processCPU(b)-cpu)/float64(got), "cpu-ns/rel")
		// Close now, so this store's compactions do not slow the next
		// iteration.
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkWriteBatch commits Updates of n Touches without fsync, so that
// the CPU cost of a commit (the audit entry's encoding, hash and keys
// included) is not hidden behind the disk.
func BenchmarkWriteBatch(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := benchOpen(b, true)
			ctx := context.Background()
			meta := store.WriteMeta{Caller: "bench", RequestID: "0123456789abcdef0123456789abcdef", Reason: "benchmark", Operation: "WriteRelationships"}
			b.ReportAllocs()
			cpu := processCPU(b)
			for i := 0; b.Loop(); i++ {
				if _, err := s.Update(ctx, meta, func(ctx context.Context, tx store.Tx) error {
					for j := range n {
						if err := tx.Touch(ctx, tuple.Relationship{
							Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%d", i)},
							Relation: "viewer",
							Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", j)},
						}); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu, b.N)
		})
	}
}
