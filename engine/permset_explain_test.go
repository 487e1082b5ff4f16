package engine_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/examples/enterprise"
	"github.com/pemba-authz/pemba/schema"
)

// TestPermissionSetExplain asks permission sets with Explain on random
// data (some of it contextual, with caveat contexts that grant, deny or
// leave caveats open): every cell's explanation is the one Explain gives
// for that single check at the set's zookie, with the same context and
// contextual relationships, and a granted cell's witness, written alone
// into an empty store, grants again.
func TestPermissionSetExplain(t *testing.T) {
	schemas := map[string]string{"test": testSchema, "enterprise": enterprise.SchemaWithoutInvariants()}
	contexts := []map[string]any{
		nil,
		{"ip": "1.2.3.4", "allowed": []any{"1.2.3.4"}},
		{"ip": "1.2.3.4", "allowed": []any{"5.6.7.8"}},
	}
	ctx := t.Context()
	for _, name := range slices.Sorted(maps.Keys(schemas)) {
		text := schemas[name]
		s, err := schema.Compile(name, text)
		if err != nil {
			t.Fatal(err)
		}
		answers, replays := map[engine.Permissionship]int{}, 0
		for seed := range uint64(6) {
			rng := rand.New(rand.NewPCG(seed, 2121))
			clk := newClock()
			all := randomRelationships(rng, s, 40+rng.IntN(60), clk.Now())
			var stored, contextual []tuple.Relationship
			for _, r := range all {
				if seed%2 == 1 && rng.IntN(3) == 0 {
					contextual = append(contextual, r)
				} else {
					stored = append(stored, r)
				}
			}
			eng := openWith(t, text, stored, clk, 1<<20)
			reqCtx := contexts[seed%uint64(len(contexts))]
			for _, typ := range slices.Sorted(maps.Keys(s.Definitions)) {
				def := s.Definitions[typ]
				var subjects []tuple.SubjectRef
				for _, r := range def.Ordered {
					for _, as := range r.Allowed {
						subjects = append(subjects, tuple.SubjectRef{Type: as.Type, ID: fmt.Sprintf("%s%d", as.Type[:1], rng.IntN(3)), Relation: as.Relation})
					}
				}
				if len(subjects) == 0 {
					continue
				}
				resources := []tuple.ObjectRef{{Type: typ, ID: typ[:1] + "0"}, {Type: typ, ID: typ[:1] + "1"}}
				sub := subjects[rng.IntN(len(subjects))]
				req := engine.PermissionSetRequest{Consistency: engine.FullyConsistent(), Resources: resources, IncludeRelations: true,
					Subject: sub, Context: reqCtx, Contextual: contextual, Explain: true}
				got, err := eng.CheckPermissionSet(ctx, req)
				if err != nil {
					t.Fatalf("%s seed %d: CheckPermissionSet(%v, %s) with explain: %v", name, seed, resources, sub, err)
				}
				if len(got.Explanations) != len(resources) {
					t.Fatalf("%s seed %d: %d rows of explanations for %d resources", name, seed, len(got.Explanations), len(resources))
				}
				for i, res := range resources {
					for j, perm := range got.Permissions {
						cell, x := got.Results[i][j], got.Explanations[i][j]
						q := engine.CheckQuery{Resource: res, Permission: perm, Subject: sub}
						one, err := eng.Explain(ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(got.Zookie), CheckRequest: q, Context: reqCtx, Contextual: contextual})
						where := fmt.Sprintf("%s seed %d: %s#%s@%s", name, seed, res, perm, sub)
						if (err != nil) != (cell.Err != nil) {
							t.Fatalf("%s: the set's cell fails with %v, Explain with %v", where, cell.Err, err)
						}
						if err != nil {
							if (one.Explanation == nil) != (x == nil) || (x != nil && !reflect.DeepEqual(x.Root, one.Explanation.Root)) {
								t.Fatalf("%s: a failed cell's explanation differs from Explain's", where)
							}
							continue
						}
						if x == nil {
							t.Fatalf("%s: no explanation", where)
						}
						answers[cell.Permissionship]++
						if x.Permissionship != cell.Permissionship || !slices.Equal(x.MissingContext, one.MissingContext) ||
							!reflect.DeepEqual(x.Root, one.Explanation.Root) || !reflect.DeepEqual(x.Nearest, one.Explanation.Nearest) {
							t.Fatalf("%s: the cell's explanation (%v) differs from Explain's (%v)", where, x.Permissionship, one.Permissionship)
						}
						if cell.Permissionship != engine.HasPermission {
							continue
						}
						// The witness alone grants again.
						proof := x.Relationships()
						replay, err := openWith(t, text, proof, clk, -1).Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: q, Context: reqCtx})
						if err != nil || replay.Permissionship != engine.HasPermission {
							t.Fatalf("%s: the witness %v alone gives %v (%v)", where, proof, replay.Permissionship, err)
						}
						replays++
					}
				}
			}
		}
		if answers[engine.HasPermission] == 0 || answers[engine.NoPermission] == 0 || (name == "test" && answers[engine.ConditionalPermission] == 0) {
			t.Fatalf("%s: answers %v: the random data decides too little", name, answers)
		}
		t.Logf("%s: explained %v, %d witnesses replayed", name, answers, replays)
	}
}

// TestPermissionSetExplainShape: without Explain a set carries no
// explanations; a cell that fails on the depth limit carries the
// explanation of the paths that went too deep, beside its error, and the
// other cells are explained as usual.
func TestPermissionSetExplainShape(t *testing.T) {
	f := newFixture(t, engine.Options{MaxDepth: 3})
	f.touch("document:d1#viewer@group:g1#member", "group:g1#member@group:g2#member", "group:g2#member@group:g3#member",
		"group:g3#member@user:anne", "document:d1#banned@user:bob")
	base := engine.PermissionSetRequest{Consistency: engine.FullyConsistent(), Resources: []tuple.ObjectRef{{Type: "document", ID: "d1"}},
		Permissions: []string{"banned", "viewer"}, Subject: tuple.SubjectRef{Type: "user", ID: "anne"}}
	plain, err := f.eng.CheckPermissionSet(f.ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Explanations != nil {
		t.Fatalf("explanations %v without Explain", plain.Explanations)
	}
	req := base
	req.Explain = true
	got, err := f.eng.CheckPermissionSet(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	banned, viewer := got.Results[0][0], got.Results[0][1]
	if banned.Err != nil || banned.Permissionship != engine.NoPermission || !errors.Is(viewer.Err, engine.ErrMaxDepth) {
		t.Fatalf("cells %+v and %+v, want no and the depth limit", banned, viewer)
	}
	if x := got.Explanations[0][0]; x == nil || x.Nearest == nil || x.Nearest.String() != "document:d1#banned@user:anne" {
		t.Fatalf("banned: explanation %+v, want one naming the nearest grant", x)
	}
	if x := got.Explanations[0][1]; x == nil || !hasReason(x.Root, engine.ReasonDepthLimit) {
		t.Fatalf("viewer: explanation %+v, want the paths past the depth limit", x)
	}
}
