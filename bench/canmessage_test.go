package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine"
)

// BenchmarkCanMessageCold is the cold-cache target of issue #6: the
// enterprise workload's can_message checks (small scale), in process, with
// the result cache disabled and the store warm (every check run once before
// timing). It reports the p50 and p99 latency of one check.
func BenchmarkCanMessageCold(b *testing.B) {
	for _, st := range []string{"memory", "pebble"} {
		b.Run(st, func(b *testing.B) {
			ctx := context.Background()
			w, err := workload.New("enterprise", workload.Small, 1)
			if err != nil {
				b.Fatal(err)
			}
			opts := InProcessOptions{Store: st, Engine: engine.Options{CacheBytes: -1}}
			if st == "pebble" {
				opts.Dir = b.TempDir()
			}
			t, err := NewInProcess(ctx, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer t.Close()
			if _, err := t.Load(ctx, w.Schema(), w.Relationships()); err != nil {
				b.Fatal(err)
			}
			src := w.Source(0)
			var reqs []workload.Request
			for len(reqs) < 1000 {
				if r := src.Next(workload.OpCheck); r.Permission == "can_message" {
					reqs = append(reqs, r)
				}
			}
			for i := range reqs { // warm the store
				if _, err := t.Do(ctx, &reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			var lat []time.Duration
			i := 0
			for b.Loop() {
				start := time.Now()
				if _, err := t.Do(ctx, &reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
