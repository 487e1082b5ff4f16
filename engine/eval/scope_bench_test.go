package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// BenchmarkScopedLookup compares a scoped lookup with the lookup of
// everything filtered afterwards (what a client does without scopes), on
// the enterprise dataset (25,000 customers in 50 regions, 20 enterprises
// of 30 nested departments), uncached:
//
//   - admin-through-small-region: an enterprise's creator (who views its
//     1,250 customers) lists those of a region of 20 customers; the filter
//     reads each result's region.
//   - admin-through-region: the same creator lists the customers of a
//     large region (~500 customers, ~25 of them the enterprise's).
//   - member-through-region: an employee of a department that views
//     region r0 (through region->viewer, nested departments) lists r0's.
//   - within-department: the employees who can view one customer, limited
//     to the members of a department (nested; one that views the
//     customer's region); the filter checks each result's membership, or
//     (two-lookups-intersected) lists the department's members too.
func BenchmarkScopedLookup(b *testing.B) {
	var emps [][]string
	env := loadBench(b, "enterprise-scoped", func() []tuple.Relationship {
		rels, e := enterpriseData(rand.New(rand.NewPCG(1, 2)), benchCustomers)
		emps = e
		// A small region: 20 of e0's customers (c0, c20, ...) are in it too.
		for i := range 20 {
			rels = append(rels, rel(fmt.Sprintf("crm_customer:c%d", 20*i), "region", "region:small"))
		}
		return rels
	})
	if emps != nil {
		env.emps = emps
	}
	p := Params{Reader: env.rd, Now: testNow}
	ctx := context.Background()
	e := New(env.s, Options{})
	admin := tuple.SubjectRef{Type: "employee", ID: env.emps[0][0]}
	// A member of a department that views region r0 (region r0's viewers
	// are e0's departments).
	var member tuple.SubjectRef
	for r, err := range env.rd.QueryRelationships(ctx, tuple.Filter{ResourceType: "region", ResourceID: "r0", Relation: "viewer"}, store.QueryOptions{}) {
		if err != nil {
			b.Fatal(err)
		}
		for m, err := range env.rd.QueryRelationships(ctx, tuple.Filter{ResourceType: "department", ResourceID: r.Subject.ID, Relation: "member",
			Subject: &tuple.SubjectFilter{Type: "employee"}}, store.QueryOptions{Limit: 1}) {
			if err != nil {
				b.Fatal(err)
			}
			member = m.Subject
		}
		break
	}
	inRegion := func(id, region string) bool {
		for _, err := range env.rd.QueryRelationships(ctx, tuple.Filter{ResourceType: "crm_customer", ResourceID: id, Relation: "region",
			Subject: &tuple.SubjectFilter{Type: "region", ID: region}}, store.QueryOptions{Now: testNow, Limit: 1}) {
			return err == nil
		}
		return false
	}
	resources := func(b *testing.B, sub tuple.SubjectRef, th *Through, keep func(string) bool) int {
		n := 0
		for r, err := range e.LookupResources(ctx, p, LookupResourcesRequest{ResourceType: "crm_customer", Permission: "view", Subject: sub, Through: th}) {
			if err != nil {
				b.Fatal(err)
			}
			if keep == nil || keep(r.ResourceID) {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		name   string
		sub    tuple.SubjectRef
		region string
	}{
		{"admin-through-small-region", admin, "small"},
		{"admin-through-region", admin, "r1"},
		{"member-through-region", member, "r0"},
	} {
		th := &Through{Object: tuple.ObjectRef{Type: "region", ID: tc.region}}
		want := resources(b, tc.sub, nil, func(id string) bool { return inRegion(id, tc.region) })
		b.Run(tc.name+"/scoped", func(b *testing.B) {
			cpu, ops := cpuStart(), 0
			for b.Loop() {
				ops++
				if n := resources(b, tc.sub, th, nil); n != want {
					b.Fatalf("%d results, lookup-then-filter %d", n, want)
				}
			}
			reportCPU(b, cpu, ops)
			reportCPU(b, cpu, ops)
			b.ReportMetric(float64(want), "results")
		})
		b.Run(tc.name+"/lookup-then-filter", func(b *testing.B) {
			cpu, ops := cpuStart(), 0
			for b.Loop() {
				ops++
				if n := resources(b, tc.sub, nil, func(id string) bool { return inRegion(id, tc.region) }); n != want {
					b.Fatalf("%d results, want %d", n, want)
				}
			}
			reportCPU(b, cpu, ops)
			reportCPU(b, cpu, ops)
			b.ReportMetric(float64(want), "results")
		})
	}

	// A department whose members view c0 through its region.
	var dept *tuple.SubjectRef
	for r, err := range env.rd.QueryRelationships(ctx, tuple.Filter{ResourceType: "crm_customer", ResourceID: "c0", Relation: "region"}, store.QueryOptions{}) {
		if err != nil {
			b.Fatal(err)
		}
		for v, err := range env.rd.QueryRelationships(ctx, tuple.Filter{ResourceType: "region", ResourceID: r.Subject.ID, Relation: "viewer"}, store.QueryOptions{Limit: 1}) {
			if err != nil {
				b.Fatal(err)
			}
			dept = &v.Subject
		}
		if dept != nil {
			break
		}
	}
	deptRel, err := e.resolve("department", "member")
	if err != nil {
		b.Fatal(err)
	}
	// The walk of the planner (both sides walked and intersected), which
	// the stream of the permission's subjects replaced for a subject set
	// of more than 64 members.
	walk := New(e.s, e.opts)
	walk.walkOnly = true
	subjectsBy := func(b *testing.B, e *Evaluator, within *tuple.SubjectRef, filter bool) int {
		n := 0
		for r, err := range e.LookupSubjects(ctx, p, LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "crm_customer", ID: "c0"}, Permission: "view",
			SubjectType: "employee", Within: within}) {
			if err != nil {
				b.Fatal(err)
			}
			if filter {
				cr, err := e.Check(ctx, p, CheckRequest{Resource: tuple.ObjectRef{Type: "department", ID: dept.ID}, Permission: deptRel.Name,
					Subject: tuple.SubjectRef{Type: "employee", ID: r.SubjectID}})
				if err != nil {
					b.Fatal(err)
				}
				if cr.Permissionship == NoPermission {
					continue
				}
			}
			n++
		}
		return n
	}
	subjects := func(b *testing.B, within *tuple.SubjectRef, filter bool) int { return subjectsBy(b, e, within, filter) }
	want := subjects(b, nil, true)
	b.Run("within-department/scoped-walk", func(b *testing.B) {
		cpu, ops := cpuStart(), 0
		for b.Loop() {
			ops++
			if n := subjectsBy(b, walk, dept, false); n != want {
				b.Fatalf("%d results, lookup-then-filter %d", n, want)
			}
		}
		reportCPU(b, cpu, ops)
		b.ReportMetric(float64(want), "results")
	})
	b.Run("within-department/scoped", func(b *testing.B) {
		cpu, ops := cpuStart(), 0
		for b.Loop() {
			ops++
			if n := subjects(b, dept, false); n != want {
				b.Fatalf("%d results, lookup-then-filter %d", n, want)
			}
		}
		reportCPU(b, cpu, ops)
		b.ReportMetric(float64(want), "results")
		if e.streamedWithin.Load() == 0 {
			b.Errorf("the scoped lookup did not stream")
		}
	})
	// What a client can do without scopes at best: both lookups, intersected.
	twoLookups := func(b *testing.B) int {
		members := map[string]bool{}
		for r, err := range e.LookupSubjects(ctx, p, LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "department", ID: dept.ID}, Permission: "member", SubjectType: "employee"}) {
			if err != nil {
				b.Fatal(err)
			}
			members[r.SubjectID] = true
		}
		n := 0
		for r, err := range e.LookupSubjects(ctx, p, LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "crm_customer", ID: "c0"}, Permission: "view", SubjectType: "employee"}) {
			if err != nil {
				b.Fatal(err)
			}
			if members[r.SubjectID] {
				n++
			}
		}
		return n
	}
	b.Run("within-department/two-lookups-intersected", func(b *testing.B) {
		cpu, ops := cpuStart(), 0
		for b.Loop() {
			ops++
			if n := twoLookups(b); n != want {
				b.Fatalf("%d results, want %d", n, want)
			}
		}
		reportCPU(b, cpu, ops)
		b.ReportMetric(float64(want), "results")
	})
	b.Run("within-department/lookup-then-filter", func(b *testing.B) {
		cpu, ops := cpuStart(), 0
		for b.Loop() {
			ops++
			if n := subjects(b, nil, true); n != want {
				b.Fatalf("%d results, want %d", n, want)
			}
		}
		reportCPU(b, cpu, ops)
		b.ReportMetric(float64(want), "results")
	})
}
