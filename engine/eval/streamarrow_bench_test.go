package eval

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// folderTree is a chain of 30 folders under folder:root (c01 to c30),
// with n folders below c30 in a tree of fanout 4 (about 7 levels):
// group:eng (tom) views the root, ann views the root and c10 (every
// folder below the root twice).
func folderTree(t testing.TB, n int) []tuple.Relationship {
	rels := mustParse(t, "group:eng#member@user:tom", "folder:root#viewer@group:eng#member", "folder:root#viewer@user:ann",
		"folder:c10#viewer@user:ann")
	parent := func(id, p string) tuple.Relationship {
		return tuple.Relationship{Resource: tuple.ObjectRef{Type: "folder", ID: id}, Relation: "parent", Subject: tuple.SubjectRef{Type: "folder", ID: p}}
	}
	up := "root"
	for i := 1; i <= 30; i++ {
		id := fmt.Sprintf("c%02d", i)
		rels = append(rels, parent(id, up))
		up = id
	}
	for i := range n {
		p := up
		if i > 0 {
			p = fmt.Sprintf("t%06d", (i-1)/4)
		}
		rels = append(rels, parent(fmt.Sprintf("t%06d", i), p))
	}
	return rels
}

// BenchmarkRecursiveArrowLookup measures the lookups of a recursive
// arrow (folder#view = viewer + parent->view) on folderTree (n folders,
// default 20,000; PEMBA_TREE_N sets it) with the nested index:
// LookupResources of tom (every folder), whole and its first page of
// 100, and LookupSubjects of the deepest folder. stream is the default
// plan (streamarrow.go, nestedlookup.go); walk has the streamed lookups
// off (the reverse walk, level by level).
//
//	go test ./engine/eval -run '^$' -bench RecursiveArrowLookup -benchmem
func BenchmarkRecursiveArrowLookup(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("PEMBA_TREE_N")); err == nil && v > 0 {
		n = v
	}
	s := mustCompile(b, shapedBenchSchema)
	rd := loadNested(&noCleanup{b}, s, folderTree(b, n))
	tom := tuple.SubjectRef{Type: "user", ID: "tom"}
	deepest := fmt.Sprintf("t%06d", n-1)
	for _, l := range []struct {
		name     string
		res      *LookupResourcesRequest
		subjects *LookupSubjectsRequest
		want     int
	}{
		{"resources-all", &LookupResourcesRequest{ResourceType: "folder", Permission: "view", Subject: tom}, nil, n + 31},
		{"resources-page100", &LookupResourcesRequest{ResourceType: "folder", Permission: "view", Subject: tom, Limit: 100}, nil, 100},
		{"subjects-deepest", nil, &LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "folder", ID: deepest}, Permission: "view", SubjectType: "user"}, 2},
	} {
		for _, mode := range []string{"stream", "walk"} {
			if l.subjects != nil && mode == "walk" {
				continue // the forward walk is the only plan
			}
			b.Run(l.name+"/"+mode, func(b *testing.B) {
				e := New(s, Options{Concurrency: 1, NestedIndex: true})
				e.walkOnly = mode == "walk"
				p := Params{Reader: rd, Now: testNow}
				ops := 0
				var cpu time.Duration
				runtime.GC() // the tree's load, not the lookups'
				for b.Loop() {
					if ops == 0 {
						cpu = cpuStart()
					}
					ops++
					got := 0
					if l.res != nil {
						for _, err := range e.LookupResources(context.Background(), p, *l.res) {
							if err != nil {
								b.Fatal(err)
							}
							got++
						}
					} else {
						for _, err := range e.LookupSubjects(context.Background(), p, *l.subjects) {
							if err != nil {
								b.Fatal(err)
							}
							got++
						}
					}
					if got != l.want {
						b.Fatalf("%d results, want %d", got, l.want)
					}
				}
				reportCPU(b, cpu, ops)
			})
		}
	}
}
