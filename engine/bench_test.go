package engine_test

import (
	"fmt"
	"testing"

	"github.com/pemba-authz/pemba/engine"
)

// BenchmarkCheck measures a check through the facade in each consistency
// mode: the facade's own cost is resolving the revision, opening the
// snapshot and finding the schema in force.
func BenchmarkCheck(b *testing.B) {
	for _, mode := range []string{"minimize_latency", "at_least_as_fresh", "fully_consistent"} {
		b.Run(mode, func(b *testing.B) {
			f := newFixture(b, engine.Options{})
			var z string
			for i := 0; i < 100; i++ {
				z = f.touch(fmt.Sprintf("document:%d#viewer@user:u%d", i, i))
			}
			c := map[string]engine.Consistency{
				"minimize_latency":  engine.MinimizeLatency(),
				"at_least_as_fresh": engine.AtLeastAsFresh(z),
				"fully_consistent":  engine.FullyConsistent(),
			}[mode]
			r := mustParse(f.t, "document:7#view@user:u7")
			req := engine.CheckRequest{Consistency: c, CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}}
			b.ResetTimer()
			for b.Loop() {
				if _, err := f.eng.Check(f.ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckWarmParallel is the warm-cache target of issue #6: the same
// few hundred minimize_latency checks repeated from every P, so each check
// is answered from the result cache and the facade's per-call cost is what
// is measured.
func BenchmarkCheckWarmParallel(b *testing.B) {
	f := newFixture(b, engine.Options{})
	const n = 256
	rels := make([]string, 0, n)
	for i := 0; i < n; i++ {
		rels = append(rels, fmt.Sprintf("document:%d#viewer@user:u%d", i, i))
	}
	f.touch(rels...)
	reqs := make([]engine.CheckRequest, n)
	for i := range reqs {
		r := mustParse(f.t, fmt.Sprintf("document:%d#view@user:u%d", i, (i*7)%n))
		reqs[i] = engine.CheckRequest{Consistency: engine.MinimizeLatency(), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}}
	}
	for _, req := range reqs { // warm the cache
		if _, err := f.eng.Check(f.ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := f.eng.Check(f.ctx, reqs[i%n]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
