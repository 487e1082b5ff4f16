package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// memoryChain writes nestedSchema and a chain of n groups, g(n-1) ⊃ … ⊃
// g0 ∋ user:deep, viewing document:d through the top group.
func memoryChain(t *testing.T, eng *engine.Engine, n int) {
	t.Helper()
	ctx := t.Context()
	if _, _, err := eng.WriteSchema(ctx, "test", nestedSchema); err != nil {
		t.Fatal(err)
	}
	ups := []engine.Update{{Op: store.OpTouch, Relationship: mustParse(t, "group:g0#member@user:deep")},
		{Op: store.OpTouch, Relationship: mustParse(t, fmt.Sprintf("document:d#viewer@group:g%d#member", n-1))}}
	for i := 1; i < n; i++ {
		ups = append(ups, engine.Update{Op: store.OpTouch, Relationship: mustParse(t, fmt.Sprintf("group:g%d#member@group:g%d#member", i, i-1))})
	}
	if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups}); err != nil {
		t.Fatal(err)
	}
}

// memoryCheck checks q at the head and returns the answer.
func memoryCheck(t *testing.T, eng *engine.Engine, q string) eval.Permissionship {
	t.Helper()
	r := mustParse(t, q)
	resp, err := eng.Check(t.Context(), engine.CheckRequest{Consistency: engine.FullyConsistent(),
		CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
	if err != nil {
		t.Fatalf("check %s: %v", q, err)
	}
	return resp.Permissionship
}

// TestNestedMemory checks how the engine loads the nested-group index's
// closure into memory (closuremem.go): a check that misses it starts a
// load, later checks read it, a budget too small keeps it in the store,
// a negative one turns memory off; answers are the same every way.
func TestNestedMemory(t *testing.T) {
	const q = "document:d#view@user:deep"
	for _, tc := range []struct {
		name     string
		budget   int64
		loads    uint64
		tooLarge bool
	}{
		{"default budget", 0, 1, false},
		{"budget too small", 100, 0, true},
		{"off", -1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New(memstore.Options{})
			t.Cleanup(func() { st.Close() })
			eng, err := engine.Open(t.Context(), st, engine.Options{CacheBytes: -1, NestedMemoryBytes: tc.budget})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { eng.Close() })
			memoryChain(t, eng, 20)
			for range 3 {
				if got := memoryCheck(t, eng, q); got != eval.HasPermission {
					t.Fatalf("%s = %v", q, got)
				}
				if err := eng.WaitNestedMemory(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			s := eng.Stats()
			if s.NestedMemoryLoads != tc.loads || (s.NestedMemoryTooLarge > 0) != tc.tooLarge || s.NestedMemoryLoadFailures != 0 {
				t.Errorf("%d loads, %d too large, %d failed; want %d loads, too large %v", s.NestedMemoryLoads, s.NestedMemoryTooLarge, s.NestedMemoryLoadFailures, tc.loads, tc.tooLarge)
			}
			// 20 groups: 190 closure rows.
			if read := s.Plans["nested_index_memory"]; (read > 0) != (tc.loads > 0) || (tc.loads > 0) != (s.NestedMemoryBytes > 190*6) {
				t.Errorf("%d checks read memory, holding %d bytes", read, s.NestedMemoryBytes)
			}
		})
	}
}

// TestNestedMemoryReload changes the closure after a load: the checks at
// the new revision read the store (the generation differs) until the
// misses pay for a load, and read the new closure from memory after it.
func TestNestedMemoryReload(t *testing.T) {
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	eng, err := engine.Open(t.Context(), st, engine.Options{CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	memoryChain(t, eng, 30)
	const q = "document:d#view@user:deep"
	memoryCheck(t, eng, q)
	if err := eng.WaitNestedMemory(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := eng.Stats()
	if before.NestedMemoryLoads != 1 {
		t.Fatalf("%d loads after the first check", before.NestedMemoryLoads)
	}
	// Cut the chain in the middle: user:deep no longer views.
	if _, err := eng.WriteRelationships(t.Context(), engine.WriteRequest{Caller: "test", Updates: []engine.Update{
		{Op: store.OpDelete, Relationship: mustParse(t, "group:g15#member@group:g14#member")}}}); err != nil {
		t.Fatal(err)
	}
	due := int(before.NestedMemoryBytes / 48) // closureLoadCost
	if due < 2 {
		t.Fatalf("a closure of %d bytes: the test needs one that waits for misses", before.NestedMemoryBytes)
	}
	misses := 0
	for eng.Stats().NestedMemoryLoads == 1 {
		if misses++; misses > due {
			t.Fatalf("no load after %d misses; due after %d", misses, due)
		}
		if got := memoryCheck(t, eng, q); got != eval.NoPermission {
			t.Fatalf("miss %d: %s = %v after the cut", misses, q, got)
		}
		if err := eng.WaitNestedMemory(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if misses != due {
		t.Errorf("the load started at miss %d, want %d", misses, due)
	}
	read := eng.Stats().Plans["nested_index_memory"]
	if got := memoryCheck(t, eng, q); got != eval.NoPermission {
		t.Fatalf("%s = %v from the new closure", q, got)
	}
	if memoryCheck(t, eng, "group:g14#member@user:deep") != eval.HasPermission {
		t.Fatal("group:g14 lost user:deep")
	}
	if n := eng.Stats().Plans["nested_index_memory"]; n < read+2 {
		t.Errorf("%d checks read the new closure from memory, want 2", n-read)
	}
}

// TestNestedMemoryGenerationOnOpen opens an engine on an index complete
// without a generation row (as versions before generations wrote it):
// it adds one, and checks read the closure from memory.
func TestNestedMemoryGenerationOnOpen(t *testing.T) {
	ctx := t.Context()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	old, err := engine.Open(ctx, st, engine.Options{CacheBytes: -1, NestedMemoryBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	memoryChain(t, old, 5)
	old.Close()
	// Drop the generation row, as the older version never wrote one.
	gen := func() uint64 {
		t.Helper()
		head, err := st.HeadRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r, err := st.Snapshot(ctx, head)
		if err != nil {
			t.Fatal(err)
		}
		m, err := eval.ReadNestedMarker(context.Background(), r, groupMember(t))
		if err != nil || !m.Ready {
			t.Fatalf("marker: %+v, %v", m, err)
		}
		return m.Gen
	}
	if _, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
		m, err := eval.ReadNestedMarker(ctx, tx, groupMember(t))
		if err != nil {
			return err
		}
		for _, row := range m.GenRows {
			if err := tx.Delete(ctx, row.Key()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if g := gen(); g != 0 {
		t.Fatalf("generation %x left", g)
	}
	eng, err := engine.Open(ctx, st, engine.Options{CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if err := eng.WaitNestedIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if gen() == 0 {
		t.Fatal("no generation row after the engine opened")
	}
	for range 2 {
		if memoryCheck(t, eng, "document:d#view@user:deep") != eval.HasPermission {
			t.Fatal("document:d lost user:deep")
		}
		if err := eng.WaitNestedMemory(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := eng.Stats().Plans["nested_index_memory"]; n == 0 {
		t.Error("no check read the closure from memory")
	}
}
