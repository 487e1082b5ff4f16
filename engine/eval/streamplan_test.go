package eval

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// shapedData is n documents in folder:f, inside folder:top, which
// group:eng (tom, and group:inner, whose member is ann) views; tom audits
// folder:f; the even documents are also shared with ann directly, and
// tom is banned from every tenth.
func shapedData(t testing.TB, n int) []tuple.Relationship {
	rels := mustParse(t, "group:eng#member@user:tom", "group:eng#member@group:inner#member", "group:inner#member@user:ann",
		"folder:top#viewer@group:eng#member", "folder:f#parent@folder:top", "folder:f#auditor@user:tom")
	for i := range n {
		d := tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%06d", i)}
		rels = append(rels, tuple.Relationship{Resource: d, Relation: "parent", Subject: tuple.SubjectRef{Type: "folder", ID: "f"}})
		if i%2 == 0 {
			rels = append(rels, tuple.Relationship{Resource: d, Relation: "reader", Subject: tuple.SubjectRef{Type: "user", ID: "ann"}})
		}
		if i%10 == 0 {
			rels = append(rels, tuple.Relationship{Resource: d, Relation: "banned", Subject: tuple.SubjectRef{Type: "user", ID: "tom"}})
		}
	}
	return rels
}

// shapedTestSchema is shapedBenchSchema with a reader relation, an
// exclusion and a union of an arrow with a relation.
const shapedTestSchema = shapedBenchSchema + `
definition report {
  relation doc: doc
  permission view = doc->view
}
definition sheet {
  relation parent: folder
  relation reader: user | group#member
  relation banned: user
  permission view = (parent->view + reader) - banned
}
`

// scanCounter counts the relationships its scans yield, both ways
// (plan_test.go's countingReader counts forward reads only).
type scanCounter struct {
	store.Reader
	read atomic.Int64
}

func (c *scanCounter) count(seq iter.Seq2[tuple.Relationship, error]) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for r, err := range seq {
			c.read.Add(1)
			if !yield(r, err) {
				return
			}
		}
	}
}

func (c *scanCounter) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return c.count(c.Reader.QueryRelationships(ctx, f, opts))
}

func (c *scanCounter) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return c.count(c.Reader.ReverseQueryRelationships(ctx, f, opts))
}

// TestStreamedShapes: lookups through arrows, subject sets, intersections
// and exclusions stream (streamplan.go) and, paged, read about what they
// return: the relationships read to page through all n results 100 at a
// time are a small multiple of n (the walk reads n on every page). Under
// a memory budget too small for the walk's n nodes, the streamed lookups
// still list every result; the walk is refused.
func TestStreamedShapes(t *testing.T) {
	const n = 20_000
	s := mustCompile(t, shapedTestSchema)
	rels := shapedData(t, n)
	for i := range n {
		// Sheets as documents: in folder:f, read by ann on the even.
		sh := tuple.ObjectRef{Type: "sheet", ID: fmt.Sprintf("s%06d", i)}
		rels = append(rels, tuple.Relationship{Resource: sh, Relation: "parent", Subject: tuple.SubjectRef{Type: "folder", ID: "f"}})
		if i%3 == 0 {
			rels = append(rels, tuple.Relationship{Resource: sh, Relation: "banned", Subject: tuple.SubjectRef{Type: "user", ID: "tom"}})
		}
	}
	rd := &scanCounter{Reader: load(t, rels)}
	ctx := context.Background()
	tom := tuple.SubjectRef{Type: "user", ID: "tom"}
	ann := tuple.SubjectRef{Type: "user", ID: "ann"}
	eng := tuple.SubjectRef{Type: "group", ID: "eng", Relation: "member"}
	tests := []struct {
		typ, perm string
		sub       tuple.SubjectRef
		want      int
	}{
		{"doc", "view", tom, n},             // arrow over a recursive arrow and a subject set
		{"doc", "view", ann, n},             // ... through a nested group
		{"doc", "view", eng, n},             // a subject set as the subject
		{"doc", "audit", tom, n},            // intersection: each candidate checked
		{"doc", "audit", ann, 0},            // ... none holds
		{"sheet", "view", tom, n - (n+2)/3}, // exclusion
		{"sheet", "view", ann, n},           // exclusion, nobody banned
		{"doc", "view", tuple.SubjectRef{Type: "user", ID: "nobody"}, 0},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s#%s@%s", tt.typ, tt.perm, tt.sub)
		t.Run(name, func(t *testing.T) {
			mem := NewMemory(1 << 20) // 1 MiB: the walk needs 64 bytes a result
			e := New(s, Options{Concurrency: 2, Memory: mem})
			p := Params{Reader: rd, Now: testNow}
			req := LookupResourcesRequest{ResourceType: tt.typ, Permission: tt.perm, Subject: tt.sub}
			got, err := drain(e.LookupResources(ctx, p, req))
			if err != nil || len(got) != tt.want {
				t.Fatalf("streamed: %d results, %v; want %d", len(got), err, tt.want)
			}
			if e.streamed.Load() != 1 {
				t.Fatalf("the lookup did not stream")
			}
			if !slices.IsSortedFunc(got, func(a, b ResourceResult) int { return strings.Compare(a.ResourceID, b.ResourceID) }) {
				t.Errorf("results out of order")
			}
			// Paged 100 at a time: the same list, reading about n.
			rd.read.Store(0)
			paged, pages := pageAll(t, 100, func(limit int, after string) ([]ResourceResult, error) {
				r := req
				r.Limit, r.After = limit, after
				return drain(e.LookupResources(ctx, p, r))
			}, resourceID)
			if !reflect.DeepEqual(paged, got) {
				t.Errorf("paged: %d results, unpaged %d; they differ", len(paged), len(got))
			}
			// Each page reads its candidates, the one ahead per scan and
			// a few relationships of the intermediate walk; Checks read
			// a few more per candidate decided (the intersection's, the
			// exclusion's). The walk reads all n on every page.
			if read, bound := rd.read.Load(), int64(4*n+20*pages); read > bound {
				t.Errorf("paging %d results in %d pages read %d relationships, want at most %d", len(got), pages, read, bound)
			}
			if mem.InUse() != 0 {
				t.Errorf("%d bytes still charged", mem.InUse())
			}
			if tt.want < n/2 {
				return
			}
			walk := New(s, Options{Concurrency: 2, Memory: mem})
			walk.walkOnly = true
			if _, err := drain(walk.LookupResources(ctx, p, LookupResourcesRequest{ResourceType: tt.typ, Permission: tt.perm, Subject: tt.sub})); !errors.Is(err, ErrMemoryBudget) {
				t.Errorf("the walk under the same budget: %v, want the budget's refusal", err)
			}
		})
	}
}

// TestStreamedTooManyScans: a lookup whose intermediate set needs more
// than maxStreamScans scans is walked, with the same answer.
func TestStreamedTooManyScans(t *testing.T) {
	s := mustCompile(t, shapedTestSchema)
	var rels []tuple.Relationship
	// One scan per group, and one of sheet#reader for the user.
	for _, k := range []int{maxStreamScans - 1, maxStreamScans} {
		rels = rels[:0]
		for i := range k {
			g := fmt.Sprintf("g%05d", i)
			rels = append(rels,
				tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: g}, Relation: "member", Subject: tuple.SubjectRef{Type: "user", ID: "tom"}},
				tuple.Relationship{Resource: tuple.ObjectRef{Type: "sheet", ID: "s" + g}, Relation: "reader", Subject: tuple.SubjectRef{Type: "group", ID: g, Relation: "member"}})
		}
		rd := load(t, rels)
		e := New(s, Options{})
		got, err := drain(e.LookupResources(context.Background(), Params{Reader: rd, Now: testNow}, LookupResourcesRequest{ResourceType: "sheet", Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "tom"}}))
		if err != nil || len(got) != k {
			t.Errorf("%d groups: %d results, %v", k, len(got), err)
		}
		if streamed := e.streamed.Load() == 1; streamed != (k < maxStreamScans) {
			t.Errorf("%d groups: streamed %v", k, streamed)
		}
	}
}

// TestStreamedRecursiveArrow: LookupResources of a recursive arrow
// (folder#view = viewer + parent->view) on the nested index streams
// (streamarrow.go) the base's folders and their descendants from the
// closure rows under a 1 MiB memory budget, which refuses the walk; the
// pages list the same answer.
func TestStreamedRecursiveArrow(t *testing.T) {
	const n = 20_000
	s := mustCompile(t, shapedBenchSchema)
	rd := loadNested(t, s, folderTree(t, n))
	ctx := context.Background()
	all := n + 31
	tests := []struct {
		sub  tuple.SubjectRef
		want int
	}{
		{tuple.SubjectRef{Type: "user", ID: "tom"}, all},                          // through a group
		{tuple.SubjectRef{Type: "user", ID: "ann"}, all},                          // two base folders, nested
		{tuple.SubjectRef{Type: "group", ID: "eng", Relation: "member"}, all},     // a subject set
		{tuple.SubjectRef{Type: "user", ID: "nobody"}, 0},                         // no base
		{tuple.SubjectRef{Type: "folder", ID: "c20", Relation: "viewer"}, n + 11}, // in itself: c20 and below
		{tuple.SubjectRef{Type: "folder", ID: "t000001", Relation: "view"}, -1},   // in itself: walked
	}
	for _, tt := range tests {
		t.Run(tt.sub.String(), func(t *testing.T) {
			mem := NewMemory(1 << 20) // 1 MiB: the walk needs 64 bytes a result
			e := New(s, Options{Concurrency: 2, Memory: mem, NestedIndex: true})
			p := Params{Reader: rd, Now: testNow}
			req := LookupResourcesRequest{ResourceType: "folder", Permission: "view", Subject: tt.sub}
			got, err := drain(e.LookupResources(ctx, p, req))
			if tt.want < 0 {
				if e.streamedArrows.Load() != 0 {
					t.Errorf("a subject set of the permission itself streamed from the closure")
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("streamed: %d results, %v; want %d", len(got), err, tt.want)
			}
			if e.streamedArrows.Load() != 1 {
				t.Fatalf("the lookup did not stream from the closure")
			}
			if !slices.IsSortedFunc(got, func(a, b ResourceResult) int { return strings.Compare(a.ResourceID, b.ResourceID) }) {
				t.Errorf("results out of order")
			}
			for _, r := range got {
				if r.Permissionship != HasPermission {
					t.Fatalf("%s: %v", r.ResourceID, r.Permissionship)
				}
			}
			paged, _ := pageAll(t, 1000, func(limit int, after string) ([]ResourceResult, error) {
				r := req
				r.Limit, r.After = limit, after
				return drain(e.LookupResources(ctx, p, r))
			}, resourceID)
			if !reflect.DeepEqual(paged, got) {
				t.Errorf("paged: %d results, unpaged %d; they differ", len(paged), len(got))
			}
			if mem.InUse() != 0 {
				t.Errorf("%d bytes still charged", mem.InUse())
			}
			if tt.want == 0 {
				return
			}
			walk := New(s, Options{Concurrency: 2, Memory: mem, NestedIndex: true})
			walk.walkOnly = true
			if _, err := drain(walk.LookupResources(ctx, p, LookupResourcesRequest{ResourceType: "folder", Permission: "view", Subject: tt.sub})); !errors.Is(err, ErrMemoryBudget) {
				t.Errorf("the walk under the same budget: %v, want the budget's refusal", err)
			}
		})
	}
}

// TestStreamedRecursiveArrowDepth: below a base folder deeper than the
// depth limit allows, the lookup is walked (which decides the paths too
// deep), with the walk's answer; within the limit it streams.
func TestStreamedRecursiveArrowDepth(t *testing.T) {
	s := mustCompile(t, shapedBenchSchema)
	rd := loadNested(t, s, folderTree(t, 10))
	ctx := context.Background()
	for _, depth := range []int{20, 40, 50} {
		e := New(s, Options{MaxDepth: depth, NestedIndex: true})
		walk := New(s, Options{MaxDepth: depth, NestedIndex: true})
		walk.walkOnly = true
		req := LookupResourcesRequest{ResourceType: "folder", Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "tom"}}
		got, err := drain(e.LookupResources(ctx, Params{Reader: rd, Now: testNow}, req))
		want, werr := drain(walk.LookupResources(ctx, Params{Reader: rd, Now: testNow}, req))
		if !reflect.DeepEqual(got, want) || (err == nil) != (werr == nil) {
			t.Errorf("depth %d: %d results, %v; the walk %d, %v", depth, len(got), err, len(want), werr)
		}
		// The deepest folder is 33 below the root, whose viewer is a
		// group: within the limit from a depth of 36.
		if streamed := e.streamedArrows.Load() == 1; streamed != (depth >= 36) {
			t.Errorf("depth %d: streamed %v", depth, streamed)
		}
	}
}

// TestRecursiveArrowSubjects: LookupSubjects of a recursive arrow on a
// deep folder reads the tupleset's closure once (nestedlookup.go) instead
// of a parent read per level, with the answer of the walk without the
// index.
func TestRecursiveArrowSubjects(t *testing.T) {
	s := mustCompile(t, shapedBenchSchema)
	rels := folderTree(t, 1000)
	rels = append(rels, mustParse(t, "folder:c25#viewer@user:bob", "folder:t000999#viewer@user:cat")...)
	ctx := context.Background()
	plain := New(s, Options{})
	nested := New(s, Options{NestedIndex: true})
	for _, tt := range []struct {
		folder, subType, subRel string
		want                    int
	}{
		{"t000999", "user", "", 4},          // ann, bob, cat, tom
		{"c20", "user", "", 2},              // ann, tom
		{"t000999", "group", "member", 1},   // eng
		{"t000999", "folder", "viewer", 37}, // every folder's viewer set on the path (in itself): 6 t, 30 c and the root
	} {
		req := LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "folder", ID: tt.folder}, Permission: "view", SubjectType: tt.subType, SubjectRelation: tt.subRel}
		want, err := drain(plain.LookupSubjects(ctx, Params{Reader: load(t, rels), Now: testNow}, req))
		if err != nil {
			t.Fatal(err)
		}
		before := nested.nestedArrowWalks.Load()
		got, err := drain(nested.LookupSubjects(ctx, Params{Reader: loadNested(t, s, rels), Now: testNow}, req))
		if err != nil || !reflect.DeepEqual(got, want) || len(got) != tt.want {
			t.Errorf("%s: %v, %v; without the index %v; want %d", tt.folder, got, err, want, tt.want)
		}
		if nested.nestedArrowWalks.Load() == before {
			t.Errorf("%s: the walk did not read the closure", tt.folder)
		}
	}
}
