package eval

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// TestContextualDifferential moves a random share of random data into the
// request on random schemas and compares with the reference evaluator over
// all of it, through one shared cache, in three passes at one revision:
// with the contextual relationships, without them, and with them again.
// An answer computed with them and served without them (or the reverse)
// differs from the reference in the second or third pass.
func TestContextualDifferential(t *testing.T) {
	cs, err := schema.Compile("caveats.zed", diffCaveats)
	if err != nil {
		t.Fatal(err)
	}
	cases := 80
	if raceEnabled {
		cases = 20
	}
	ctx := context.Background()
	var streamed, streamedSubjects uint64
	for i := range cases {
		seed := uint64(i)
		rng := rand.New(rand.NewPCG(seed, 0x21))
		s := genSchema(rng, cs.Caveats, "ctx-"+strconv.Itoa(i))
		all := genTuples(rng, s, testNow)
		count := map[tuple.Key]int{}
		for _, r := range all {
			count[r.Key()]++
		}
		var stored, contextual []tuple.Relationship
		share := rng.Float64()
		for _, r := range all {
			// A key stored twice is one relationship to the store; keep
			// those stored so that both sides see the same data.
			if count[r.Key()] == 1 && rng.Float64() < share {
				contextual = append(contextual, r)
			} else {
				stored = append(stored, r)
			}
		}
		rd := load(t, stored)
		universe, allRels := diffWorld(s)
		subjects := []tuple.SubjectRef{{Type: "user", ID: tuple.Wildcard}}
		for _, u := range diffUsers {
			subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: u})
		}
		for j, r := range allRels {
			subjects = append(subjects, tuple.SubjectRef{Type: r.Definition.Name, ID: diffIDs[j%2], Relation: r.Name})
		}
		loose := looseMissing(allRels)
		c := NewCache(1 << 20)
		// The second evaluator reads the nested-group index of the
		// stored relationships: not for relations the contextual ones
		// name (they may add edges the rows lack).
		evals := []struct {
			e  *Evaluator
			rd store.Reader
		}{{New(s, Options{Concurrency: 1, Cache: c}), rd}, {New(s, Options{Concurrency: 1, NestedIndex: true}), loadNested(t, s, stored)}}
		for _, ev := range evals {
			e, rd := ev.e, ev.rd
			refs := map[bool]*refEval{
				false: newRefEval(s, stored, testNow, nil, universe),
				true:  newRefEval(s, all, testNow, nil, universe),
			}
			want := map[bool]map[tuple.SubjectRef]map[refNode]refVal{false: {}, true: {}}
			for _, with := range []bool{true, false, true} {
				p := Params{Reader: rd, Now: testNow}
				if with {
					p.Contextual = contextual
				}
				for _, sub := range subjects {
					if want[with][sub] == nil {
						v, err := refs[with].solve(sub)
						if err != nil {
							t.Fatalf("seed %d: reference: %v", seed, err)
						}
						want[with][sub] = v
					}
					for _, r := range allRels {
						var expRes []ResourceResult
						for _, id := range universe[r.Definition.Name] {
							exp := want[with][sub][refNode{r.Index, id}]
							if exp.perm != NoPermission {
								expRes = append(expRes, ResourceResult{ResourceID: id, Permissionship: exp.perm, MissingContext: exp.missing})
							}
							req := CheckRequest{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Permission: r.Name, Subject: sub}
							got, err := e.Check(ctx, p, req)
							if err != nil || got.Permissionship != exp.perm || !sameMissing(got.MissingContext, exp.missing, loose) {
								t.Fatalf("seed %d (%d of %d relationships contextual) with=%v: Check(%s#%s@%s) = %v %v (err %v), reference %v %v\nschema:\n%s\nstored:\n%s\ncontextual:\n%s",
									seed, len(contextual), len(all), with, req.Resource, r.Name, sub, got.Permissionship, got.MissingContext, err, exp.perm, exp.missing,
									describeSchema(s), describeTuples(stored), describeTuples(contextual))
							}
						}
						if sub.ID == tuple.Wildcard {
							continue // LookupResources takes no wildcard subject
						}
						got, err := drain(e.LookupResources(ctx, p, LookupResourcesRequest{ResourceType: r.Definition.Name, Permission: r.Name, Subject: sub}))
						if err != nil || !slices.EqualFunc(got, expRes, eqResource(loose)) {
							t.Fatalf("seed %d with=%v: LookupResources(%s#%s@%s) = %v (err %v), reference %v", seed, with, r.Definition.Name, r.Name, sub, got, err, expRes)
						}
						// Pages of one, resuming after the cursor, list the
						// same (the streamed plan merges the contextual
						// relationships into each scan after the cursor).
						var paged []ResourceResult
						for after := ""; ; {
							page, err := drain(e.LookupResources(ctx, p, LookupResourcesRequest{ResourceType: r.Definition.Name, Permission: r.Name, Subject: sub, Limit: 1, After: after}))
							if err != nil || len(page) > 1 {
								t.Fatalf("seed %d with=%v: paged LookupResources(%s#%s@%s): %v %v", seed, with, r.Definition.Name, r.Name, sub, page, err)
							}
							if len(page) == 0 {
								break
							}
							paged = append(paged, page...)
							after = page[0].ResourceID
						}
						if !slices.EqualFunc(paged, expRes, eqResource(loose)) {
							t.Fatalf("seed %d with=%v: paged LookupResources(%s#%s@%s) = %v, reference %v", seed, with, r.Definition.Name, r.Name, sub, paged, expRes)
						}
					}
				}
				// LookupSubjects of users agrees with the reference.
				for _, r := range allRels {
					for _, id := range universe[r.Definition.Name] {
						lreq := LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Permission: r.Name, SubjectType: "user"}
						before := e.streamedSubjectWalks.Load()
						got, err := drain(e.LookupSubjects(ctx, p, lreq))
						if err != nil {
							t.Fatalf("seed %d with=%v: LookupSubjects(%s:%s#%s): %v", seed, with, r.Definition.Name, id, r.Name, err)
						}
						if with && e.streamedSubjectWalks.Load() > before {
							streamedSubjects++
						}
						// Pages resume after the cursor with the contextual
						// relationships merged into each scan.
						if paged, size, ok := pageSubjects(ctx, e, p, lreq, got); !ok {
							t.Fatalf("seed %d with=%v: LookupSubjects(%s:%s#%s) in pages of %d = %+v, unpaged %+v", seed, with, r.Definition.Name, id, r.Name, size, paged, got)
						}
						for _, u := range append(slices.Clone(diffUsers), tuple.Wildcard) {
							sub := tuple.SubjectRef{Type: "user", ID: u}
							if want[with][sub] == nil {
								v, err := refs[with].solve(sub)
								if err != nil {
									t.Fatalf("seed %d: reference: %v", seed, err)
								}
								want[with][sub] = v
							}
							exp := want[with][sub][refNode{r.Index, id}]
							if gp, gm := subjectAnswer(got, u); gp != exp.perm || !sameMissing(gm, exp.missing, loose) {
								t.Fatalf("seed %d with=%v: LookupSubjects(%s:%s#%s) = %+v: %s is %v %v, reference %v %v", seed, with, r.Definition.Name, id, r.Name, got, u, gp, gm, exp.perm, exp.missing)
							}
						}
					}
				}
			}
			streamed += e.streamed.Load()
		}
	}
	// Lookups with contextual relationships take the streamed plan.
	if streamed == 0 {
		t.Errorf("no lookup streamed in %d cases", cases)
	}
	// So do LookupSubjects through intermediate nodes (streamsubjects.go).
	if streamedSubjects < uint64(cases) {
		t.Errorf("%d subject lookups with contextual relationships streamed through intermediate nodes in %d cases", streamedSubjects, cases)
	}
	t.Logf("%d lookups streamed, %d subject lookups with contextual relationships through intermediate nodes", streamed, streamedSubjects)
}

// TestContextualCacheBypass pins down what the cache layer does with a
// request's contextual relationships: subproblems whose relation can
// reach a relation they name are neither read from nor written to the
// cache, in either direction; every other subproblem is.
func TestContextualCacheBypass(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
	relation member: user | group#member
}
definition folder {
	relation owner: user
}
definition doc {
	relation parent: folder
	relation viewer: user | group#member
	relation editor: user
	permission edit = editor + parent->owner
	permission view = viewer + edit
}`)
	rd := load(t, mustParse(t,
		"group:eng#member@user:anne",
		"doc:1#viewer@group:eng#member",
		"doc:1#parent@folder:f",
		"folder:f#owner@user:owen",
	))
	ctx := context.Background()
	contextual := mustParse(t, "group:eng#member@user:bob")
	tests := []struct {
		check string
		// touched: the relation reaches group#member, so the contextual
		// request bypasses the cache for it.
		touched bool
		plain   Permissionship // the answer without the contextual relationship
		with    Permissionship // the answer with it
	}{
		{"doc:1#view@user:bob", true, NoPermission, HasPermission},
		{"doc:1#viewer@user:bob", true, NoPermission, HasPermission},
		{"group:eng#member@user:bob", true, NoPermission, HasPermission},
		{"doc:1#view@user:anne", true, HasPermission, HasPermission},
		{"doc:1#edit@user:owen", false, HasPermission, HasPermission},
		{"doc:1#edit@user:bob", false, NoPermission, NoPermission},
		{"folder:f#owner@user:bob", false, NoPermission, NoPermission},
	}
	for _, order := range []string{"plain first", "contextual first"} {
		t.Run(order, func(t *testing.T) {
			mc := newMapCache()
			e := newEvaluator(s, Options{Concurrency: 1}, mc)
			plain := Params{Reader: rd, Now: testNow}
			with := Params{Reader: rd, Now: testNow, Contextual: contextual}
			ps := []Params{plain, with}
			if order == "contextual first" {
				ps = []Params{with, plain}
			}
			for round := range 2 {
				for _, p := range ps {
					for _, tc := range tests {
						want := tc.plain
						if p.Contextual != nil {
							want = tc.with
						}
						got, err := e.Check(ctx, p, parseCheck(t, tc.check))
						if err != nil || got.Permissionship != want {
							t.Fatalf("round %d, contextual=%v: Check(%s) = %v (err %v), want %v", round, p.Contextual != nil, tc.check, got.Permissionship, err, want)
						}
					}
				}
			}
			// Every answer in the cache is the plain one: an entry written
			// by the contextual request would say bob can view.
			for _, tc := range tests {
				ent, ok := mc.entry(t, e, uint64(rd.Revision()), tc.check)
				if !ok {
					t.Errorf("%s: no cache entry (the plain request stores every root)", tc.check)
					continue
				}
				if ent.perm != tc.plain {
					t.Errorf("%s: cached %v, want the plain answer %v", tc.check, ent.perm, tc.plain)
				}
			}
			// An untouched root is served from the cache to a contextual
			// request; a touched one is not even looked up.
			for _, tc := range tests {
				before := mc.probes + mc.gets
				if _, err := e.Check(ctx, with, parseCheck(t, tc.check)); err != nil {
					t.Fatal(err)
				}
				looked := mc.probes + mc.gets - before
				switch {
				case tc.touched && looked != 0:
					// Subproblems below a touched root may be untouched
					// (doc#edit below doc#view): those are looked up.
					if tc.check != "doc:1#view@user:bob" && tc.check != "doc:1#view@user:anne" {
						t.Errorf("%s: a contextual request looked up the cache %d times for a touched relation", tc.check, looked)
					}
				case !tc.touched && looked == 0:
					t.Errorf("%s: a contextual request did not use the cache for an untouched relation", tc.check)
				}
			}
		})
	}
}

// TestContextualReaching pins down which relations a contextual
// relationship reaches: those computed from its relation through computed
// references, arrows (target and tupleset), subject sets and exclusions.
func TestContextualReaching(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
	relation member: user | group#member
	relation banned: user
}
definition folder {
	relation owner: user
	relation viewer: group#member
	permission view = viewer + owner
}
definition doc {
	relation parent: folder
	relation editor: user
	relation blocked: group#banned
	permission edit = editor - blocked
	permission view = parent->view + edit
	permission own = parent->owner
}`)
	e := New(s, Options{})
	names := func(marked []bool) []string {
		var out []string
		for i, m := range marked {
			if m {
				r := e.an.rels[i]
				out = append(out, r.Definition.Name+"#"+r.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		rel  string
		want []string
	}{
		{"group:g#member@user:u", []string{"doc#view", "folder#view", "folder#viewer", "group#member"}},
		{"group:g#banned@user:u", []string{"doc#blocked", "doc#edit", "doc#view", "group#banned"}},
		{"doc:d#parent@folder:f", []string{"doc#own", "doc#parent", "doc#view"}},
		{"folder:f#owner@user:u", []string{"doc#own", "doc#view", "folder#owner", "folder#view"}},
		{"doc:d#editor@user:u", []string{"doc#edit", "doc#editor", "doc#view"}},
	}
	for _, tc := range tests {
		got := names(e.an.reaching(mustParse(t, tc.rel)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("reaching(%s) = %v, want %v", tc.rel, got, tc.want)
		}
	}
}
