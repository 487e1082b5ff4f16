package eval

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// loadNestedBench is loadBench with the nested-group index of the data
// (loadNested): the evaluators with the index off read the same store
// and ignore the rows.
func loadNestedBench(b *testing.B, name string, gen func() []tuple.Relationship) *benchEnv {
	b.Helper()
	if v, ok := benchEnvs.Load("nested-" + name); ok {
		return v.(*benchEnv)
	}
	rels := gen()
	s := mustCompile(b, mustReadFile(b, "testdata/enterprise.zed"))
	env := &benchEnv{s: s, rd: loadNested(&noCleanup{b}, s, rels), n: len(rels)}
	benchEnvs.Store("nested-"+name, env)
	return env
}

// deepChainData is a chain of 30 groups, g29 ⊃ g28 ⊃ … ⊃ g0, each with
// three members of its own (employee:deep in g0), viewing doc:1 through
// the top group.
func deepChainData() []tuple.Relationship {
	const depth = 30
	rels := []tuple.Relationship{rel("group:g0", "member", "employee:deep")}
	for i := range depth {
		if i > 0 {
			rels = append(rels, rel(fmt.Sprintf("group:g%d", i), "member", fmt.Sprintf("group:g%d#member", i-1)))
		}
		for j := range 3 {
			rels = append(rels, rel(fmt.Sprintf("group:g%d", i), "member", fmt.Sprintf("employee:e%d_%d", i, j)))
		}
	}
	return append(rels, rel("doc:1", "viewer", fmt.Sprintf("group:g%d#member", depth-1)))
}

// BenchmarkNestedLookup measures both lookups over nested groups with the
// nested-group index and without (the walk), in memory: a chain of 30
// groups (LookupSubjects of the document and the top group, 91 subjects;
// LookupResources of the bottom member, 30 groups or the document) and
// wideGroupData (20,000 subjects; the groups of a member of a subgroup).
//
//	go test ./engine/eval -run '^$' -bench NestedLookup -benchmem
func BenchmarkNestedLookup(b *testing.B) {
	type lookup struct {
		name     string
		subjects *LookupSubjectsRequest
		res      *LookupResourcesRequest
		want     int
	}
	employee := func(id string) tuple.SubjectRef { return tuple.SubjectRef{Type: "employee", ID: id} }
	for _, data := range []struct {
		name    string
		gen     func() []tuple.Relationship
		lookups []lookup
	}{
		{"deep30", deepChainData, []lookup{
			{"subjects-doc", &LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", SubjectType: "employee"}, nil, 91},
			{"subjects-top-group", &LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "group", ID: "g29"}, Permission: "member", SubjectType: "employee"}, nil, 91},
			{"resources-groups", nil, &LookupResourcesRequest{ResourceType: "group", Permission: "member", Subject: employee("deep")}, 30},
			{"resources-doc", nil, &LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: employee("deep")}, 1},
		}},
		{"wide", wideGroupData, []lookup{
			{"subjects-doc", &LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", SubjectType: "employee"}, nil, 20000},
			{"resources-groups", nil, &LookupResourcesRequest{ResourceType: "group", Permission: "member", Subject: employee("s99_50")}, 2},
			{"resources-doc", nil, &LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: employee("s99_50")}, 1},
		}},
	} {
		env := loadNestedBench(b, data.name, data.gen)
		for _, l := range data.lookups {
			for _, on := range []bool{true, false} {
				b.Run(fmt.Sprintf("%s/%s/index=%v", data.name, l.name, on), func(b *testing.B) {
					e := New(env.s, Options{Concurrency: 1, NestedIndex: on})
					p := Params{Reader: env.rd, Now: testNow}
					ops := 0
					var cpu time.Duration
					for b.Loop() {
						if ops == 0 {
							cpu = cpuStart()
						}
						ops++
						n := 0
						if l.subjects != nil {
							for _, err := range e.LookupSubjects(context.Background(), p, *l.subjects) {
								if err != nil {
									b.Fatal(err)
								}
								n++
							}
						} else {
							for _, err := range e.LookupResources(context.Background(), p, *l.res) {
								if err != nil {
									b.Fatal(err)
								}
								n++
							}
						}
						if n != l.want {
							b.Fatalf("%d results, want %d", n, l.want)
						}
					}
					reportCPU(b, cpu, ops)
					if on && e.nestedLookups.Load() == 0 {
						b.Fatal("the index was not read")
					}
				})
			}
		}
	}
}
