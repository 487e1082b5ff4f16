package engine

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/storetest"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// plainReader is a store.Reader without any read power.
type plainReader struct{ store.Reader }

// TestHiddenReaderPowers: the reader the engine gives the evaluator has
// the store's read powers, hides the nested-group index's reserved rows
// as its queries do, and answers like its queries when the store's
// reader lacks a power.
func TestHiddenReaderPowers(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	rels := storetest.MustParse(t, "doc:1#viewer@user:a", "doc:1#viewer@user:*", "doc:1#viewer@group:g#member",
		"group:g#member@user:a", "group:g#~member@group:h#~1", "doc:1#~x@user:a")
	rev := storetest.MustTouch(t, st, rels...)
	inner := storetest.MustSnapshot(t, st, rev)
	for _, tt := range []struct {
		name   string
		r      store.Reader
		powers bool
	}{
		{"memstore", hiddenReader{inner}, true},
		{"no powers", hiddenReader{plainReader{inner}}, false},
		// A traced request reads and plans as an untraced one.
		{"traced", tracedReader{hiddenReader: hiddenReader{inner}, tracer: sdktrace.NewTracerProvider().Tracer(""), kind: "memory"}, true},
		{"traced, no powers", tracedReader{hiddenReader: hiddenReader{plainReader{inner}}, tracer: sdktrace.NewTracerProvider().Tracer(""), kind: "memory"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pr, ok1 := tt.r.(store.PointReader)
			br, ok2 := tt.r.(store.BatchReader)
			sr, ok3 := tt.r.(store.StatsReader)
			if !ok1 || !ok2 || !ok3 {
				t.Fatalf("powers: point %v, batch %v, statistics %v", ok1, ok2, ok3)
			}
			if (sr.Statistics() != nil) != tt.powers {
				t.Errorf("Statistics() = %v", sr.Statistics())
			}
			for _, rel := range rels {
				got, found, err := pr.ReadRelationship(ctx, rel.Key(), time.Time{})
				if err != nil || !found || got.String() != rel.String() {
					t.Errorf("ReadRelationship(%s) = %v, %v, %v", rel.Key(), got, found, err)
				}
			}
			if _, found, err := pr.ReadRelationship(ctx, storetest.MustParse(t, "doc:1#viewer@user:b")[0].Key(), time.Time{}); found || err != nil {
				t.Errorf("ReadRelationship of an absent key: found %v, %v", found, err)
			}
			for _, f := range []tuple.Filter{{ResourceType: "doc"}, {ResourceType: "doc", ResourceID: "1", Relation: "viewer"}, {ResourceType: "group", Relation: "~member"}} {
				want, err := storetest.Collect(tt.r.QueryRelationships(ctx, f, store.QueryOptions{}))
				if err != nil {
					t.Fatal(err)
				}
				got, err := br.AppendRelationships(ctx, nil, f, store.QueryOptions{})
				if err != nil || storetest.Format(got) != storetest.Format(want) {
					t.Errorf("AppendRelationships(%+v) = %v (%v), the query %v", f, got, err, want)
				}
			}
			for _, f := range []tuple.ReverseFilter{{Subject: tuple.SubjectFilter{Type: "user", ID: "a"}}, {Subject: tuple.SubjectFilter{Type: "user", ID: "a"}, ResourceType: "doc", Relation: "viewer"}} {
				want, err := storetest.Collect(tt.r.ReverseQueryRelationships(ctx, f, store.QueryOptions{}))
				if err != nil {
					t.Fatal(err)
				}
				got, err := br.AppendReverseRelationships(ctx, nil, f, store.QueryOptions{})
				if err != nil || storetest.Format(got) != storetest.Format(want) {
					t.Errorf("AppendReverseRelationships(%+v) = %v (%v), the query %v", f, got, err, want)
				}
			}
			// The reserved rows stay hidden from a query without a relation.
			got, err := br.AppendRelationships(ctx, nil, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{})
			if err != nil || len(got) != 3 {
				t.Errorf("AppendRelationships of every doc = %v (%v), want the 3 relationships without the reserved row", got, err)
			}
		})
	}
}

// TestAliasReaderPowers: the reader of a schema with renames
// (@renamed_from) keeps the store's point and batch reads, and answers a
// renamed relation's reads as its merged queries do: a relationship
// stored under the old name reads under the new one, one stored under
// both names once.
func TestAliasReaderPowers(t *testing.T) {
	ctx := context.Background()
	s, err := schema.Compile("t", `definition user {}
definition doc {
	@renamed_from(admin)
	relation owner: user
	relation viewer: user
}`)
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New(memstore.Options{})
	defer st.Close()
	rev := storetest.MustTouch(t, st, storetest.MustParse(t, "doc:1#admin@user:a", "doc:1#owner@user:b", "doc:1#admin@user:b",
		"doc:1#viewer@user:c", "doc:2#admin@user:a")...)
	inner := storetest.MustSnapshot(t, st, rev)
	for _, tt := range []struct {
		name string
		r    aliasReader
	}{
		{"powers", aliasReader{Reader: hiddenReader{inner}, s: s}},
		{"no powers", aliasReader{Reader: hiddenReader{plainReader{inner}}, s: s}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var pr store.PointReader = tt.r
			for _, c := range []struct {
				key   string
				found bool
			}{
				{"doc:1#owner@user:a", true}, // stored as admin
				{"doc:1#owner@user:b", true}, // stored under both names
				{"doc:1#viewer@user:c", true},
				{"doc:1#owner@user:c", false},
				{"doc:1#viewer@user:a", false},
				{"doc:1#admin@user:a", true}, // the old name as stored, for reads as such
			} {
				k := storetest.MustParse(t, c.key)[0].Key()
				got, found, err := pr.ReadRelationship(ctx, k, time.Time{})
				if err != nil || found != c.found || (found && got.String() != c.key) {
					t.Errorf("ReadRelationship(%s) = %v, %v, %v; want found %v", c.key, got, found, err, c.found)
				}
			}
			var br store.BatchReader = tt.r
			for _, f := range []tuple.Filter{{ResourceType: "doc", ResourceID: "1", Relation: "owner"}, {ResourceType: "doc", Relation: "viewer"}, {ResourceType: "doc"}} {
				want, err := storetest.Collect(tt.r.QueryRelationships(ctx, f, store.QueryOptions{}))
				if err != nil {
					t.Fatal(err)
				}
				got, err := br.AppendRelationships(ctx, nil, f, store.QueryOptions{})
				if err != nil || storetest.Format(got) != storetest.Format(want) {
					t.Errorf("AppendRelationships(%+v) = %v (%v), the query %v", f, got, err, want)
				}
			}
			for _, f := range []tuple.ReverseFilter{{Subject: tuple.SubjectFilter{Type: "user", ID: "a"}, ResourceType: "doc", Relation: "owner"}, {Subject: tuple.SubjectFilter{Type: "user", ID: "b"}}} {
				want, err := storetest.Collect(tt.r.ReverseQueryRelationships(ctx, f, store.QueryOptions{}))
				if err != nil {
					t.Fatal(err)
				}
				got, err := br.AppendReverseRelationships(ctx, nil, f, store.QueryOptions{})
				if err != nil || storetest.Format(got) != storetest.Format(want) {
					t.Errorf("AppendReverseRelationships(%+v) = %v (%v), the query %v", f, got, err, want)
				}
			}
			got, err := br.AppendRelationships(ctx, nil, tuple.Filter{ResourceType: "doc", Relation: "owner"}, store.QueryOptions{})
			if err != nil || storetest.Format(got) != storetest.Format(storetest.MustParse(t, "doc:1#owner@user:a", "doc:1#owner@user:b", "doc:2#owner@user:a")) {
				t.Errorf("owners: %v (%v), want a and b on doc:1 and a on doc:2, each once", got, err)
			}
		})
	}
}

// TestAliasReaderStatistics: the reader of a schema with renames counts a
// renamed relation's rows under both names as the new name's, as
// resource relation and as subject relation, leaves the other counts as
// the store's, computes them once per count of the store's, and has none
// when the store keeps none.
func TestAliasReaderStatistics(t *testing.T) {
	s, err := schema.Compile("t", `definition user {}
definition group {
	@renamed_from(members)
	relation member: user
}
definition doc {
	@renamed_from(admin)
	relation owner: user | group#member
	relation viewer: user
}`)
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New(memstore.Options{})
	defer st.Close()
	rev := storetest.MustTouch(t, st, storetest.MustParse(t,
		"doc:1#admin@user:a", "doc:2#admin@user:a", "doc:3#owner@user:b", "doc:1#viewer@user:c",
		"doc:3#owner@group:g#members", "doc:4#owner@group:h#member", "group:g#members@user:a")...)
	inner := storetest.MustSnapshot(t, st, rev)
	var cache atomic.Pointer[aliasStats]
	r := aliasReader{Reader: hiddenReader{inner}, s: s, stats: &cache}
	got := r.Statistics()
	if got == nil {
		t.Fatal("no statistics through the renames")
	}
	for _, c := range []struct {
		resource bool
		kind     store.RelationKind
		want     store.Count
	}{
		{true, store.RelationKind{Type: "doc", Relation: "owner"}, store.Count{Relationships: 5, Objects: 4}}, // 2 of admin on 2 docs, 3 of owner on 2 others
		{true, store.RelationKind{Type: "doc", Relation: "viewer"}, store.Count{Relationships: 1, Objects: 1}},
		{true, store.RelationKind{Type: "group", Relation: "member"}, store.Count{Relationships: 1, Objects: 1}},
		{false, store.RelationKind{Type: "group", Relation: "member"}, store.Count{Relationships: 2, Objects: 2}}, // g#members and h#member
		{false, store.RelationKind{Type: "user", Relation: tuple.Ellipsis}, store.Count{Relationships: 5, Objects: 3}},
	} {
		m := got.Subjects
		if c.resource {
			m = got.Resources
		}
		if m[c.kind] != c.want {
			t.Errorf("%+v (resource %v): %+v, want %+v", c.kind, c.resource, m[c.kind], c.want)
		}
	}
	if again := r.Statistics(); again != got {
		t.Error("the merged counts were computed again for the same count of the store's")
	}
	if raw := inner.(store.StatsReader).Statistics(); raw.Resources[store.RelationKind{Type: "doc", Relation: "owner"}].Relationships != 3 {
		t.Errorf("the store's own counts changed: %+v", raw.Resources)
	}
	if none := (aliasReader{Reader: hiddenReader{plainReader{inner}}, s: s}).Statistics(); none != nil {
		t.Errorf("statistics from a store that keeps none: %+v", none)
	}
}
