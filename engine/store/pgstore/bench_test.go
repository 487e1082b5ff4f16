package pgstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
// full key, at the head revision, through QueryRelationships with a
// filter naming the whole key (query) and through store.PointReader
// (point). Besides wall time per read (one round trip each) it reports
// the CPU per read of this process (cpu-µs/op) and of the PostgreSQL
// backends serving it (pg-cpu-µs/op), which the wall time hides on a
// shared machine.
func BenchmarkPointRead(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b, 100_000)
	r, err := st.Snapshot(ctx, store.Revision(st.head.Load()))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	key := func(i int) tuple.Key {
		doc := i % 10_000
		return tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(doc)}, Relation: "viewer",
			Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint((doc * 10) % 997)}}
	}
	b.Run("query", func(b *testing.B) {
		cpu := startCPU(b, st)
		for i := 0; b.Loop(); i++ {
			k := key(i)
			f := tuple.Filter{ResourceType: k.Resource.Type, ResourceID: k.Resource.ID, Relation: k.Relation,
				Subject: &tuple.SubjectFilter{Type: k.Subject.Type, ID: k.Subject.ID, Relation: tuple.Ellipsis}}
			for _, err := range r.QueryRelationships(ctx, f, store.QueryOptions{Now: now}) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		cpu.report(b)
	})
	b.Run("point", func(b *testing.B) {
		pr := r.(store.PointReader)
		cpu := startCPU(b, st)
		for i := 0; b.Loop(); i++ {
			if _, _, err := pr.ReadRelationship(ctx, key(i), now); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
}

// BenchmarkSubjects is Check's read of a relation's subject sets: the
// ten subjects of one document, through QueryRelationships (query) and
// store.BatchReader (append).
func BenchmarkSubjects(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b, 100_000)
	r, err := st.Snapshot(ctx, store.Revision(st.head.Load()))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	filter := func(i int) tuple.Filter {
		return tuple.Filter{ResourceType: "doc", ResourceID: fmt.Sprint(i % 10_000), Relation: "viewer"}
	}
	b.Run("query", func(b *testing.B) {
		cpu := startCPU(b, st)
		for i := 0; b.Loop(); i++ {
			for _, err := range r.QueryRelationships(ctx, filter(i), store.QueryOptions{Now: now}) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		cpu.report(b)
	})
	b.Run("append", func(b *testing.B) {
		br := r.(store.BatchReader)
		var buf []tuple.Relationship
		cpu := startCPU(b, st)
		for i := 0; b.Loop(); i++ {
			if buf, err = br.AppendRelationships(ctx, buf[:0], filter(i), store.QueryOptions{Now: now}); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
}

// cpuMeter measures the CPU time of this process and of the PostgreSQL
// backends connected to the store's database (read from /proc: the
// server runs on this machine in the benchmarks), for per-op figures.
type cpuMeter struct {
	st       *Store
	self, pg time.Duration
}

func startCPU(b *testing.B, st *Store) *cpuMeter {
	b.Helper()
	m := &cpuMeter{st: st}
	m.self, m.pg = selfCPU(), m.backendsCPU(b)
	return m
}

func (m *cpuMeter) report(b *testing.B) {
	b.Helper()
	self, pg := selfCPU()-m.self, m.backendsCPU(b)-m.pg
	if n := b.N; n > 0 {
		b.ReportMetric(float64(self.Microseconds())/float64(n), "cpu-µs/op")
		b.ReportMetric(float64(pg.Microseconds())/float64(n), "pg-cpu-µs/op")
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendsCPU sums the CPU time of the backends connected to the store's
// database, from /proc/PID/stat (utime and stime, in clock ticks of
// 1/100 s); 0 when /proc cannot tell (another machine).
func (m *cpuMeter) backendsCPU(b *testing.B) time.Duration {
	b.Helper()
	rows, err := m.st.pool.Query(context.Background(), benchBackendPIDs)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	var ticks int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		// Fields after the command name (which may hold spaces): state
		// is field 3, utime 14, stime 15.
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// benchBackendPIDs lists the backends connected to the current database.
const benchBackendPIDs = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"

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
