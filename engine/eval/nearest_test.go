package eval

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestOverlay holds the overlay reader (a snapshot with one relationship
// added) to a store that holds the relationship: the same relationships
// in the same order for every query, forward and reverse, with limits
// and cursors.
func TestOverlay(t *testing.T) {
	ctx := context.Background()
	all := mustParse(t,
		"doc:a#viewer@user:ann",
		"doc:a#viewer@user:bob",
		"doc:a#viewer@group:eng#member",
		"doc:b#viewer@user:ann",
		"doc:b#editor@user:cat",
		"group:eng#member@user:bob",
		"group:eng#member@user:dan",
	)
	forward := []tuple.Filter{
		{},
		{ResourceType: "doc"},
		{ResourceType: "doc", ResourceID: "a"},
		{ResourceType: "doc", ResourceID: "a", Relation: "viewer"},
		{ResourceType: "doc", ResourceID: "a", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user"}},
		{ResourceType: "doc", ResourceID: "a", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user", ID: "bob", Relation: tuple.Ellipsis}},
		{ResourceType: "group"},
	}
	reverse := []tuple.ReverseFilter{
		{Subject: tuple.SubjectFilter{Type: "user"}},
		{Subject: tuple.SubjectFilter{Type: "user", ID: "bob"}},
		{Subject: tuple.SubjectFilter{Type: "user", ID: "ann"}, ResourceType: "doc", Relation: "viewer"},
		{Subject: tuple.SubjectFilter{Type: "group", ID: "eng", Relation: "member"}},
	}
	collect := func(seq func(func(tuple.Relationship, error) bool)) []string {
		var out []string
		for r, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r.String())
		}
		return out
	}
	for i, extra := range all {
		rest := slices.Delete(slices.Clone(all), i, i+1)
		full, part := load(t, all), load(t, rest)
		o := &overlay{Reader: part, extra: extra}
		keys := []*tuple.Key{nil}
		for _, r := range all {
			k := r.Key()
			keys = append(keys, &k)
		}
		for _, limit := range []int{0, 1, 2} {
			for _, after := range keys {
				opts := store.QueryOptions{Limit: limit, After: after}
				for _, f := range forward {
					got := collect(o.QueryRelationships(ctx, f, opts))
					want := collect(full.QueryRelationships(ctx, f, opts))
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("extra %v, %+v, limit %d after %v: overlay %v, store %v", extra, f, limit, after, got, want)
					}
				}
				for _, f := range reverse {
					got := collect(o.ReverseQueryRelationships(ctx, f, opts))
					want := collect(full.ReverseQueryRelationships(ctx, f, opts))
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("extra %v, %+v, limit %d after %v: overlay %v, store %v", extra, f, limit, after, got, want)
					}
				}
			}
		}
	}
}
