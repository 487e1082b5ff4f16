package engine_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/engine/validation"
	"github.com/pemba-authz/pemba/examples/enterprise"
)

// BenchmarkPermissionSet compares a permission set (every permission of
// crm_customer for one employee, on 1 and on 4 customers) with the same
// cells asked as separate checks, on the enterprise example's data: cold
// (no result cache, every call computes) and warm (the cache holds every
// answer after the first round); and the set with Explain with the same
// cells asked as separate Explains.
func BenchmarkPermissionSet(b *testing.B) {
	f, err := validation.Parse("enterprise.yaml", []byte(enterprise.ValidationFile()))
	if err != nil {
		b.Fatal(err)
	}
	rels := make([]tuple.Relationship, len(f.Relationships))
	for i, r := range f.Relationships {
		rels[i] = r.Relationship
	}
	customers := []string{"c42", "c7", "c13", "c99"}
	sub := tuple.SubjectRef{Type: "employee", ID: "li"}
	for _, cache := range []struct {
		name  string
		bytes int64
	}{{"cold", -1}, {"warm", 64 << 20}} {
		eng, st := openCounting(b, enterprise.Schema(), rels, newClock(), cache.bytes)
		for _, rows := range []int{1, 4} {
			var res []tuple.ObjectRef
			for _, id := range customers[:rows] {
				res = append(res, tuple.ObjectRef{Type: "crm_customer", ID: id})
			}
			set := engine.PermissionSetRequest{Resources: res, Subject: sub}
			first, err := eng.CheckPermissionSet(b.Context(), set)
			if err != nil {
				b.Fatal(err)
			}
			var checks []engine.CheckRequest
			for _, r := range res {
				for _, p := range first.Permissions {
					checks = append(checks, engine.CheckRequest{CheckRequest: engine.CheckQuery{Resource: r, Permission: p, Subject: sub}})
				}
			}
			b.Run(fmt.Sprintf("%s/cells=%d/set", cache.name, len(checks)), func(b *testing.B) {
				measure(b, st, func() {
					if _, err := eng.CheckPermissionSet(b.Context(), set); err != nil {
						b.Fatal(err)
					}
				})
			})
			b.Run(fmt.Sprintf("%s/cells=%d/checks", cache.name, len(checks)), func(b *testing.B) {
				measure(b, st, func() {
					for _, c := range checks {
						if _, err := eng.Check(b.Context(), c); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
			// Explained: the set with every cell's explanation, against
			// N separate Explains.
			explained := set
			explained.Explain = true
			b.Run(fmt.Sprintf("%s/cells=%d/set_explain", cache.name, len(checks)), func(b *testing.B) {
				measure(b, st, func() {
					if _, err := eng.CheckPermissionSet(b.Context(), explained); err != nil {
						b.Fatal(err)
					}
				})
			})
			b.Run(fmt.Sprintf("%s/cells=%d/explains", cache.name, len(checks)), func(b *testing.B) {
				measure(b, st, func() {
					for _, c := range checks {
						if _, err := eng.Explain(b.Context(), c); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// BenchmarkContextualCheck measures a warm check of crm_customer:c42#view
// with contextual relationships: none; one the permission cannot reach (a
// platform reviewer: the answer still comes from the cache); one it can
// reach (a region viewer: the permission and what it reaches through
// region are evaluated, what it does not reach is still cached).
func BenchmarkContextualCheck(b *testing.B) {
	f, err := validation.Parse("enterprise.yaml", []byte(enterprise.ValidationFile()))
	if err != nil {
		b.Fatal(err)
	}
	rels := make([]tuple.Relationship, len(f.Relationships))
	for i, r := range f.Relationships {
		rels[i] = r.Relationship
	}
	eng, st := openCounting(b, enterprise.Schema(), rels, newClock(), 64<<20)
	q := engine.CheckQuery{Resource: tuple.ObjectRef{Type: "crm_customer", ID: "c42"}, Permission: "view", Subject: tuple.SubjectRef{Type: "employee", ID: "li"}}
	for _, c := range []struct {
		name string
		rel  string
	}{{"none", ""}, {"unreachable", "platform:p#reviewer@employee:x"}, {"reachable", "region:north#viewer@employee:x"}} {
		req := engine.CheckRequest{CheckRequest: q}
		if c.rel != "" {
			req.Contextual = []tuple.Relationship{mustParse(b, c.rel)}
		}
		if _, err := eng.Check(b.Context(), req); err != nil { // warm
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			measure(b, st, func() {
				if _, err := eng.Check(b.Context(), req); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// measure runs op in b's loop and reports, besides time and allocations,
// the store reads (queries of st's readers) and the process CPU time (user
// + system, GC included, from getrusage) per op: on a shared machine CPU
// time is far steadier than wall time.
func measure(b *testing.B, st *countingStore, op func()) {
	b.ReportAllocs()
	st.queries.Store(0)
	cpu0 := processCPU(b)
	for b.Loop() {
		op()
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(st.queries.Load())/float64(b.N), "reads/op")
}

// processCPU returns the CPU time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
