package eval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

const memorySchema = `
definition user {}
definition group {
  relation member: user | group#member
}
definition doc {
  relation viewer: user | group#member
  relation banned: user
  relation owner: user
  permission view = viewer - banned
  permission edit = owner
}
`

// memoryData is n users in group:big, which views doc:1; the n users own
// doc:2; n empty groups view doc:3.
func memoryData(n int) []tuple.Relationship {
	rels := []tuple.Relationship{{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "group", ID: "big", Relation: "member"}}}
	for i := range n {
		u := tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%06d", i)}
		rels = append(rels,
			tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: "big"}, Relation: "member", Subject: u},
			tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "2"}, Relation: "owner", Subject: u},
			tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "3"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "group", ID: fmt.Sprintf("g%06d", i), Relation: "member"}})
	}
	return rels
}

// TestMemoryBudget: requests that would hold more than the budget fail
// with a *MemoryBudgetError (a walk's lookup, a check reading a wide
// relation, an expand), are counted, and give back what they charged; small requests and
// streamed lookups of any size pass.
func TestMemoryBudget(t *testing.T) {
	const n = 20_000
	rd := load(t, memoryData(n))
	mem := NewMemory(1 << 20) // 1 MiB: about 4,000 relationships
	e := New(mustCompile(t, memorySchema), Options{Concurrency: 2, Memory: mem})
	ctx := context.Background()
	p := Params{Reader: rd, Now: testNow}
	refused := []struct {
		name string
		run  func() error
	}{
		{"lookup subjects by the walk", func() error {
			// The streamed plans off: the lookup walks and holds its
			// answer (a streamed one holds one relationship per scan).
			walk := New(e.s, Options{Concurrency: 2, Memory: mem})
			walk.walkOnly = true
			_, err := drain(walk.LookupSubjects(ctx, p, LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", SubjectType: "user"}))
			return err
		}},
		{"check reading a wide relation top-down", func() error {
			// The subject-side strategies off: the check reads the n
			// groups that view doc:3.
			off := New(e.s, Options{Concurrency: 1, Memory: mem})
			off.wideFanout, off.arrowProbe, off.reverseBudget = math.MaxInt, 0, 0
			_, err := off.Check(ctx, p, CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "3"}, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "nobody"}})
			return err
		}},
		{"expand", func() error {
			_, err := e.Expand(ctx, p, ExpandRequest{Resource: tuple.ObjectRef{Type: "group", ID: "big"}, Permission: "member"})
			return err
		}},
	}
	for i, c := range refused {
		err := c.run()
		var me *MemoryBudgetError
		if !errors.As(err, &me) || !errors.Is(err, ErrMemoryBudget) {
			t.Errorf("%s under a 1 MiB budget: %v, want a *MemoryBudgetError", c.name, err)
		}
		if got := mem.Refused(); got != uint64(i+1) {
			t.Errorf("after %s: %d refused, want %d", c.name, got, i+1)
		}
		if got := mem.InUse(); got != 0 {
			t.Errorf("after %s: %d bytes in use, want 0", c.name, got)
		}
	}
	// Streamed: every one of the n owners, with nothing charged per result.
	got, err := drain(e.LookupSubjects(ctx, p, LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "2"}, Permission: "edit", SubjectType: "user"}))
	if err != nil || len(got) != n {
		t.Errorf("streamed LookupSubjects under the budget: %d results, %v", len(got), err)
	}
	res, err := e.Check(ctx, p, CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "2"}, Permission: "edit", Subject: tuple.SubjectRef{Type: "user", ID: "u000007"}})
	if err != nil || res.Permissionship != HasPermission {
		t.Errorf("a small check under the budget: %v, %v", res.Permissionship, err)
	}
	if got := mem.InUse(); got != 0 {
		t.Errorf("in use at the end: %d bytes, want 0", got)
	}
}

// TestMemoryEstimates measures the live heap behind the budget's
// per-item estimates and checks that each is within a factor of two of
// it, so that the budget stays a fair picture of the heap.
func TestMemoryEstimates(t *testing.T) {
	const n = 50_000
	rd := load(t, memoryData(n))
	e := New(mustCompile(t, memorySchema), Options{Concurrency: 1})
	ctx := context.Background()
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	rq, err := e.newRequest(Params{Reader: rd, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	defer rq.done()
	before := heap()
	rels, err := rq.query(ctx, tuple.Filter{ResourceType: "group", ResourceID: "big", Relation: "member"})
	if err != nil || len(rels) != n {
		t.Fatalf("query: %d, %v", len(rels), err)
	}
	perRel := float64(heap()-before) / n
	runtime.KeepAlive(rels)
	rels = nil
	before = heap()
	m, err := rq.forwardWalk(ctx, e.s.Definitions["doc"].Relations["view"], "1", "user", "", 0)
	if err != nil || len(m) != n {
		t.Fatalf("walk: %d, %v", len(m), err)
	}
	// The walk's own heap is what it returns (the map of subjects) plus
	// what it held while it ran (the relationships it read, counted above).
	perNode := float64(heap()-before) / n
	runtime.KeepAlive(m)
	t.Logf("live heap: %.0f bytes per relationship read (estimate %d), %.0f per walk node (estimate %d)", perRel, relationshipBytes, perNode, walkNodeBytes)
	for _, c := range []struct {
		name      string
		measured  float64
		estimated int
	}{{"relationship", perRel, relationshipBytes}, {"walk node", perNode, walkNodeBytes}} {
		if r := float64(c.estimated) / c.measured; r < 0.5 || r > 2 {
			t.Errorf("%s: estimate %d bytes, measured %.0f", c.name, c.estimated, c.measured)
		}
	}
}
