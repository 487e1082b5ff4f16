package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func (s *suite) testBulk(t *testing.T) {
	ctx := context.Background()
	st, _ := s.open(t, Config{MaxBatchOps: 10})
	bl, ok := st.(store.BulkLoader)
	if !ok {
		t.Skipf("%s store does not implement store.BulkLoader", st.Kind())
	}
	existing := MustParse(t, "doc:0#viewer@user:0")[0]
	existing.Caveat = &tuple.Caveat{Name: "old"}
	before := MustTouch(t, st, existing)

	const n = 2500
	rels := make([]tuple.Relationship, n)
	for i := range rels {
		rels[i] = tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i % 97)}, Relation: "viewer",
			Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint(i)},
		}
	}
	rels[0] = MustParse(t, "doc:0#viewer@user:0")[0] // replaces existing: Touch semantics
	seq := func(fail int) func(yield func(tuple.Relationship, error) bool) {
		return func(yield func(tuple.Relationship, error) bool) {
			for i, r := range rels {
				if i == fail {
					yield(tuple.Relationship{}, errAbort)
					return
				}
				if !yield(r, nil) {
					return
				}
			}
		}
	}

	// An error in the input writes nothing.
	for _, fail := range []int{0, 1, n - 1} {
		if _, _, err := bl.Import(ctx, store.WriteMeta{Caller: "bulk"}, seq(fail)); !errors.Is(err, errAbort) {
			t.Errorf("Import failing at %d: err = %v, want the input's error", fail, err)
		}
		if got := MustHead(t, st); got != before {
			t.Errorf("Import failing at %d: head = %d, want %d", fail, got, before)
		}
	}
	checkState(t, "after failed imports", MustSnapshot(t, st, before), newModel(existing))

	rev, count, err := bl.Import(ctx, store.WriteMeta{Caller: "bulk"}, seq(-1))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if rev != before+1 || count != n {
		t.Errorf("Import = (%d, %d), want (%d, %d)", rev, count, before+1, n)
	}
	if got := MustHead(t, st); got != rev {
		t.Errorf("head after Import = %d, want %d", got, rev)
	}
	m := newModel(rels...)
	checkState(t, "after Import", MustSnapshot(t, st, rev), m)
	checkState(t, "before Import", MustSnapshot(t, st, before), newModel(existing))
	f := tuple.Filter{ResourceType: "doc", ResourceID: "5"}
	got, err := Collect(MustSnapshot(t, st, rev).QueryRelationships(ctx, f, store.QueryOptions{}))
	checkRels(t, "point query after Import", got, err, m.forward(f, store.QueryOptions{}))

	// An empty import is fine too.
	if _, count, err := bl.Import(ctx, store.WriteMeta{}, func(func(tuple.Relationship, error) bool) {}); err != nil || count != 0 {
		t.Errorf("empty Import = (%d, %v), want (0, nil)", count, err)
	}
}
