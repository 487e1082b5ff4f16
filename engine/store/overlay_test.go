package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestOverlayMatchesTouch is a differential test: an overlay of
// relationships on a snapshot answers every query (forward and reverse,
// any filter, After, Limit, Now) exactly as the snapshot of a store in
// which those relationships were touched does.
func TestOverlayMatchesTouch(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	types, ids, rels := []string{"doc", "group"}, []string{"a", "b", "c"}, []string{"viewer", "member"}
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		randRel := func() tuple.Relationship {
			r := tuple.Relationship{
				Resource: tuple.ObjectRef{Type: types[rng.IntN(2)], ID: ids[rng.IntN(3)]},
				Relation: rels[rng.IntN(2)],
				Subject:  tuple.SubjectRef{Type: types[rng.IntN(2)], ID: ids[rng.IntN(3)]},
			}
			if rng.IntN(3) == 0 {
				r.Subject.Relation = rels[rng.IntN(2)]
			}
			if rng.IntN(4) == 0 {
				r.Expiration = base.Add(time.Duration(rng.IntN(3)) * time.Hour)
			}
			if rng.IntN(5) == 0 {
				r.Caveat = &tuple.Caveat{Name: fmt.Sprintf("c%d", rng.IntN(2))}
			}
			return r
		}
		st := memstore.New(memstore.Options{})
		var stored, added []tuple.Relationship
		seen := map[tuple.Key]bool{}
		for range 30 {
			stored = append(stored, randRel())
		}
		for range 10 {
			r := randRel()
			if !seen[r.Key()] {
				seen[r.Key()] = true
				added = append(added, r)
			}
		}
		touch := func(rs []tuple.Relationship) store.Revision {
			rev, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
				for _, r := range rs {
					if err := tx.Touch(ctx, r); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return rev
		}
		before := touch(stored)
		after := touch(added)
		r0, err := st.Snapshot(ctx, before)
		if err != nil {
			t.Fatal(err)
		}
		r1, err := st.Snapshot(ctx, after)
		if err != nil {
			t.Fatal(err)
		}
		ov := store.Overlay(r0, added)
		all := append(slices.Clone(stored), added...)
		for q := range 60 {
			opts := store.QueryOptions{Limit: rng.IntN(4)}
			if rng.IntN(2) == 0 {
				opts.Now = base.Add(time.Duration(rng.IntN(4))*time.Hour - time.Minute)
			}
			if rng.IntN(3) == 0 {
				k := all[rng.IntN(len(all))].Key()
				opts.After = &k
			}
			var got, want []tuple.Relationship
			var desc string
			if q%2 == 0 {
				f := tuple.Filter{}
				if rng.IntN(2) == 0 {
					f.ResourceType = types[rng.IntN(2)]
				}
				if f.ResourceType != "" && rng.IntN(2) == 0 {
					f.ResourceID = ids[rng.IntN(3)]
				}
				if rng.IntN(2) == 0 {
					f.Relation = rels[rng.IntN(2)]
				}
				if rng.IntN(3) == 0 {
					f.Subject = &tuple.SubjectFilter{Type: types[rng.IntN(2)], Relation: []string{"", tuple.Ellipsis, "member"}[rng.IntN(3)]}
				}
				desc = fmt.Sprintf("forward %+v", f)
				got, want = collect(t, ov.QueryRelationships(ctx, f, opts)), collect(t, r1.QueryRelationships(ctx, f, opts))
			} else {
				f := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: types[rng.IntN(2)]}}
				if rng.IntN(2) == 0 {
					f.Subject.ID = ids[rng.IntN(3)]
				}
				if rng.IntN(2) == 0 {
					f.Subject.Relation = []string{tuple.Ellipsis, "member", "viewer"}[rng.IntN(3)]
				}
				if rng.IntN(2) == 0 {
					f.ResourceType = types[rng.IntN(2)]
				}
				if rng.IntN(2) == 0 {
					f.Relation = rels[rng.IntN(2)]
				}
				desc = fmt.Sprintf("reverse %+v", f)
				got, want = collect(t, ov.ReverseQueryRelationships(ctx, f, opts)), collect(t, r1.ReverseQueryRelationships(ctx, f, opts))
			}
			if !slices.EqualFunc(got, want, sameRel) {
				t.Fatalf("seed %d query %d %s %+v:\n got %v\nwant %v", seed, q, desc, opts, got, want)
			}
		}
		if ov.Revision() != before {
			t.Fatalf("overlay revision %d, want the snapshot's %d", ov.Revision(), before)
		}
	}
}

func collect(t *testing.T, seq func(func(tuple.Relationship, error) bool)) []tuple.Relationship {
	t.Helper()
	var out []tuple.Relationship
	for r, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func sameRel(a, b tuple.Relationship) bool {
	if a.Key() != b.Key() || !a.Expiration.Equal(b.Expiration) || (a.Caveat == nil) != (b.Caveat == nil) {
		return false
	}
	return a.Caveat == nil || a.Caveat.Name == b.Caveat.Name
}

// TestOverlayEmpty: an overlay of nothing is the reader itself.
func TestOverlayEmpty(t *testing.T) {
	st := memstore.New(memstore.Options{})
	r, err := st.Snapshot(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := store.Overlay(r, nil); got != r {
		t.Fatalf("Overlay(r, nil) = %v, want r itself", got)
	}
}
