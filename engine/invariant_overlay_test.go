package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestOverlayMatchesCommit is a differential test of the state invariant
// checks read: for random stored data and random pending changes, every
// query of the overlay (inside the write's transaction, before the changes
// are applied) answers what the same query answers once the changes are
// committed.
func TestOverlayMatchesCommit(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	rng := rand.New(rand.NewPCG(7, 11))
	random := func() tuple.Relationship {
		r := tuple.Relationship{
			Resource: tuple.ObjectRef{Type: []string{"doc", "team"}[rng.IntN(2)], ID: fmt.Sprint("o", rng.IntN(3))},
			Relation: []string{"a", "b", "c"}[rng.IntN(3)],
			Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprint("u", rng.IntN(4))},
		}
		switch rng.IntN(5) {
		case 0:
			r.Expiration = past
		case 1:
			r.Expiration = future
		case 2:
			r.Subject.Relation = "member"
		}
		return r
	}
	errAbort := errors.New("abort")
	for round := range 60 {
		a := memstore.New(memstore.Options{Now: func() time.Time { return now }})
		b := memstore.New(memstore.Options{Now: func() time.Time { return now }})
		base := map[tuple.Key]tuple.Relationship{}
		for range rng.IntN(30) {
			r := random()
			base[r.Key()] = r
		}
		for _, st := range []store.Store{a, b} {
			if _, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
				for _, r := range base {
					if err := tx.Touch(ctx, r); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		var changes []invChange
		seen := map[tuple.Key]bool{}
		for i := range rng.IntN(10) {
			r := random()
			if seen[r.Key()] {
				continue
			}
			seen[r.Key()] = true
			c := invChange{index: i, op: store.OpTouch, key: r.Key(), rel: &r}
			if rng.IntN(3) == 0 {
				c.op, c.rel = store.OpDelete, nil
			}
			changes = append(changes, c)
		}
		// b commits the changes.
		if _, err := b.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
			for _, c := range changes {
				var err error
				if c.rel != nil {
					err = tx.Touch(ctx, *c.rel)
				} else {
					err = tx.Delete(ctx, c.key)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		head, _ := b.HeadRevision(ctx)
		committed, err := b.Snapshot(ctx, head)
		if err != nil {
			t.Fatal(err)
		}
		filters := []tuple.Filter{
			{ResourceType: "doc"},
			{ResourceType: "doc", ResourceID: "o1"},
			{ResourceType: "team", ResourceID: "o0", Relation: "a"},
			{ResourceType: "doc", Relation: "b", Subject: &tuple.SubjectFilter{Type: "user", Relation: tuple.Ellipsis}},
			{ResourceType: "team", Subject: &tuple.SubjectFilter{Type: "user", ID: "u2", Relation: "member"}},
		}
		collect := func(r store.Reader, f tuple.Filter, o store.QueryOptions) []string {
			var out []string
			for x, err := range r.QueryRelationships(ctx, f, o) {
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, x.String())
			}
			return out
		}
		// a judges inside a transaction that is then abandoned.
		_, err = a.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
			ov := newOverlay(tx, changes, now)
			for _, f := range filters {
				all := collect(committed, f, store.QueryOptions{Now: now})
				for _, o := range []store.QueryOptions{{}, {Limit: 2}, {Now: now}} {
					want := collect(committed, f, store.QueryOptions{Now: now, Limit: o.Limit})
					if got := collect(ov, f, o); !slices.Equal(got, want) {
						t.Fatalf("round %d, %+v %+v:\noverlay   %v\ncommitted %v", round, f, o, got, want)
					}
				}
				if len(all) > 1 {
					first := mustKey(t, all[0])
					want := collect(committed, f, store.QueryOptions{Now: now, After: &first})
					if got := collect(ov, f, store.QueryOptions{After: &first}); !slices.Equal(got, want) {
						t.Fatalf("round %d, %+v after %s:\noverlay   %v\ncommitted %v", round, f, first, got, want)
					}
				}
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatal(err)
		}
		a.Close()
		b.Close()
	}
}

func mustKey(t *testing.T, s string) tuple.Key {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r.Key()
}
