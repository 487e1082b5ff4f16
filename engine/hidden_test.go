package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestHiddenReaderPowers is a differential test of hide: over random
// relationships and reserved rows, the reader the evaluator gets keeps the
// backend's point reads, batch queries and statistics, and every batch
// query and point read answers what hiddenReader's queries answer (no
// reserved row unless one is asked for by name, limits kept).
func TestHiddenReaderPowers(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"memstore", func(t *testing.T) store.Store { return memstore.New(memstore.Options{}) }},
		{"pebblestore", func(t *testing.T) store.Store {
			st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			st := b.open(t)
			defer st.Close()
			rng := rand.New(rand.NewPCG(3, 5))
			rels := []string{"member", "viewer", "~member", "~~member"}
			var all []tuple.Relationship
			for range 200 {
				r := tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "group", ID: fmt.Sprint("g", rng.IntN(4))},
					Relation: rels[rng.IntN(len(rels))],
					Subject:  tuple.SubjectRef{Type: "group", ID: fmt.Sprint("g", rng.IntN(4))},
				}
				if rng.IntN(2) == 0 {
					r.Subject.Relation = "member"
				}
				all = append(all, r)
			}
			rev, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
				for _, r := range all {
					if err := tx.Touch(ctx, r); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := st.Snapshot(ctx, rev)
			if err != nil {
				t.Fatal(err)
			}
			r := hide(raw)
			ref := hiddenReader{raw}
			pr, points := r.(store.PointReader)
			br, batch := r.(store.BatchReader)
			_, stats := r.(store.StatsReader)
			if !points || !batch || !stats {
				t.Fatalf("hide(%T): point reads %v, batch queries %v, statistics %v; want all three", raw, points, batch, stats)
			}
			collect := func(seq func(func(tuple.Relationship, error) bool)) []string {
				t.Helper()
				var out []string
				for r, err := range seq {
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, r.String())
				}
				return out
			}
			strs := func(rs []tuple.Relationship) []string {
				var out []string
				for _, r := range rs {
					out = append(out, r.String())
				}
				return out
			}
			for i := range 300 {
				opts := store.QueryOptions{Limit: rng.IntN(4)}
				rel := ""
				if rng.IntN(3) == 0 {
					rel = rels[rng.IntN(len(rels))]
				}
				id := ""
				if rng.IntN(2) == 0 {
					id = fmt.Sprint("g", rng.IntN(4))
				}
				f := tuple.Filter{ResourceType: "group", ResourceID: id, Relation: rel}
				got, err := br.AppendRelationships(ctx, nil, f, opts)
				if err != nil {
					t.Fatal(err)
				}
				if want := collect(ref.QueryRelationships(ctx, f, opts)); !slices.Equal(strs(got), want) {
					t.Errorf("%d: AppendRelationships(%+v, limit %d) = %v, want %v", i, f, opts.Limit, strs(got), want)
				}
				rf := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "group", ID: id}, ResourceType: "group", Relation: rel}
				got, err = br.AppendReverseRelationships(ctx, nil, rf, opts)
				if err != nil {
					t.Fatal(err)
				}
				if want := collect(ref.ReverseQueryRelationships(ctx, rf, opts)); !slices.Equal(strs(got), want) {
					t.Errorf("%d: AppendReverseRelationships(%+v, limit %d) = %v, want %v", i, rf, opts.Limit, strs(got), want)
				}
			}
			for _, want := range all {
				got, found, err := pr.ReadRelationship(ctx, want.Key(), time.Time{})
				if err != nil || !found || got.String() != want.String() {
					t.Errorf("ReadRelationship(%s) = %s, %v, %v", want, got, found, err)
				}
			}
		})
	}
}
