package engine_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// nestedSchema has one indexed relation (group#member) and one that is
// not (team#member nests groups too).
const nestedSchema = `
definition user {}
definition group {
	relation member: user | user:* | group#member
	relation owner: user
}
definition team {
	relation member: user | group#member | team#member
}
definition document {
	relation viewer: user | group#member | team#member
	permission view = viewer
}
`

// closureRows reads the closure rows of group#member stored at rev,
// straight from the store, as "x>y:d" strings.
func closureRows(t *testing.T, st store.Store, rev store.Revision) []string {
	t.Helper()
	r, err := st.Snapshot(t.Context(), rev)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for row, err := range r.QueryRelationships(t.Context(), tuple.Filter{ResourceType: "group", Relation: eval.NestedClosureRelation("member")}, store.QueryOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		d, ok := eval.NestedDistance(&row)
		if !ok {
			t.Fatalf("malformed closure row %s", row)
		}
		out = append(out, fmt.Sprintf("%s>%s:%d", row.Resource.ID, row.Subject.ID, d))
	}
	return out
}

// bruteClosure computes the closure rows of group#member from the edges
// stored at rev, by a breadth-first search from every group.
func bruteClosure(t *testing.T, st store.Store, rev store.Revision) []string {
	t.Helper()
	r, err := st.Snapshot(t.Context(), rev)
	if err != nil {
		t.Fatal(err)
	}
	adj := map[string][]string{}
	f := tuple.Filter{ResourceType: "group", Relation: "member", Subject: &tuple.SubjectFilter{Type: "group", Relation: "member"}}
	for row, err := range r.QueryRelationships(t.Context(), f, store.QueryOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		adj[row.Resource.ID] = append(adj[row.Resource.ID], row.Subject.ID)
	}
	var out []string
	for _, x := range slices.Sorted(maps.Keys(adj)) {
		dist := map[string]int{x: 0}
		queue := []string{x}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			for _, v := range adj[u] {
				if _, ok := dist[v]; !ok {
					dist[v] = dist[u] + 1
					queue = append(queue, v)
				}
			}
		}
		for _, y := range slices.Sorted(maps.Keys(dist)) {
			if y != x {
				out = append(out, fmt.Sprintf("%s>%s:%d", x, y, dist[y]))
			}
		}
	}
	return out
}

// TestNestedIndexHistory runs random histories of edge writes, deletes,
// deletes by filter and imports (bulk and batched), with the store's
// batch limit large and so small that changes overflow it (the index then
// goes stale and is rebuilt). After every step the stored index is ready
// and equals the closure computed from scratch (by this test and by
// VerifyNestedIndex: incremental == rebuilt == brute force); at the end
// every revision of the history still reads its own closure; and checks
// with the index agree with checks without it at every revision.
func TestNestedIndexHistory(t *testing.T) {
	for _, batch := range []int{0, 7} {
		for seed := range uint64(6) {
			t.Run(fmt.Sprintf("batch=%d/seed=%d", batch, seed), func(t *testing.T) {
				clk := newClock()
				st := memstore.New(memstore.Options{Now: clk.Now, MaxBatchOps: batch})
				t.Cleanup(func() { st.Close() })
				runNestedHistory(t, seed, st, clk)
			})
		}
	}
	// The same histories over the other backends' transactions (their
	// reads by subject, their deletes by filter).
	for _, b := range append(backends()[1:], postgresBackend()) {
		for seed := range uint64(1) {
			t.Run(fmt.Sprintf("%s/seed=%d", b.name, seed), func(t *testing.T) {
				clk := newClock()
				runNestedHistory(t, seed, b.open(t, clk.Now), clk)
			})
		}
	}
}

// batchLimited is a store that reports its per-transaction limit.
type batchLimited interface {
	store.Store
	store.BatchLimiter
}

func runNestedHistory(t *testing.T, seed uint64, st store.Store, clk *clock) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 17))
	eng, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", nestedSchema); err != nil {
		t.Fatal(err)
	}
	var nb store.Store = noBulk{st}
	if bl, ok := st.(batchLimited); ok {
		nb = noBulkLimited{noBulk{st}, bl}
	}
	batched, err := engine.Open(ctx, nb, engine.Options{Now: clk.Now, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	off, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1, NoNestedIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	groups := []string{"g0", "g1", "g2", "g3", "g4", "g5", "g6"}
	g := func() string { return groups[rng.IntN(len(groups))] }
	edge := func() tuple.Relationship {
		return mustParse(t, fmt.Sprintf("group:%s#member@group:%s#member", g(), g()))
	}
	history := map[store.Revision][]string{}
	var zookies []string
	for step := range 60 {
		var z string
		var err error
		switch k := rng.IntN(10); {
		case k < 5: // a write of one to four updates
			seen := map[tuple.Key]bool{}
			var ups []engine.Update
			for range 1 + rng.IntN(4) {
				r := edge()
				if rng.IntN(5) == 0 {
					r = mustParse(t, fmt.Sprintf("group:%s#member@user:u%d", g(), rng.IntN(3)))
				}
				if seen[r.Key()] {
					continue
				}
				seen[r.Key()] = true
				op := store.OpTouch
				if rng.IntN(3) == 0 {
					op = store.OpDelete
				}
				ups = append(ups, engine.Update{Op: op, Relationship: r})
			}
			z, err = eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups})
		case k < 7: // a delete by filter
			f := tuple.Filter{ResourceType: "group", ResourceID: g()}
			switch rng.IntN(3) {
			case 0:
				f.Relation = "member"
				f.Subject = &tuple.SubjectFilter{Type: "group", ID: g(), Relation: "member"}
			case 1:
				f = tuple.Filter{ResourceType: "group", Subject: &tuple.SubjectFilter{Type: "group", ID: g()}}
			}
			var resp engine.DeleteResponse
			resp, err = eng.DeleteRelationships(ctx, engine.DeleteRequest{Caller: "test", Filter: f})
			z = resp.Zookie
		default: // an import, bulk or batched
			var rels []tuple.Relationship
			seen := map[tuple.Key]bool{}
			for range 1 + rng.IntN(5) {
				if r := edge(); !seen[r.Key()] {
					seen[r.Key()] = true
					rels = append(rels, r)
				}
			}
			e := eng
			if k == 9 {
				e = batched
			}
			z, _, err = e.Import(ctx, "test", seqOf(rels...))
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		// The index left stale is rebuilt in the background.
		for _, e := range []*engine.Engine{eng, batched} {
			if err := e.WaitNestedIndex(ctx); err != nil {
				t.Fatalf("step %d: rebuild: %v", step, err)
			}
		}
		head, err := eng.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteClosure(t, st, head)
		if got := closureRows(t, st, head); !slices.Equal(got, want) {
			t.Fatalf("step %d: stored closure\n%v\nwant\n%v", step, got, want)
		}
		history[head] = want
		_, reps, err := eng.VerifyNestedIndex(ctx)
		if err != nil || len(reps) != 1 {
			t.Fatalf("step %d: verify: %v %v", step, reps, err)
		}
		if r := reps[0]; !r.Ready || r.Missing+r.Extra+r.Wrong != 0 || r.Rows != len(want) {
			t.Fatalf("step %d: verify: %+v (want %d rows)", step, r, len(want))
		}
		zookies = append(zookies, z)
	}
	for rev, want := range history {
		if got := closureRows(t, st, rev); !slices.Equal(got, want) {
			t.Fatalf("revision %d: stored closure %v, want %v", rev, got, want)
		}
	}
	// Same answers with and without the index, at the revision of every
	// step (the writes' zookies) and for subject sets too.
	subjects := []string{"user:u0", "user:u1", "user:u2", "user:*", "group:g0#member", "group:g3#member"}
	for _, z := range zookies {
		for _, x := range groups {
			for _, s := range subjects {
				q := engine.CheckQuery{Resource: tuple.ObjectRef{Type: "group", ID: x}, Permission: "member", Subject: mustParse(t, "group:x#member@"+s).Subject}
				a, errA := eng.Check(ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: q})
				b, errB := off.Check(ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: q})
				if errA != nil || errB != nil || a.Permissionship != b.Permissionship {
					t.Fatalf("Check(group:%s#member@%s) at %s: index %v (%v), walk %v (%v)", x, s, z, a.Permissionship, errA, b.Permissionship, errB)
				}
			}
		}
	}
}

// noBulkLimited is noBulk that still reports the store's batch limit.
type noBulkLimited struct {
	noBulk
	lim store.BatchLimiter
}

func (n noBulkLimited) MaxBatchOps() int { return n.lim.MaxBatchOps() }

// TestNestedIndexHidden writes nested groups and asserts that no reserved
// row leaks through any API that shows or takes relationships.
func TestNestedIndexHidden(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, engine.Options{})
	if _, _, err := f.eng.WriteSchema(ctx, "test", nestedSchema); err != nil {
		t.Fatal(err)
	}
	start := f.touch("group:g1#member@group:g2#member")
	f.touch("group:g2#member@group:g3#member", "group:g3#member@user:ann", "document:d#viewer@group:g1#member")
	z := f.touch("group:g4#member@group:g1#member")
	if rows := closureRows(t, f.st, store.Revision(revisionOf(t, f, z))); len(rows) != 6 {
		t.Fatalf("closure rows %v, want 6", rows)
	}
	leak := func(where string, r tuple.Relationship) {
		t.Helper()
		if tuple.Reserved(r.Relation) || tuple.Reserved(r.Subject.Relation) {
			t.Errorf("%s shows the reserved row %s", where, r)
		}
	}
	page, err := f.eng.ReadRelationships(ctx, engine.AtExactSnapshot(z), tuple.Filter{ResourceType: "group"}, 0, "")
	if err != nil || len(page.Relationships) != 4 {
		t.Errorf("ReadRelationships(group) = %v, %v; want the 4 written", page.Relationships, err)
	}
	for _, r := range page.Relationships {
		leak("ReadRelationships", r)
	}
	// Pages of one, over rows the index interleaves with reserved ones
	// (group:g1's closure rows sort between its relationships).
	var paged []string
	for cursor, pages := "", 0; pages < 10; pages++ {
		page, err := f.eng.ReadRelationships(ctx, engine.AtExactSnapshot(z), tuple.Filter{ResourceType: "group"}, 1, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Relationships {
			leak("ReadRelationships (paged)", r)
			paged = append(paged, r.String())
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if len(paged) != 4 {
		t.Errorf("ReadRelationships in pages of one: %v, want the 4 written", paged)
	}
	n, _, err := f.eng.CountRelationships(ctx, engine.AtExactSnapshot(z), tuple.Filter{ResourceType: "group", ResourceID: "g1"})
	if err != nil || n != 1 {
		t.Errorf("CountRelationships(group:g1) = %d, %v; want 1", n, err)
	}
	exported := 0
	if _, err := f.eng.Export(ctx, engine.AtExactSnapshot(z), func(r tuple.Relationship) error {
		leak("Export", r)
		exported++
		return nil
	}); err != nil || exported != 5 {
		t.Errorf("Export: %d relationships, %v; want 5", exported, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	for ev, err := range f.eng.Watch(wctx, start) {
		if err != nil {
			break
		}
		for _, c := range ev.Changes {
			leak("Watch", c.Relationship)
		}
		if ev.Zookie == z {
			cancel()
		}
	}
	cancel()
	results, err := f.eng.QueryAudit(ctx, engine.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for res, err := range results {
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Entry.Changes {
			leak("QueryAudit", c.Relationship)
		}
	}
	// A precondition sees only relationships: g1 holds g3 only through
	// the index.
	if _, err := f.eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test",
		Updates:       []engine.Update{{Op: store.OpTouch, Relationship: mustParse(t, "group:g5#member@user:bob")}},
		Preconditions: []engine.Precondition{{Filter: tuple.Filter{ResourceType: "group", ResourceID: "g1", Subject: &tuple.SubjectFilter{Type: "group", ID: "g3"}}}},
	}); err != nil {
		t.Errorf("precondition saw an index row: %v", err)
	}
	// Callers can neither write, delete nor filter by reserved names.
	for _, op := range []store.Op{store.OpTouch, store.OpDelete} {
		_, err := f.eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: []engine.Update{{Op: op, Relationship: mustParse(t, "group:g1#~member@group:g3#~2")}}})
		if err == nil {
			t.Errorf("%v of a reserved row accepted", op)
		}
	}
	if _, err := f.eng.ReadRelationships(ctx, engine.FullyConsistent(), tuple.Filter{ResourceType: "group", Relation: "~member"}, 0, ""); err == nil {
		t.Error("ReadRelationships accepted a reserved relation")
	}
	// A delete by a filter without a relation deletes relationships only,
	// and the index follows.
	resp, err := f.eng.DeleteRelationships(ctx, engine.DeleteRequest{Caller: "test", Filter: tuple.Filter{ResourceType: "group", ResourceID: "g2"}})
	if err != nil || resp.Deleted != 1 {
		t.Fatalf("delete group:g2: %+v, %v", resp, err)
	}
	head := store.Revision(revisionOf(t, f, resp.Zookie))
	if got, want := closureRows(t, f.st, head), bruteClosure(t, f.st, head); !slices.Equal(got, want) {
		t.Errorf("after the delete: closure %v, want %v", got, want)
	}
	// The permission diff and watch see the document lose ann.
	d, err := f.eng.DiffPermissions(ctx, engine.DiffRequest{From: z, To: resp.Zookie, Scope: engine.PermissionScope{ResourceType: "document", Permission: "view", SubjectType: "user"}})
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for c, err := range d.Changes {
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, fmt.Sprint(c))
	}
	if s := strings.Join(changes, " "); !strings.Contains(s, "ann") || d.Relationships != 2 {
		t.Errorf("DiffPermissions: %d relationship changes, %s", d.Relationships, s)
	}
}

// TestNestedIndexOffAndOn writes with the index off (the engine marks it
// stale) and reopens with it on (the engine rebuilds it).
func TestNestedIndexOffAndOn(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	st := memstore.New(memstore.Options{Now: clk.Now})
	t.Cleanup(func() { st.Close() })
	on, err := engine.Open(ctx, st, engine.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := on.WriteSchema(ctx, "test", nestedSchema); err != nil {
		t.Fatal(err)
	}
	write := func(e *engine.Engine, rel string) {
		t.Helper()
		if _, err := e.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: []engine.Update{{Op: store.OpTouch, Relationship: mustParse(t, rel)}}}); err != nil {
			t.Fatal(err)
		}
	}
	write(on, "group:a#member@group:b#member")
	off, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, NoNestedIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	write(off, "group:b#member@group:c#member")
	ready := func(e *engine.Engine) engine.NestedIndexReport {
		t.Helper()
		_, reps, err := e.VerifyNestedIndex(ctx)
		if err != nil || len(reps) != 1 {
			t.Fatalf("verify: %v %v", reps, err)
		}
		return reps[0]
	}
	if r := ready(on); r.Ready || r.Missing != 2 {
		t.Errorf("after a write with the index off: %+v, want stale with 2 missing rows", r)
	}
	write(on, "group:c#member@user:ann") // not an edge: nothing to maintain
	reopened, err := engine.Open(ctx, st, engine.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := reopened.WaitNestedIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if r := ready(reopened); !r.Ready || r.Rows != 3 || r.Missing+r.Extra+r.Wrong != 0 {
		t.Errorf("after reopening with the index on: %+v, want ready with 3 rows", r)
	}
	resp, err := reopened.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{
		Resource: tuple.ObjectRef{Type: "group", ID: "a"}, Permission: "member", Subject: tuple.SubjectRef{Type: "user", ID: "ann"}}})
	if err != nil || resp.Permissionship != eval.HasPermission {
		t.Errorf("check through the rebuilt index: %v, %v", resp.Permissionship, err)
	}
	// A schema that makes group#member caveated drops the index.
	if _, _, err := reopened.WriteSchema(ctx, "test", strings.Replace(nestedSchema, "group#member\n", "group#member | group#member with flag\n", 1)+"caveat flag(on bool) { on }\n"); err != nil {
		t.Fatal(err)
	}
	head, err := reopened.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rows := closureRows(t, st, head); len(rows) != 0 {
		t.Errorf("rows left after the relation stopped being indexed: %v", rows)
	}
}

// BenchmarkNestedEdgeWrite is the cost of one write of a nested edge with
// the index on and off: a chain of 30 groups, each op adding an edge from
// its deepest group to a new group, so that the index adds 30 rows
// (Pebble, without fsync, so that the CPU of the write is what counts).
//
//	go test ./engine -run '^$' -bench NestedEdgeWrite -benchmem
func BenchmarkNestedEdgeWrite(b *testing.B) {
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("index=%v", on), func(b *testing.B) {
			ctx := b.Context()
			st, err := engine.OpenStore(ctx, engine.StoreOptions{Kind: engine.StorePebble, Dir: b.TempDir(), Pebble: engine.PebbleOptions{NoSync: true}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			eng, err := engine.Open(ctx, st, engine.Options{NoNestedIndex: !on, CacheBytes: -1})
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := eng.WriteSchema(ctx, "test", nestedSchema); err != nil {
				b.Fatal(err)
			}
			var rels []tuple.Relationship
			for l := 1; l < 30; l++ {
				rels = append(rels, mustParse(b, fmt.Sprintf("group:g%d#member@group:g%d#member", l-1, l)))
			}
			if _, _, err := eng.Import(ctx, "test", seqOf(rels...)); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := processCPU(b)
			for i := range b.N {
				edge := mustParse(b, fmt.Sprintf("group:g29#member@group:h%d#member", i))
				if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "bench", Updates: []engine.Update{{Op: store.OpTouch, Relationship: edge}}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
