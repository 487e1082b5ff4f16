package engine_test

import (
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
)

// TestSettleStatistics checks that SettleStatistics leaves the store's
// statistics counted at the head revision: a Pebble store counts at open
// (nothing, here) and then only after many writes, so after a few writes
// its count is behind until settled.
func TestSettleStatistics(t *testing.T) {
	ctx := t.Context()
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.Open(ctx, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.WriteSchema(ctx, "test", testSchema); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"group:eng#member@user:tom", "group:eng#member@user:ann", "document:d#viewer@group:eng#member"} {
		if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: []engine.Update{{Op: store.OpTouch, Relationship: mustParse(t, s)}}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // the second call finds the count current
		if err := eng.SettleStatistics(ctx); err != nil {
			t.Fatal(err)
		}
		head, err := eng.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := st.Statistics()
		if got == nil || got.Revision != head {
			t.Fatalf("statistics after SettleStatistics: %+v; want a count at the head %d", got, head)
		}
		if c := got.Resource("group", "member"); c.Relationships != 2 {
			t.Errorf("group#member counted %+v, want 2 relationships", c)
		}
		if c := got.Resource("document", "viewer"); c.Relationships != 1 {
			t.Errorf("document#viewer counted %+v, want 1 relationship", c)
		}
	}
}

// TestCompactStore checks that CompactStore compacts a store that can
// (Pebble) without changing an answer, is a no-op on one that cannot
// (memory), and fails once the engine is closed.
func TestCompactStore(t *testing.T) {
	pebble, err := pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pebble.Close()
	for _, tc := range []struct {
		name string
		st   store.Store
	}{
		{"pebble", pebble},
		{"memory", memstore.New(memstore.Options{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			eng, err := engine.Open(ctx, tc.st, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := eng.WriteSchema(ctx, "test", testSchema); err != nil {
				t.Fatal(err)
			}
			rels := []string{"group:eng#member@user:tom", "document:d#viewer@group:eng#member"}
			for _, s := range rels {
				if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: []engine.Update{{Op: store.OpTouch, Relationship: mustParse(t, s)}}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := eng.CompactStore(ctx); err != nil {
				t.Fatal(err)
			}
			q := mustParse(t, "document:d#view@user:tom")
			res, err := eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(),
				CheckRequest: engine.CheckQuery{Resource: q.Resource, Permission: q.Relation, Subject: q.Subject}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Permissionship != engine.HasPermission {
				t.Errorf("check after CompactStore: %v, want HasPermission", res.Permissionship)
			}
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			if err := eng.CompactStore(ctx); err == nil {
				t.Error("CompactStore on a closed engine: no error")
			}
		})
	}
}
