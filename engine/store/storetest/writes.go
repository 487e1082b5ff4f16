package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func (s *suite) testWrites(t *testing.T) {
	t.Run("touch-upsert", s.testTouchUpsert)
	t.Run("create", s.testCreate)
	t.Run("delete", s.testDelete)
	t.Run("delete-matching", s.testDeleteMatching)
	t.Run("transaction-reads", s.testTxReads)
	t.Run("batch-limit", s.testBatchLimit)
}

func (s *suite) testTouchUpsert(t *testing.T) {
	st, _ := s.open(t, Config{})
	plain := MustParse(t, "doc:1#viewer@user:anne")[0]
	other := MustParse(t, "doc:1#viewer@user:bob")[0]
	caveated := plain
	caveated.Caveat = &tuple.Caveat{Name: "weekday", Context: map[string]any{"tz": "UTC"}}
	caveated.Expiration = startTime().Add(time.Hour)
	recaveated := plain
	recaveated.Caveat = &tuple.Caveat{Name: "other"}

	m := newModel()
	for i, step := range [][]tuple.Relationship{{plain, other}, {caveated}, {recaveated}, {plain}, {plain}} {
		rev := MustTouch(t, st, step...)
		m.touch(step...)
		r := MustSnapshot(t, st, rev)
		checkState(t, fmt.Sprintf("after touch %d", i), r, m)
		got, err := Collect(r.QueryRelationships(context.Background(), tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		checkExact(t, fmt.Sprintf("after touch %d", i), got, m.all())
	}
	// Touching the same key twice in one transaction keeps the last.
	rev := MustTouch(t, st, caveated, recaveated)
	m.touch(recaveated)
	checkState(t, "after a double touch", MustSnapshot(t, st, rev), m)
}

func (s *suite) testCreate(t *testing.T) {
	ctx := context.Background()
	st, clock := s.open(t, Config{})
	rels := MustParse(t, "doc:1#viewer@user:anne", "doc:1#viewer@user:bob", "doc:1#viewer@user:carl", "doc:2#viewer@user:anne")
	anne, bob, carl, other := rels[0], rels[1], rels[2], rels[3]

	rev := MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error { return tx.Create(ctx, anne) })
	m := newModel(anne)

	cases := []struct {
		name string
		fn   func(ctx context.Context, tx store.Tx) error
		key  tuple.Key
	}{
		{"create over an existing relationship", func(ctx context.Context, tx store.Tx) error {
			if err := tx.Touch(ctx, bob); err != nil {
				return err
			}
			return tx.Create(ctx, anne)
		}, anne.Key()},
		{"create ignored by fn still aborts", func(ctx context.Context, tx store.Tx) error {
			_ = tx.Create(ctx, anne)
			return tx.Touch(ctx, bob)
		}, anne.Key()},
		{"create twice in one transaction", func(ctx context.Context, tx store.Tx) error {
			if err := tx.Create(ctx, carl); err != nil {
				return err
			}
			return tx.Create(ctx, carl)
		}, carl.Key()},
		{"create after touch in one transaction", func(ctx context.Context, tx store.Tx) error {
			if err := tx.Touch(ctx, carl); err != nil {
				return err
			}
			return tx.Create(ctx, carl)
		}, carl.Key()},
	}
	for _, tc := range cases {
		_, err := st.Update(ctx, store.WriteMeta{}, tc.fn)
		var ae *store.AlreadyExistsError
		if !errors.Is(err, store.ErrAlreadyExists) || !errors.As(err, &ae) {
			t.Errorf("%s: err = %v, want *AlreadyExistsError", tc.name, err)
		} else if ae.Key != tc.key {
			t.Errorf("%s: AlreadyExistsError.Key = %s, want %s", tc.name, ae.Key, tc.key)
		}
		if got := MustHead(t, st); got != rev {
			t.Errorf("%s: head = %d, want %d", tc.name, got, rev)
		}
		checkState(t, tc.name, MustSnapshot(t, st, rev), m)
	}

	// A relationship that has expired by the store's clock does not block Create.
	expiring := other
	expiring.Expiration = clock.Now().Add(time.Minute)
	MustTouch(t, st, expiring)
	if _, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
		return tx.Create(ctx, other)
	}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("Create over an unexpired relationship: err = %v, want ErrAlreadyExists", err)
	}
	clock.Advance(time.Minute) // expiration exactly now: expired
	replacement := other
	replacement.Caveat = &tuple.Caveat{Name: "fresh"}
	rev = MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error { return tx.Create(ctx, replacement) })
	m.touch(replacement)
	checkState(t, "create over an expired relationship", MustSnapshot(t, st, rev), m)
	got, err := Collect(MustSnapshot(t, st, rev).QueryRelationships(ctx, tuple.Filter{ResourceType: "doc", ResourceID: "2"}, store.QueryOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	checkExact(t, "create over an expired relationship", got, []tuple.Relationship{replacement})

	// Create after Delete of the same key in one transaction succeeds.
	rev = MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Delete(ctx, anne.Key()); err != nil {
			return err
		}
		return tx.Create(ctx, anne)
	})
	checkState(t, "delete then create", MustSnapshot(t, st, rev), m)
}

func (s *suite) testDelete(t *testing.T) {
	st, _ := s.open(t, Config{})
	rels := MustParse(t, "doc:1#viewer@user:anne", "doc:1#viewer@user:bob", "doc:1#viewer@group:eng#member")
	before := MustTouch(t, st, rels...)
	m := newModel(rels...)

	absent := MustParse(t, "doc:1#viewer@user:nobody", "doc:1#viewer@group:eng")
	rev := MustDelete(t, st, absent[0].Key(), absent[1].Key())
	if rev != before+1 {
		t.Errorf("deleting absent relationships committed %d, want %d", rev, before+1)
	}
	checkState(t, "after deleting absent relationships", MustSnapshot(t, st, rev), m)

	rev = MustDelete(t, st, rels[0].Key(), rels[2].Key(), rels[0].Key())
	m2 := m.clone()
	m2.delete(rels[0].Key(), rels[2].Key())
	checkState(t, "after delete", MustSnapshot(t, st, rev), m2)
	checkState(t, "before delete", MustSnapshot(t, st, before), m)

	// Delete then Touch in one transaction leaves the relationship; Touch
	// then Delete removes it.
	rev = MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Delete(ctx, rels[1].Key()); err != nil {
			return err
		}
		if err := tx.Touch(ctx, rels[1]); err != nil {
			return err
		}
		if err := tx.Touch(ctx, rels[0]); err != nil {
			return err
		}
		return tx.Delete(ctx, rels[0].Key())
	})
	checkState(t, "after delete+touch and touch+delete", MustSnapshot(t, st, rev), m2)
}

func (s *suite) testDeleteMatching(t *testing.T) {
	ctx := context.Background()
	filters := []struct {
		f     tuple.Filter
		limit int
	}{
		{tuple.Filter{ResourceType: "doc"}, 0},
		{tuple.Filter{ResourceType: "doc", ResourceID: "1"}, 0},
		{tuple.Filter{ResourceType: "doc", ResourceID: "1"}, 3},
		{tuple.Filter{ResourceType: "doc", Relation: "viewer"}, 0},
		{tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "group", Relation: tuple.Ellipsis}}, 0},
		{tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "group", Relation: "member"}}, 0},
		{tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "user", ID: "1"}}, 0},
		{tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "user"}}, 5},
		{tuple.Filter{ResourceType: "doc", ResourceID: "1", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user", ID: "1", Relation: tuple.Ellipsis}}, 0},
		{tuple.Filter{ResourceType: "nope"}, 0},
		{tuple.Filter{ResourceType: "folder"}, 1000},
	}
	for _, tc := range filters {
		name := fmt.Sprintf("%s limit %d", describeFilter(tc.f), tc.limit)
		st, _ := s.open(t, Config{})
		m, before := loadQueryData(t, st)
		matching := m.forward(tc.f, store.QueryOptions{})
		var n int
		rev := MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
			var err error
			n, err = tx.DeleteMatching(ctx, tc.f, tc.limit)
			return err
		})
		want := len(matching)
		if tc.limit > 0 {
			want = min(want, tc.limit)
		}
		if n != want {
			t.Errorf("%s: DeleteMatching returned %d, want %d", name, n, want)
		}
		after, err := Collect(MustSnapshot(t, st, rev).QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		// Exactly n matching relationships are gone and nothing else.
		left := newModel(after...)
		gone := 0
		for k, r := range m {
			if _, ok := left[k]; !ok {
				if !tc.f.Matches(r) {
					t.Errorf("%s: deleted %s, which does not match", name, k)
				}
				gone++
			}
		}
		if gone != n || len(after)+n != len(m) {
			t.Errorf("%s: %d relationships gone, %d left of %d; DeleteMatching said %d", name, gone, len(after), len(m), n)
		}
		checkState(t, name+": old reader", before, m)
	}

	// DeleteMatching does not count towards the batch limit, and sees
	// the transaction's own touches.
	st, _ := s.open(t, Config{MaxBatchOps: 2})
	rels := MustParse(t, "doc:1#viewer@user:1", "doc:1#viewer@user:2", "doc:1#viewer@user:3", "doc:2#viewer@user:1")
	MustTouch(t, st, rels[0], rels[1])
	MustTouch(t, st, rels[2], rels[3])
	var n int
	rev := MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		var err error
		if n, err = tx.DeleteMatching(ctx, tuple.Filter{ResourceType: "doc", ResourceID: "1"}, 0); err != nil {
			return err
		}
		return tx.Touch(ctx, rels[0])
	})
	if n != 3 {
		t.Errorf("DeleteMatching returned %d, want 3", n)
	}
	checkState(t, "delete matching then touch", MustSnapshot(t, st, rev), newModel(rels[0], rels[3]))

	// DeleteMatching also removes what the transaction itself touched.
	extra := MustParse(t, "doc:1#viewer@user:4")[0]
	rev = MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Touch(ctx, extra); err != nil {
			return err
		}
		var err error
		n, err = tx.DeleteMatching(ctx, tuple.Filter{ResourceType: "doc", ResourceID: "1"}, 0)
		return err
	})
	if n != 2 {
		t.Errorf("DeleteMatching after a touch returned %d, want 2", n)
	}
	checkState(t, "touch then delete matching", MustSnapshot(t, st, rev), newModel(rels[3]))
}

func (s *suite) testTxReads(t *testing.T) {
	st, _ := s.open(t, Config{})
	rels := MustParse(t, "doc:1#viewer@user:1", "doc:1#viewer@user:2", "doc:1#viewer@user:3")
	prev := MustTouch(t, st, rels[0], rels[1])
	m := newModel(rels[0], rels[1])
	var inside []tuple.Relationship
	var insideErr error
	MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Touch(ctx, rels[2]); err != nil {
			return err
		}
		if err := tx.Delete(ctx, rels[0].Key()); err != nil {
			return err
		}
		inside, insideErr = Collect(tx.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}))
		return nil
	})
	checkRels(t, fmt.Sprintf("transaction read (previous revision %d)", prev), inside, insideErr, m.all())

	// Reads by subject (store.ReverseTx) see the previous revision too.
	MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		rt, ok := tx.(store.ReverseTx)
		if !ok {
			t.Errorf("%T does not implement store.ReverseTx", tx)
			return nil
		}
		if err := tx.Touch(ctx, rels[0]); err != nil {
			return err
		}
		got, err := Collect(rt.ReverseQueryRelationships(ctx, tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}, ResourceType: "doc"}, store.QueryOptions{}))
		checkRels(t, "transaction read by subject", got, err, rels[1:3])
		return nil
	})
	m.touch(rels[0])

	// Limit and After work inside transactions too.
	after := rels[0].Key()
	MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		got, err := Collect(tx.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{After: &after, Limit: 2}))
		checkRels(t, "transaction read with cursor", got, err, rels[1:3])
		return nil
	})
}

func (s *suite) testBatchLimit(t *testing.T) {
	ctx := context.Background()
	for _, max := range []int{0, 5} {
		st, _ := s.open(t, Config{MaxBatchOps: max})
		limit := max
		if limit == 0 {
			limit = store.DefaultMaxBatchOps
		}
		rels := make([]tuple.Relationship, limit+1)
		for i := range rels {
			rels[i] = tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i)}, Relation: "viewer",
				Subject: tuple.SubjectRef{Type: "user", ID: "u"},
			}
		}
		rev := MustTouch(t, st, rels[:limit]...)
		m := newModel(rels[:limit]...)
		cases := []struct {
			name string
			fn   func(ctx context.Context, tx store.Tx) error
		}{
			{"touches", func(ctx context.Context, tx store.Tx) error {
				for _, r := range rels {
					_ = tx.Touch(ctx, r)
				}
				return nil
			}},
			{"touches with the error returned", func(ctx context.Context, tx store.Tx) error {
				return touchAll(ctx, tx, rels...)
			}},
			{"mixed operations", func(ctx context.Context, tx store.Tx) error {
				for i, r := range rels {
					var err error
					switch i % 3 {
					case 0:
						err = tx.Touch(ctx, r)
					case 1:
						err = tx.Delete(ctx, r.Key())
					default:
						r.Resource.ID += "_new"
						err = tx.Create(ctx, r)
					}
					if err != nil {
						return err
					}
				}
				return nil
			}},
		}
		for _, tc := range cases {
			name := fmt.Sprintf("limit %d: %s", limit, tc.name)
			_, err := st.Update(ctx, store.WriteMeta{}, tc.fn)
			if !errors.Is(err, store.ErrBatchTooLarge) {
				t.Errorf("%s: err = %v, want ErrBatchTooLarge", name, err)
			}
			if got := MustHead(t, st); got != rev {
				t.Errorf("%s: head = %d, want %d", name, got, rev)
			}
			checkState(t, name, MustSnapshot(t, st, rev), m)
		}
		// Exactly the limit is fine, and so are deletes of absent keys.
		rev = MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
			if err := touchAll(ctx, tx, rels[1:limit]...); err != nil {
				return err
			}
			return tx.Delete(ctx, rels[limit].Key())
		})
		checkState(t, fmt.Sprintf("limit %d: exactly at the limit", limit), MustSnapshot(t, st, rev), m)
	}
}
