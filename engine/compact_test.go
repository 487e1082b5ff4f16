package engine_test

import (
	"context"
	"fmt"
	"iter"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// chainRels returns n relationships: chains of ten groups nested in each
// other, each group with a member, so that the nested-group index has
// rows to rebuild after the import.
func chainRels(prefix string, n int) []tuple.Relationship {
	var out []tuple.Relationship
	for i := 0; len(out) < n; i++ {
		g := fmt.Sprintf("%s-c%d-%d", prefix, i/10, i%10)
		out = append(out, tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: g}, Relation: "member",
			Subject: tuple.SubjectRef{Type: "user", ID: "u" + g}})
		if len(out) < n && i%10 < 9 {
			out = append(out, tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: g}, Relation: "member",
				Subject: tuple.SubjectRef{Type: "group", ID: fmt.Sprintf("%s-c%d-%d", prefix, i/10, i%10+1), Relation: "member"}})
		}
	}
	return out
}

// withNilErrors yields rels for Import.
func withNilErrors(rels []tuple.Relationship) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for _, r := range rels {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// TestCompactAfterImport checks that an import large enough
// (Options.CompactAfterImport, and a quarter of the store) has the store
// compacted in the background, after the nested-group index's rebuild,
// with the same answers; that smaller imports add up; that a small import
// into a large store, a store that cannot compact and the option turned
// off compact nothing.
func TestCompactAfterImport(t *testing.T) {
	tests := []struct {
		name      string
		threshold int64
		imports   []int // relationships per import, in order
		memory    bool  // memstore: no store.Compacter
		want      uint64
	}{
		{"one large import", 1000, []int{1500}, false, 1},
		{"small imports add up", 1000, []int{600, 600}, false, 1},
		{"below the threshold", 1000, []int{600}, false, 0},
		{"small share of a large store", 500, []int{4000, 900}, false, 1},
		{"a large share of a large store", 500, []int{4000, 4000}, false, 2},
		{"off", -1, []int{1500}, false, 0},
		{"memstore", 1000, []int{1500}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			var (
				st  store.Store
				peb *pebblestore.Store
			)
			if tt.memory {
				st = memstore.New(memstore.Options{})
			} else {
				var err error
				if peb, err = pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true}); err != nil {
					t.Fatal(err)
				}
				defer peb.Close()
				st = peb
			}
			eng, err := engine.Open(ctx, st, engine.Options{CompactAfterImport: tt.threshold})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			if _, _, err := eng.WriteSchema(ctx, "test", testSchema); err != nil {
				t.Fatal(err)
			}
			for i, n := range tt.imports {
				rels := chainRels(fmt.Sprintf("g%d", i), n)
				if _, got, err := eng.Import(ctx, "test", withNilErrors(rels)); err != nil || got != n {
					t.Fatalf("import %d: %d imported, %v", i, got, err)
				}
				if err := eng.WaitCompaction(ctx); err != nil {
					t.Fatal(err)
				}
				// The next import sees the store's count after this one.
				if err := eng.SettleStatistics(ctx); err != nil {
					t.Fatal(err)
				}
			}
			s := eng.Stats()
			if s.ImportCompactions != tt.want || s.ImportCompactionFailures != 0 {
				t.Errorf("%d compactions after imports (%d failed), want %d", s.ImportCompactions, s.ImportCompactionFailures, tt.want)
			}
			// The answers are those of the chains: the first group's
			// members include the last group's member.
			if err := eng.WaitNestedIndex(ctx); err != nil {
				t.Fatal(err)
			}
			i := len(tt.imports) - 1
			q := fmt.Sprintf("group:g%d-c0-0#member@user:ug%d-c0-9", i, i)
			r := mustParse(t, q)
			res, err := eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(),
				CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
			if err != nil || res.Permissionship != engine.HasPermission {
				t.Errorf("%s: %v, %v; want HasPermission", q, res.Permissionship, err)
			}
		})
	}
}

// TestCloseCancelsCompactionAfterImport checks that Close returns while a
// compaction after an import waits or runs, and that nothing runs after.
func TestCloseCancelsCompactionAfterImport(t *testing.T) {
	ctx := context.Background()
	peb, err := pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer peb.Close()
	eng, err := engine.Open(ctx, peb, engine.Options{CompactAfterImport: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", testSchema); err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.Import(ctx, "test", withNilErrors(chainRels("g", 2000))); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitCompaction(ctx); err != nil {
		t.Errorf("WaitCompaction after Close: %v", err)
	}
	if s := eng.Stats(); s.ImportCompactionFailures != 0 {
		t.Errorf("%d failed compactions counted: a compaction cancelled by Close is not a failure", s.ImportCompactionFailures)
	}
}
