package engine_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/token"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// groupMember is group#member of nestedSchema, for eval.ReadNestedMarker.
func groupMember(t *testing.T) *schema.Relation {
	t.Helper()
	s, err := schema.Compile("nested", nestedSchema)
	if err != nil {
		t.Fatal(err)
	}
	return s.Definitions["group"].Relations["member"]
}

// TestNestedRebuildConcurrentWrites imports nested groups (the index goes
// stale and is rebuilt in the background) and, from the rebuild's own
// stages, writes, deletes and imports more edges while it runs, so that
// it catches up (by comparing the edges, from the change sets, under the
// lock) and restarts (too many changes). Bulk loads of a few rows make
// the rebuild write in many revisions. Afterwards the index is ready and
// equals the closure computed by brute force; at every revision of the
// history where the index reads as ready, its rows are exactly the
// closure of that revision's edges; and checks with the index agree with
// checks without it at every revision.
func TestNestedRebuildConcurrentWrites(t *testing.T) {
	type run struct {
		b     backend
		seeds uint64
	}
	runs := []run{{backends()[0], 6}, {backends()[1], 2}, {postgresBackend(), 1}}
	for _, r := range runs {
		for seed := range r.seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", r.b.name, seed), func(t *testing.T) {
				defer engine.SetNestedRebuildLimits(5, 2, 6)()
				clk := newClock()
				runNestedRebuild(t, seed, r.b.open(t, clk.Now), clk)
			})
		}
	}
}

func runNestedRebuild(t *testing.T, seed uint64, st store.Store, clk *clock) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 29))
	eng, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	off, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1, NoNestedIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", nestedSchema); err != nil {
		t.Fatal(err)
	}
	const groups = 24
	g := func() string { return fmt.Sprintf("g%d", rng.IntN(groups)) }
	edge := func() tuple.Relationship {
		return mustParse(t, fmt.Sprintf("group:%s#member@group:%s#member", g(), g()))
	}
	edges := func(n int) []tuple.Relationship {
		seen := map[tuple.Key]bool{}
		var rels []tuple.Relationship
		for range n {
			if r := edge(); !seen[r.Key()] {
				seen[r.Key()] = true
				rels = append(rels, r)
			}
		}
		return rels
	}
	var stages []string
	engine.SetNestedRebuildHook(eng, func(_ context.Context, stage string) {
		stages = append(stages, stage)
		if len(stages) > 12 {
			return // let the rebuild finish
		}
		switch k := rng.IntN(8); {
		case k < 5: // a write of one to four updates
			var ups []engine.Update
			for _, r := range edges(1 + rng.IntN(4)) {
				op := store.OpTouch
				if rng.IntN(3) == 0 {
					op = store.OpDelete
				}
				ups = append(ups, engine.Update{Op: op, Relationship: r})
			}
			if rng.IntN(4) == 0 {
				ups = append(ups, engine.Update{Op: store.OpTouch, Relationship: mustParse(t, fmt.Sprintf("group:%s#member@user:u%d", g(), rng.IntN(3)))})
			}
			if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups}); err != nil {
				t.Errorf("write during the rebuild: %v", err)
			}
		case k < 6: // a delete by filter
			if _, err := eng.DeleteRelationships(ctx, engine.DeleteRequest{Caller: "test", Filter: tuple.Filter{ResourceType: "group", ResourceID: g()}}); err != nil {
				t.Errorf("delete during the rebuild: %v", err)
			}
		default: // an import: many objects change, which restarts the rebuild
			if _, _, err := eng.Import(ctx, "test", seqOf(edges(12)...)); err != nil {
				t.Errorf("import during the rebuild: %v", err)
			}
		}
	})
	rels := edges(40)
	for i := range 6 {
		rels = append(rels, mustParse(t, fmt.Sprintf("group:g%d#member@user:u%d", rng.IntN(groups), i%3)))
	}
	if _, _, err := eng.Import(ctx, "test", seqOf(rels...)); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitNestedIndex(ctx); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if !slices.Contains(stages, "caught-up") {
		t.Errorf("the rebuild went through %v, never caught up", stages)
	}
	head, err := eng.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := bruteClosure(t, st, head)
	if got := closureRows(t, st, head); !slices.Equal(got, want) {
		t.Fatalf("stored closure at the head\n%v\nwant\n%v", got, want)
	}
	_, reps, err := eng.VerifyNestedIndex(ctx)
	if err != nil || len(reps) != 1 {
		t.Fatalf("verify: %v %v", reps, err)
	}
	if r := reps[0]; !r.Ready || r.Missing+r.Extra+r.Wrong != 0 || r.Rows != len(want) {
		t.Fatalf("verify: %+v (want %d rows)", r, len(want))
	}
	var ids []string
	for i := range groups {
		ids = append(ids, fmt.Sprintf("g%d", i))
	}
	ready := checkNestedHistory(t, st, eng, off, ids)
	if ready == 0 {
		t.Error("the index never read as ready")
	}
	t.Logf("stages %v; %d revisions, %d read the index as ready", stages, head, ready)
}

// checkNestedHistory asserts, at every revision of st, that the index
// reads as ready only where its rows are the closure of the revision's
// edges, and that eng (index on) and off (index off) answer the same
// there (elsewhere both walk). It returns how many revisions read as
// ready.
func checkNestedHistory(t *testing.T, st store.Store, eng, off *engine.Engine, groups []string) (ready int) {
	t.Helper()
	return checkNestedHistoryFrom(t, st, eng, off, groups, 1)
}

// checkNestedHistoryFrom is checkNestedHistory from revision from on.
func checkNestedHistoryFrom(t *testing.T, st store.Store, eng, off *engine.Engine, groups []string, from store.Revision) (ready int) {
	t.Helper()
	ctx := t.Context()
	rel := groupMember(t)
	head, err := st.HeadRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fp := token.FingerprintOf(st.Kind(), st.ID())
	subjects := []string{"user:u0", "user:u1", "user:u2", "user:ann", "group:" + groups[0] + "#member", "group:" + groups[len(groups)-1] + "#member"}
	for rev := from; rev <= head; rev++ {
		r, err := st.Snapshot(ctx, rev)
		if err != nil {
			t.Fatal(err)
		}
		m, err := eval.ReadNestedMarker(ctx, r, rel)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Ready {
			continue // checks walk there, with or without the index
		}
		ready++
		if got, want := closureRows(t, st, rev), bruteClosure(t, st, rev); !slices.Equal(got, want) {
			t.Fatalf("revision %d reads as ready with the closure\n%v\nwant\n%v", rev, got, want)
		}
		z := token.EncodeZookie(fp, uint64(rev))
		for _, x := range groups {
			for _, s := range subjects {
				q := engine.CheckQuery{Resource: tuple.ObjectRef{Type: "group", ID: x}, Permission: "member", Subject: mustParse(t, "group:x#member@"+s).Subject}
				a, errA := eng.Check(ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: q})
				b, errB := off.Check(ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: q})
				if errA != nil || errB != nil || a.Permissionship != b.Permissionship {
					t.Fatalf("Check(group:%s#member@%s) at revision %d: index %v (%v), walk %v (%v)", x, s, rev, a.Permissionship, errA, b.Permissionship, errB)
				}
			}
		}
	}
	return ready
}

// TestNestedRebuildClose closes the engine while its background rebuild
// runs: Close cancels it and waits for it, the index stays stale (checks
// walk, with the same answers), and the next engine rebuilds it.
func TestNestedRebuildClose(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			st := b.open(t, clk.Now)
			eng, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := eng.WriteSchema(ctx, "test", nestedSchema); err != nil {
				t.Fatal(err)
			}
			entered := make(chan struct{})
			engine.SetNestedRebuildHook(eng, func(ctx context.Context, stage string) {
				if stage == "loaded" {
					close(entered)
					<-ctx.Done() // until Close cancels the rebuild
				}
			})
			var rels []tuple.Relationship
			for l := 1; l < 10; l++ {
				rels = append(rels, mustParse(t, fmt.Sprintf("group:g%d#member@group:g%d#member", l-1, l)))
			}
			rels = append(rels, mustParse(t, "group:g9#member@user:ann"))
			if _, _, err := eng.Import(ctx, "test", seqOf(rels...)); err != nil {
				t.Fatal(err)
			}
			<-entered
			if !eng.Stats().NestedIndexBuilding {
				t.Error("Stats().NestedIndexBuilding is false during the rebuild")
			}
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			if err := eng.WaitNestedIndex(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("WaitNestedIndex after Close = %v, want the cancellation", err)
			}
			if s := eng.Stats(); s.NestedIndexBuilding || s.NestedIndexRebuilds != 1 || s.NestedIndexRebuildFailures != 1 {
				t.Errorf("stats after Close: building %v, %d rebuilds, %d failed; want false, 1, 1", s.NestedIndexBuilding, s.NestedIndexRebuilds, s.NestedIndexRebuildFailures)
			}
			again, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { again.Close() })
			q := engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{
				Resource: tuple.ObjectRef{Type: "group", ID: "g0"}, Permission: "member", Subject: tuple.SubjectRef{Type: "user", ID: "ann"}}}
			if err := again.WaitNestedIndex(ctx); err != nil {
				t.Fatal(err)
			}
			_, reps, err := again.VerifyNestedIndex(ctx)
			if err != nil || len(reps) != 1 || !reps[0].Ready || reps[0].Rows != 45 || reps[0].Missing+reps[0].Extra+reps[0].Wrong != 0 {
				t.Fatalf("after reopening: %+v, %v; want ready with 45 rows", reps, err)
			}
			if res, err := again.Check(ctx, q); err != nil || res.Permissionship != engine.HasPermission {
				t.Errorf("check through the rebuilt index: %v, %v", res.Permissionship, err)
			}
		})
	}
}

// failingLoads is a store whose bulk loads and transactions fail for the
// index rebuild while fail is set.
type failingLoads struct {
	*memstore.Store
	fail bool
}

var errInjected = errors.New("injected failure")

func (f *failingLoads) Import(ctx context.Context, meta store.WriteMeta, rels iter.Seq2[tuple.Relationship, error]) (store.Revision, int, error) {
	if f.fail && meta.Operation == engine.OpNameRebuildNestedIndex {
		return 0, 0, errInjected
	}
	return f.Store.Import(ctx, meta, rels)
}

func (f *failingLoads) Update(ctx context.Context, meta store.WriteMeta, fn func(context.Context, store.Tx) error) (store.Revision, error) {
	if f.fail && meta.Operation == engine.OpNameRebuildNestedIndex {
		return 0, errInjected
	}
	return f.Store.Update(ctx, meta, fn)
}

// TestNestedRebuildFails makes the rebuild after an import fail: the
// index stays stale, checks walk with the same answers, the failure is
// counted and returned by WaitNestedIndex, and the next write of a nested
// edge starts a rebuild that succeeds.
func TestNestedRebuildFails(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	mem := memstore.New(memstore.Options{Now: clk.Now})
	t.Cleanup(func() { mem.Close() })
	st := &failingLoads{Store: mem, fail: true}
	eng, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	off, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1, NoNestedIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", nestedSchema); err != nil {
		t.Fatal(err)
	}
	rels := []tuple.Relationship{
		mustParse(t, "group:a#member@group:b#member"),
		mustParse(t, "group:b#member@group:c#member"),
		mustParse(t, "group:c#member@user:ann"),
	}
	if _, _, err := eng.Import(ctx, "test", seqOf(rels...)); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitNestedIndex(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("WaitNestedIndex = %v, want the injected failure", err)
	}
	if s := eng.Stats(); s.NestedIndexRebuildFailures != 1 {
		t.Errorf("%d failed rebuilds counted, want 1", s.NestedIndexRebuildFailures)
	}
	_, reps, err := eng.VerifyNestedIndex(ctx)
	if err != nil || len(reps) != 1 || reps[0].Ready {
		t.Fatalf("after the failed rebuild: %+v, %v; want stale", reps, err)
	}
	head, err := eng.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkNestedHistory(t, mem, eng, off, []string{"a", "b", "c"})
	// The next write of a nested edge, once the store works, rebuilds it.
	st.fail = false
	if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: []engine.Update{
		{Op: store.OpTouch, Relationship: mustParse(t, "group:c#member@group:d#member")}}}); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitNestedIndex(ctx); err != nil {
		t.Fatal(err)
	}
	_, reps, err = eng.VerifyNestedIndex(ctx)
	if err != nil || len(reps) != 1 || !reps[0].Ready || reps[0].Rows != 6 || reps[0].Missing+reps[0].Extra+reps[0].Wrong != 0 {
		t.Fatalf("after the write: %+v, %v; want ready with 6 rows (at revision %d before)", reps, err, head)
	}
}

// TestNestedRebuildRepairs damages an index that reads as complete
// (a row added, one removed, one with a wrong distance, written straight
// into the store) and has RebuildNestedIndex find and repair it: it marks
// the index stale before it writes, so that no revision reads the
// repair half done.
func TestNestedRebuildRepairs(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			st := b.open(t, clk.Now)
			eng, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { eng.Close() })
			off, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1, NoNestedIndex: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := eng.WriteSchema(ctx, "test", nestedSchema); err != nil {
				t.Fatal(err)
			}
			var rels []tuple.Relationship
			var ids []string
			for l := 1; l < 6; l++ {
				rels = append(rels, mustParse(t, fmt.Sprintf("group:g%d#member@group:g%d#member", l-1, l)))
				ids = append(ids, fmt.Sprintf("g%d", l-1))
			}
			rels = append(rels, mustParse(t, "group:g5#member@user:ann"))
			if _, _, err := eng.Import(ctx, "test", seqOf(rels...)); err != nil {
				t.Fatal(err)
			}
			if err := eng.WaitNestedIndex(ctx); err != nil {
				t.Fatal(err)
			}
			rel := groupMember(t)
			damaged, err := st.Update(ctx, store.WriteMeta{Caller: "test"}, func(ctx context.Context, tx store.Tx) error {
				return errors.Join(
					tx.Touch(ctx, eval.NestedRow(rel, "g5", "g0", 1)),        // extra
					tx.Delete(ctx, eval.NestedRow(rel, "g0", "g5", 5).Key()), // missing
					tx.Delete(ctx, eval.NestedRow(rel, "g1", "g3", 2).Key()),
					tx.Touch(ctx, eval.NestedRow(rel, "g1", "g3", 1)), // wrong
				)
			})
			if err != nil {
				t.Fatal(err)
			}
			reps, err := eng.RebuildNestedIndex(ctx)
			if err != nil || len(reps) != 1 {
				t.Fatalf("RebuildNestedIndex = %+v, %v", reps, err)
			}
			if r := reps[0]; !r.Ready || r.Rows != 15 || r.Extra != 1 || r.Missing != 1 || r.Wrong != 1 || r.Written != 4 {
				t.Errorf("RebuildNestedIndex found %+v, want ready, 15 rows, 1 extra, 1 missing, 1 wrong, 4 written", r)
			}
			_, reps, err = eng.VerifyNestedIndex(ctx)
			if err != nil || len(reps) != 1 || !reps[0].Ready || reps[0].Rows != 15 || reps[0].Missing+reps[0].Extra+reps[0].Wrong != 0 {
				t.Fatalf("after the repair: %+v, %v", reps, err)
			}
			// An index that is complete and right: nothing to write.
			reps, err = eng.RebuildNestedIndex(ctx)
			if err != nil || len(reps) != 1 || reps[0].Written != 0 || !reps[0].Ready {
				t.Errorf("RebuildNestedIndex of a right index = %+v, %v; want nothing written", reps, err)
			}
			// The damaged revision read as ready (the damage bypassed the
			// engine); every revision after it must be right or stale.
			checkNestedHistoryFrom(t, st, eng, off, ids, damaged+1)
		})
	}
}
