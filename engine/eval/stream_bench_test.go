package eval

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// BenchmarkLookupPaged pages through LookupResources of n documents one
// user owns, 1000 results a page, each page resuming after the last
// result as a cursor does: streamed, each page reads its own 1000; by the
// walk (walkOnly), each page walks all n first. One op is the whole
// listing; cpu-µs/op is the process's CPU time for it, steadier than the
// wall time on a shared machine. PEMBA_PAGED_N sets n (default 100,000).
func BenchmarkLookupPaged(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("PEMBA_PAGED_N")); err == nil && v > 0 {
		n = v
	}
	rels := make([]tuple.Relationship, n)
	for i := range n {
		rels[i] = tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%07d", i)}, Relation: "owner", Subject: tuple.SubjectRef{Type: "user", ID: "tom"}}
	}
	rd := load(b, rels)
	s := mustCompile(b, memorySchema)
	for _, walk := range []bool{false, true} {
		name := "streamed"
		if walk {
			name = "walk"
		}
		b.Run(name, func(b *testing.B) {
			e := New(s, Options{})
			e.walkOnly = walk
			p := Params{Reader: rd, Now: testNow}
			cpu, ops := cpuStart(), 0
			for b.Loop() {
				ops++
				got, after := 0, ""
				for {
					page := 0
					for r, err := range e.LookupResources(context.Background(), p, LookupResourcesRequest{ResourceType: "doc", Permission: "edit", Subject: tuple.SubjectRef{Type: "user", ID: "tom"}, Limit: 1000, After: after}) {
						if err != nil {
							b.Fatal(err)
						}
						after = r.ResourceID
						page++
					}
					got += page
					if page < 1000 {
						break
					}
				}
				if got != n {
					b.Fatalf("paged %d results, want %d", got, n)
				}
			}
			reportCPU(b, cpu, ops)
		})
	}
}

// shapedBenchSchema has an arrow over a recursive arrow and a subject set
// (doc#view), and an intersection of two arrows (doc#audit), as
// api/server's TestStuckShapedLookups.
const shapedBenchSchema = `
definition user {}
definition group {
  relation member: user | group#member
}
definition folder {
  relation parent: folder
  relation viewer: user | group#member
  relation auditor: user
  permission view = viewer + parent->view
}
definition doc {
  relation parent: folder
  permission view = parent->view
  permission audit = parent->view & parent->auditor
}`

// BenchmarkLookupPagedShaped is BenchmarkLookupPaged through an arrow
// (view: tom views the n documents' folder through its parent folder and
// a group; streamed through the intermediate set of folders, each result
// certain) and an intersection (audit: each candidate decided by Check).
// One op is the whole listing, 1000 results a page. PEMBA_PAGED_N sets n
// (default 100,000); the walk pages cost n each, so keep n small for it
// (PEMBA_PAGED_WALK=1 adds it).
func BenchmarkLookupPagedShaped(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("PEMBA_PAGED_N")); err == nil && v > 0 {
		n = v
	}
	rels := mustParse(b, "group:eng#member@user:tom", "folder:top#viewer@group:eng#member", "folder:f#parent@folder:top", "folder:f#auditor@user:tom")
	for i := range n {
		rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%07d", i)}, Relation: "parent", Subject: tuple.SubjectRef{Type: "folder", ID: "f"}})
	}
	rd := load(b, rels)
	s := mustCompile(b, shapedBenchSchema)
	modes := []bool{false}
	if os.Getenv("PEMBA_PAGED_WALK") != "" {
		modes = append(modes, true)
	}
	for _, perm := range []string{"view", "audit"} {
		for _, walk := range modes {
			name := perm + "/streamed"
			if walk {
				name = perm + "/walk"
			}
			b.Run(name, func(b *testing.B) {
				e := New(s, Options{})
				e.walkOnly = walk
				p := Params{Reader: rd, Now: testNow}
				cpu, ops := cpuStart(), 0
				for b.Loop() {
					ops++
					got, after := 0, ""
					for {
						page := 0
						for r, err := range e.LookupResources(context.Background(), p, LookupResourcesRequest{ResourceType: "doc", Permission: perm, Subject: tuple.SubjectRef{Type: "user", ID: "tom"}, Limit: 1000, After: after}) {
							if err != nil {
								b.Fatal(err)
							}
							after = r.ResourceID
							page++
						}
						got += page
						if page < 1000 {
							break
						}
					}
					if got != n {
						b.Fatalf("paged %d results, want %d", got, n)
					}
				}
				reportCPU(b, cpu, ops)
			})
		}
	}
}

// BenchmarkLookupPagedScoped pages scoped lookups whose scope is large,
// 1000 results a page: LookupResources of doc#view for tom through
// folder:f, which holds the n documents (streamed: tom's documents, each
// tested for the scope; the walk: every page walks all n and tests them),
// and LookupSubjects of doc:x#view within group:staff#member, which holds
// the n users of group:inner (streamed: the permission's subjects, each
// checked for the subject set; the walk: every page walks all n). One op
// is the whole listing. PEMBA_PAGED_N sets n (default 20,000);
// PEMBA_PAGED_WALK=1 adds the walks.
func BenchmarkLookupPagedScoped(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("PEMBA_PAGED_N")); err == nil && v > 0 {
		n = v
	}
	rels := mustParse(b, "group:eng#member@user:tom", "group:eng#member@group:inner#member", "folder:top#viewer@group:eng#member",
		"folder:f#parent@folder:top", "doc:x#parent@folder:top")
	for i := range n {
		rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%07d", i)}, Relation: "parent", Subject: tuple.SubjectRef{Type: "folder", ID: "f"}})
		u := tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%07d", i)}
		rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: "inner"}, Relation: "member", Subject: u},
			tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: "staff"}, Relation: "member", Subject: u})
	}
	rd := load(b, rels)
	s := mustCompile(b, shapedBenchSchema)
	modes := []bool{false}
	if os.Getenv("PEMBA_PAGED_WALK") != "" {
		modes = append(modes, true)
	}
	ctx := context.Background()
	p := Params{Reader: rd, Now: testNow}
	// page lists one page after the cursor and returns its size and last ID.
	pages := map[string]func(e *Evaluator, after string) (int, string){
		"through": func(e *Evaluator, after string) (int, string) {
			got := 0
			for r, err := range e.LookupResources(ctx, p, LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "tom"},
				Through: &Through{Object: tuple.ObjectRef{Type: "folder", ID: "f"}}, Limit: 1000, After: after}) {
				if err != nil {
					b.Fatal(err)
				}
				got, after = got+1, r.ResourceID
			}
			return got, after
		},
		"within": func(e *Evaluator, after string) (int, string) {
			got := 0
			for r, err := range e.LookupSubjects(ctx, p, LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "x"}, Permission: "view", SubjectType: "user",
				Within: &tuple.SubjectRef{Type: "group", ID: "staff", Relation: "member"}, Limit: 1000, After: after}) {
				if err != nil {
					b.Fatal(err)
				}
				got, after = got+1, r.SubjectID
			}
			return got, after
		},
	}
	for _, kind := range []string{"through", "within"} {
		for _, walk := range modes {
			name := kind + "/streamed"
			if walk {
				name = kind + "/walk"
			}
			b.Run(name, func(b *testing.B) {
				e := New(s, Options{})
				e.walkOnly = walk
				cpu, ops := cpuStart(), 0
				for b.Loop() {
					ops++
					got, after := 0, ""
					for {
						page, last := pages[kind](e, after)
						got, after = got+page, last
						if page < 1000 {
							break
						}
					}
					if got != n {
						b.Fatalf("paged %d results, want %d", got, n)
					}
				}
				reportCPU(b, cpu, ops)
			})
		}
	}
}
