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
// listing. PEMBA_PAGED_N sets n (default 100,000).
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
			for b.Loop() {
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
		})
	}
}
