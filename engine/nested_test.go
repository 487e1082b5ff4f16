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
	return groupShape.closureRows(t, st, rev)
}

// bruteClosure computes the closure rows of group#member from the edges
// stored at rev, by a breadth-first search from every group.
func bruteClosure(t *testing.T, st store.Store, rev store.Revision) []string {
	t.Helper()
	return groupShape.bruteClosure(t, st, rev)
}

// nestedShape is one kind of indexed edges, for the history test: the
// subject sets of a self-nesting relation, or the tupleset of a
// recursive arrow.
type nestedShape struct {
	name   string
	schema string
	// typ, rel and sub name the edges typ:x#rel@typ:y#sub.
	typ, rel, sub string
	// perm is the relation or permission checked with and without the
	// index; leaf writes a relationship that is not an edge.
	perm string
	leaf func(id string, u int) string
	// subjects are the subjects checked.
	subjects []string
}

var groupShape = nestedShape{
	name: "group#member", schema: nestedSchema, typ: "group", rel: "member", sub: "member", perm: "member",
	leaf:     func(id string, u int) string { return fmt.Sprintf("group:%s#member@user:u%d", id, u) },
	subjects: []string{"user:u0", "user:u1", "user:u2", "user:*", "group:g0#member", "group:g3#member"},
}

// arrowSchema has an indexed tupleset folder#parent (for the recursive
// permission manage), and doc#parent, indexed for doc#view, whose edges
// are those to docs only (its edges to folders are not followed by the
// recursion).
const arrowSchema = `
use expiration
caveat flag(on bool) { on }
definition user {}
definition folder {
	relation parent: folder
	relation admin: user | user with flag | user with expiration
	permission manage = admin + parent->manage
}
definition doc {
	relation parent: folder | doc
	relation viewer: user
	permission view = viewer + parent->manage + parent->view
}
`

var arrowShape = nestedShape{
	name: "folder#parent", schema: arrowSchema, typ: "folder", rel: "parent", sub: "", perm: "manage",
	leaf: func(id string, u int) string {
		switch u {
		case 1:
			return fmt.Sprintf("folder:%s#admin@user:u1[flag]", id)
		case 2:
			return fmt.Sprintf("folder:%s#admin@user:u2[expiration:2030-01-01T00:00:00Z]", id)
		}
		return fmt.Sprintf("folder:%s#admin@user:u%d", id, u)
	},
	subjects: []string{"user:u0", "user:u1", "user:u2", "user:*"},
}

// edge is the edge from x to y.
func (sh nestedShape) edge(x, y string) string {
	if sh.sub == "" {
		return fmt.Sprintf("%s:%s#%s@%s:%s", sh.typ, x, sh.rel, sh.typ, y)
	}
	return fmt.Sprintf("%s:%s#%s@%s:%s#%s", sh.typ, x, sh.rel, sh.typ, y, sh.sub)
}

// edgeSubject is the subject filter of the edges to id.
func (sh nestedShape) edgeSubject(id string) *tuple.SubjectFilter {
	sub := sh.sub
	if sub == "" {
		sub = tuple.Ellipsis
	}
	return &tuple.SubjectFilter{Type: sh.typ, ID: id, Relation: sub}
}

// closureRows reads the closure rows of the shape's relation stored at
// rev, straight from the store, as "x>y:d" strings.
func (sh nestedShape) closureRows(t *testing.T, st store.Store, rev store.Revision) []string {
	t.Helper()
	r, err := st.Snapshot(t.Context(), rev)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for row, err := range r.QueryRelationships(t.Context(), tuple.Filter{ResourceType: sh.typ, Relation: eval.NestedClosureRelation(sh.rel)}, store.QueryOptions{}) {
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

// bruteClosure computes the closure rows of the shape's relation from
// the edges stored at rev, by a breadth-first search from every object.
func (sh nestedShape) bruteClosure(t *testing.T, st store.Store, rev store.Revision) []string {
	t.Helper()
	r, err := st.Snapshot(t.Context(), rev)
	if err != nil {
		t.Fatal(err)
	}
	adj := map[string][]string{}
	f := tuple.Filter{ResourceType: sh.typ, Relation: sh.rel, Subject: sh.edgeSubject("")}
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
	for _, sh := range []nestedShape{groupShape, arrowShape} {
		for _, batch := range []int{0, 7} {
			for seed := range uint64(6) {
				t.Run(fmt.Sprintf("%s/batch=%d/seed=%d", sh.name, batch, seed), func(t *testing.T) {
					clk := newClock()
					st := memstore.New(memstore.Options{Now: clk.Now, MaxBatchOps: batch})
					t.Cleanup(func() { st.Close() })
					runNestedHistory(t, sh, seed, st, clk)
				})
			}
		}
		// The same histories over the other backends' transactions
		// (their reads by subject, their deletes by filter).
		for _, b := range append(backends()[1:], postgresBackend()) {
			for seed := range uint64(1) {
				t.Run(fmt.Sprintf("%s/%s/seed=%d", sh.name, b.name, seed), func(t *testing.T) {
					clk := newClock()
					runNestedHistory(t, sh, seed, b.open(t, clk.Now), clk)
				})
			}
		}
	}
}

// batchLimited is a store that reports its per-transaction limit.
type batchLimited interface {
	store.Store
	store.BatchLimiter
}

func runNestedHistory(t *testing.T, sh nestedShape, seed uint64, st store.Store, clk *clock) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 17))
	eng, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", sh.schema); err != nil {
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
		return mustParse(t, sh.edge(g(), g()))
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
					r = mustParse(t, sh.leaf(g(), rng.IntN(3)))
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
			f := tuple.Filter{ResourceType: sh.typ, ResourceID: g()}
			switch rng.IntN(3) {
			case 0:
				f.Relation = sh.rel
				f.Subject = sh.edgeSubject(g())
			case 1:
				f = tuple.Filter{ResourceType: sh.typ, Subject: &tuple.SubjectFilter{Type: sh.typ, ID: g()}}
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
		want := sh.bruteClosure(t, st, head)
		if got := sh.closureRows(t, st, head); !slices.Equal(got, want) {
			t.Fatalf("step %d: stored closure\n%v\nwant\n%v", step, got, want)
		}
		history[head] = want
		_, reps, err := eng.VerifyNestedIndex(ctx)
		i := slices.IndexFunc(reps, func(r engine.NestedIndexReport) bool { return r.Relation == sh.typ+"#"+sh.rel })
		if err != nil || i < 0 {
			t.Fatalf("step %d: verify: %v %v", step, reps, err)
		}
		if r := reps[i]; !r.Ready || r.Missing+r.Extra+r.Wrong != 0 || r.Rows != len(want) {
			t.Fatalf("step %d: verify: %+v (want %d rows)", step, r, len(want))
		}
		zookies = append(zookies, z)
	}
	for rev, want := range history {
		if got := sh.closureRows(t, st, rev); !slices.Equal(got, want) {
			t.Fatalf("revision %d: stored closure %v, want %v", rev, got, want)
		}
	}
	// Same answers with and without the index, at the revision of every
	// step (the writes' zookies) and for subject sets too: twice, the
	// second time once the closure the first asked for is in memory
	// (closuremem.go), which its generation row must keep from answering
	// at the revisions whose rows differ.
	for _, z := range zookies {
		for pass := range 2 {
			for _, x := range groups {
				for _, s := range sh.subjects {
					q := engine.CheckQuery{Resource: tuple.ObjectRef{Type: sh.typ, ID: x}, Permission: sh.perm, Subject: mustParse(t, "group:x#member@"+s).Subject}
					a, errA := eng.Check(ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: q})
					b, errB := off.Check(ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: q})
					if errA != nil || errB != nil || a.Permissionship != b.Permissionship {
						t.Fatalf("Check(%s:%s#%s@%s) at %s, pass %d: index %v (%v), walk %v (%v)", sh.typ, x, sh.perm, s, z, pass, a.Permissionship, errA, b.Permissionship, errB)
					}
				}
			}
			if err := eng.WaitNestedMemory(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := eng.Stats(); st.Plans["nested_index_memory"] == 0 || st.NestedMemoryLoads == 0 {
		t.Errorf("no check read the closure from memory (%d loads, %d failed, %d too large)", st.NestedMemoryLoads, st.NestedMemoryLoadFailures, st.NestedMemoryTooLarge)
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
	for _, sh := range []nestedShape{groupShape, arrowShape} {
		for _, on := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/index=%v", sh.name, on), func(b *testing.B) {
				benchEdgeWrite(b, sh, on)
			})
		}
	}
}

// benchEdgeWrite writes edges from new objects to the end of a chain of
// 30 (each adds 30 closure rows with the index on).
func benchEdgeWrite(b *testing.B, sh nestedShape, on bool) {
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
	if _, _, err := eng.WriteSchema(ctx, "test", sh.schema); err != nil {
		b.Fatal(err)
	}
	// Groups: g0 holds g1 … holds g29, and g29 gains h_i. Folders: f29
	// lies below f28 … below f0, and h_i goes below f29.
	from, to := func(l int) string { return fmt.Sprintf("g%d", l-1) }, func(l int) string { return fmt.Sprintf("g%d", l) }
	if sh.sub == "" {
		from, to = to, from
	}
	var rels []tuple.Relationship
	for l := 1; l < 30; l++ {
		rels = append(rels, mustParse(b, sh.edge(from(l), to(l))))
	}
	if _, _, err := eng.Import(ctx, "test", seqOf(rels...)); err != nil {
		b.Fatal(err)
	}
	// The import's rebuild runs in the background: the writes measured
	// maintain a complete index, not a stale one.
	if err := eng.WaitNestedIndex(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := processCPU(b)
	for i := range b.N {
		edge := mustParse(b, sh.edge("g29", fmt.Sprintf("h%d", i)))
		if sh.sub == "" {
			edge = mustParse(b, sh.edge(fmt.Sprintf("h%d", i), "g29"))
		}
		if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "bench", Updates: []engine.Update{{Op: store.OpTouch, Relationship: edge}}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// TestNestedIndexKindChange: a schema change that turns an indexed
// relation from self-nesting (edges folder:x#parent@folder:y#parent) into
// the tupleset of a recursive arrow (edges folder:x#parent@folder:y), and
// back, leaves the index of the new kind's edges, complete, and a
// schema without the recursive permission drops it.
func TestNestedIndexKindChange(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	st := memstore.New(memstore.Options{Now: clk.Now})
	t.Cleanup(func() { st.Close() })
	eng, err := engine.Open(ctx, st, engine.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	const nesting = `
definition user {}
definition folder {
	relation parent: folder | folder#parent
	relation admin: user
	permission manage = admin + parent->manage
}`
	tupleset := strings.Replace(nesting, "folder | folder#parent", "folder", 1)
	plain := strings.Replace(tupleset, "parent->manage", "parent->admin", 1)
	sh := nestedShape{typ: "folder", rel: "parent"}
	verify := func(step string, want []string) {
		t.Helper()
		if err := eng.WaitNestedIndex(ctx); err != nil { // a schema change rebuilds in the background
			t.Fatal(err)
		}
		head, err := eng.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := sh.closureRows(t, st, head); !slices.Equal(got, want) {
			t.Errorf("%s: rows %v, want %v", step, got, want)
		}
		_, reps, err := eng.VerifyNestedIndex(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reps {
			if !r.Ready || r.Missing+r.Extra+r.Wrong != 0 || r.Rows != len(want) {
				t.Errorf("%s: verify %+v, want ready with %d rows", step, r, len(want))
			}
		}
		if len(want) > 0 && len(reps) != 1 {
			t.Errorf("%s: verify %+v, want one indexed relation", step, reps)
		}
	}
	write := func(op store.Op, rels ...string) {
		t.Helper()
		var ups []engine.Update
		for _, r := range rels {
			ups = append(ups, engine.Update{Op: op, Relationship: mustParse(t, r)})
		}
		if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := eng.WriteSchema(ctx, "test", nesting); err != nil {
		t.Fatal(err)
	}
	write(store.OpTouch, "folder:a#parent@folder:b", "folder:b#parent@folder:c#parent", "folder:c#parent@folder:d#parent")
	verify("self-nesting", []string{"b>c:1", "b>d:2", "c>d:1"})
	write(store.OpDelete, "folder:b#parent@folder:c#parent", "folder:c#parent@folder:d#parent")
	write(store.OpTouch, "folder:b#parent@folder:c", "folder:c#parent@folder:d")
	verify("self-nesting, plain edges", nil)
	if _, _, err := eng.WriteSchema(ctx, "test", tupleset); err != nil {
		t.Fatal(err)
	}
	verify("tupleset", []string{"a>b:1", "a>c:2", "a>d:3", "b>c:1", "b>d:2", "c>d:1"})
	resp, err := eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{
		Resource: tuple.ObjectRef{Type: "folder", ID: "a"}, Permission: "manage", Subject: tuple.SubjectRef{Type: "user", ID: "ann"}}})
	if err != nil || resp.Permissionship != eval.NoPermission {
		t.Errorf("check: %v, %v", resp.Permissionship, err)
	}
	write(store.OpTouch, "folder:d#admin@user:ann")
	resp, err = eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{
		Resource: tuple.ObjectRef{Type: "folder", ID: "a"}, Permission: "manage", Subject: tuple.SubjectRef{Type: "user", ID: "ann"}}})
	if err != nil || resp.Permissionship != eval.HasPermission {
		t.Errorf("check: %v, %v", resp.Permissionship, err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", nesting); err != nil {
		t.Fatal(err)
	}
	verify("self-nesting again", nil)
	if _, _, err := eng.WriteSchema(ctx, "test", tupleset); err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", plain); err != nil {
		t.Fatal(err)
	}
	verify("no recursive permission", nil)
}
