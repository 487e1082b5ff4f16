package engine

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/storetest"
	"github.com/pemba-authz/pemba/engine/tuple"
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
