package bench

import (
	"context"
	"testing"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine"
)

// BenchmarkColdCheck measures the uncached check path of issue #17: each
// stress workload and the enterprise one at small scale, in a Pebble store
// reopened after its load (so that reads go through sstables, as in a
// `pemba bench run` on a reused data directory), result cache off, one
// goroutine. It reports the process's CPU time per check (on a shared
// machine the steadier figure), and with -benchmem the allocations:
//
//	go test ./bench -run '^$' -bench ColdCheck -benchmem -benchtime 2000x
func BenchmarkColdCheck(b *testing.B) {
	for _, name := range []string{"enterprise", "deep-chain", "wide-group", "wide-arrow"} {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			w, err := workload.New(name, workload.Small, 1)
			if err != nil {
				b.Fatal(err)
			}
			opts := InProcessOptions{Store: "pebble", Dir: b.TempDir(), Engine: engine.Options{CacheBytes: -1}}
			t, err := NewInProcess(ctx, opts)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := t.Load(ctx, w.Schema(), w.Relationships()); err != nil {
				b.Fatal(err)
			}
			// The nested-group index is rebuilt in the background after
			// an import: measure with it, as pemba bench run does.
			if err := t.e.WaitNestedIndex(ctx); err != nil {
				b.Fatal(err)
			}
			if err := t.Close(); err != nil {
				b.Fatal(err)
			}
			if t, err = NewInProcess(ctx, opts); err != nil {
				b.Fatal(err)
			}
			defer t.Close()
			if err := t.e.WaitNestedIndex(ctx); err != nil {
				b.Fatal(err)
			}
			src := w.Source(0)
			reqs := make([]workload.Request, 500)
			for i := range reqs {
				reqs[i] = src.Next(workload.OpCheck)
			}
			for i := range reqs { // warm the block cache
				if _, err := t.Do(ctx, &reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			u0, err := readUsage()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				out, err := t.Do(ctx, &reqs[i%len(reqs)])
				if err != nil {
					b.Fatal(err)
				}
				if want := reqs[i%len(reqs)].Expect; want != workload.ExpectUnknown && out.Allowed != (want == workload.ExpectAllowed) {
					b.Fatalf("%v: allowed %v", reqs[i%len(reqs)], out.Allowed)
				}
				i++
			}
			u1, err := readUsage()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((u1.user+u1.sys-u0.user-u0.sys).Microseconds())/float64(i), "cpu-µs/op")
		})
	}
}
