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
			req := engine.CheckRequest{Consistency: c, Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}
			b.ResetTimer()
			for b.Loop() {
				if _, err := f.eng.Check(f.ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
