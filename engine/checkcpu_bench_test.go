package engine_test

import (
	"context"
	"testing"

	"github.com/pemba-authz/pemba/engine"
)

// BenchmarkCheckCPU measures the CPU time of one check, all of the
// process's threads (GC included), as cpu-ns/op beside the wall time: on a
// shared machine CPU per check moves less with the load than ns/op does.
// "warm" is answered from the result cache; "uncached" evaluates four
// subproblems (view, viewer, banned, a group's members) and reads the store.
// docs/benchmarks.md (Tracing) compares it with tracing off against the
// tree before tracing, and with tracing on (BenchmarkCheckTraced).
func BenchmarkCheckCPU(b *testing.B) {
	for _, cached := range []bool{true, false} {
		name := "warm"
		if !cached {
			name = "uncached"
		}
		b.Run(name, func(b *testing.B) { benchCheckCPU(b, engine.Options{}, cached) })
	}
}

// benchCheckCPU runs one check in a loop on an engine made with opts,
// the result cache on or off.
func benchCheckCPU(b *testing.B, opts engine.Options, cached bool) {
	if !cached {
		opts.CacheBytes = -1
	}
	opts.Concurrency = 1
	f := newFixture(b, opts)
	f.touch("group:eng#member@user:tom", "document:d#viewer@group:eng#member", "document:d#banned@user:eve")
	r := mustParse(b, "document:d#view@user:tom")
	req := engine.CheckRequest{Consistency: engine.MinimizeLatency(), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}}
	ctx := context.Background()
	if _, err := f.eng.Check(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.eng.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}
