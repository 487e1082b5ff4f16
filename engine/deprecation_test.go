package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

const deprecatedSchema = `definition user {}
definition doc {
	@deprecated("use owner")
	relation admin: user
	relation owner: user
	@deprecated
	permission manage = admin + owner
	permission view = manage
}`

// TestDeprecation runs every kind of request that names a relation or
// permission under both policies: warn answers and reports each notice
// once per request; refuse fails with ErrDeprecated; requests that name
// nothing deprecated (using one indirectly included) and deletes pass
// silently under both.
func TestDeprecation(t *testing.T) {
	type call struct {
		name string
		run  func(t *testing.T, eng *engine.Engine) error
		want []string // notices under warn; refused under refuse when non-empty
	}
	ctx := context.Background()
	check := func(q string) func(t *testing.T, eng *engine.Engine) error {
		return func(t *testing.T, eng *engine.Engine) error {
			r := mustParse(t, q)
			_, err := eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
			return err
		}
	}
	calls := []call{
		{"check deprecated permission", check("doc:1#manage@user:anne"), []string{"permission doc#manage is deprecated"}},
		{"check deprecated relation", check("doc:1#admin@user:anne"), []string{"relation doc#admin is deprecated: use owner"}},
		{"check through a deprecated permission", check("doc:1#view@user:anne"), nil},
		{"bulk check, each notice once", func(t *testing.T, eng *engine.Engine) error {
			it := func(q string) engine.BulkCheckItem {
				r := mustParse(t, q)
				return engine.BulkCheckItem{CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}}
			}
			_, err := eng.CheckBulk(ctx, engine.BulkCheckRequest{Consistency: engine.FullyConsistent(), Items: []engine.BulkCheckItem{
				it("doc:1#manage@user:anne"), it("doc:2#manage@user:anne"), it("doc:1#view@user:anne")}})
			return err
		}, []string{"permission doc#manage is deprecated"}},
		{"expand", func(t *testing.T, eng *engine.Engine) error {
			_, _, err := eng.Expand(ctx, engine.ExpandRequest{Consistency: engine.FullyConsistent(), ExpandRequest: eval.ExpandRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "admin"}})
			return err
		}, []string{"relation doc#admin is deprecated: use owner"}},
		{"lookup resources", func(t *testing.T, eng *engine.Engine) error {
			_, _, err := eng.LookupResources(ctx, engine.LookupResourcesRequest{Consistency: engine.FullyConsistent(), LookupResourcesRequest: eval.LookupResourcesRequest{ResourceType: "doc", Permission: "manage", Subject: tuple.SubjectRef{Type: "user", ID: "anne"}}})
			return err
		}, []string{"permission doc#manage is deprecated"}},
		{"lookup subjects", func(t *testing.T, eng *engine.Engine) error {
			_, _, err := eng.LookupSubjects(ctx, engine.LookupSubjectsRequest{Consistency: engine.FullyConsistent(), LookupSubjectsRequest: eval.LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "admin", SubjectType: "user"}})
			return err
		}, []string{"relation doc#admin is deprecated: use owner"}},
		{"write", func(t *testing.T, eng *engine.Engine) error {
			return writeRels(t, eng, store.OpTouch, "doc:2#admin@user:bob", "doc:3#admin@user:bob", "doc:2#owner@user:bob")
		}, []string{"relation doc#admin is deprecated: use owner"}},
		{"write elsewhere", func(t *testing.T, eng *engine.Engine) error {
			return writeRels(t, eng, store.OpTouch, "doc:2#owner@user:bob")
		}, nil},
		{"delete", func(t *testing.T, eng *engine.Engine) error {
			return writeRels(t, eng, store.OpDelete, "doc:1#admin@user:anne")
		}, nil},
	}
	for _, pol := range []struct {
		name   string
		policy engine.DeprecationPolicy
	}{{"warn", engine.DeprecationWarn}, {"refuse", engine.DeprecationRefuse}} {
		policy := pol.policy
		for _, c := range calls {
			t.Run(pol.name+"/"+c.name, func(t *testing.T) {
				var mu sync.Mutex
				var got []string
				eng := openEngine(t, deprecatedSchema, engine.Options{Deprecation: policy, Warn: func(_ context.Context, msg string) {
					mu.Lock()
					got = append(got, msg)
					mu.Unlock()
				}})
				if err := writeRels(t, eng, store.OpTouch, "doc:1#owner@user:anne"); err != nil {
					t.Fatal(err)
				}
				before := eng.Stats().DeprecatedUses
				err := c.run(t, eng)
				uses := eng.Stats().DeprecatedUses - before
				switch {
				case policy == engine.DeprecationWarn:
					if err != nil {
						t.Fatalf("warn: %v", err)
					}
					if !slices.Equal(got, c.want) || uses != int64(len(c.want)) {
						t.Errorf("warn: notices %q (%d counted), want %q", got, uses, c.want)
					}
				case len(c.want) > 0:
					if !errors.Is(err, engine.ErrDeprecated) || !strings.Contains(err.Error(), c.want[0]) {
						t.Errorf("refuse: err = %v, want ErrDeprecated with %q", err, c.want[0])
					}
					if len(got) != 0 || uses != 1 {
						t.Errorf("refuse: notices %q (%d counted), want none and 1", got, uses)
					}
				default:
					if err != nil {
						t.Errorf("refuse: %v for a request naming nothing deprecated", err)
					}
				}
			})
		}
	}
	if _, err := engine.ParseDeprecationPolicy("block"); err == nil {
		t.Error("ParseDeprecationPolicy(block) succeeded")
	}
	if p, err := engine.ParseDeprecationPolicy("refuse"); err != nil || p != engine.DeprecationRefuse {
		t.Errorf("ParseDeprecationPolicy(refuse) = %v, %v", p, err)
	}
}
