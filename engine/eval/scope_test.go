package eval

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// scopeConfigs are evaluators whose planners take every path of the scoped
// lookups on small data: the defaults (a small scope is checked one by
// one), a scope budget of one object (the scope is "large": walk the other
// side and test each candidate), no direct checks (intersect with the
// other side's walk), and no direct checks with a reverse budget too small
// for the subject's walk (intersection gives up: check the scope); and the
// first and third again reading the nested-group index of rels (its rows
// computed by brute force), in every walk; and the scope over budget with
// the streamed plans off (walkOnly).
func scopeConfigs(t testing.TB, s *schema.Schema, rels []tuple.Relationship) []scopeConfig {
	def := New(s, Options{Concurrency: 1})
	tiny := New(s, Options{Concurrency: 4})
	tiny.scopeBudget = 1
	inter := New(s, Options{Concurrency: 1})
	inter.scopeChecks = 0
	inter.reverseBudget = math.MaxInt
	noRev := New(s, Options{Concurrency: 1})
	noRev.scopeChecks = 0
	noRev.reverseBudget = 1
	noRev.scopeCheckCost = 0
	rdNested := loadNested(t, s, rels)
	nested := New(s, Options{Concurrency: 1, NestedIndex: true})
	nestedInter := New(s, Options{Concurrency: 1, NestedIndex: true})
	nestedInter.scopeChecks = 0
	nestedInter.reverseBudget = math.MaxInt
	// The scope over budget again with the streamed plans off: the
	// walks they replace where they apply.
	tinyWalk := New(s, Options{Concurrency: 1})
	tinyWalk.scopeBudget = 1
	tinyWalk.walkOnly = true
	return []scopeConfig{{"default", def, nil}, {"scope-over-budget", tiny, nil}, {"intersect", inter, nil}, {"intersect-over-budget", noRev, nil},
		{"nested-index", nested, rdNested}, {"nested-index+intersect", nestedInter, rdNested}, {"scope-over-budget+walk", tinyWalk, nil}}
}

// scopeConfig is one evaluator of scopeConfigs.
type scopeConfig struct {
	name string
	e    *Evaluator
	rd   store.Reader // nil: the case's reader
}

// params returns p reading through the configuration's reader.
func (c scopeConfig) params(p Params) Params {
	if c.rd != nil {
		p.Reader = c.rd
	}
	return p
}

// bruteScope returns the objects that reach obj by one or more of rels'
// unexpired relationships at now (caveats ignored, wildcards not followed):
// the definition of Through, computed over the whole data set.
func bruteScope(rels []tuple.Relationship, follow map[string]bool, obj tuple.ObjectRef, now time.Time) map[tuple.ObjectRef]bool {
	edges := map[tuple.ObjectRef][]tuple.ObjectRef{} // subject object -> resources pointing at it
	for _, r := range rels {
		if !r.Expiration.IsZero() && !r.Expiration.After(now) {
			continue
		}
		if r.Subject.ID == tuple.Wildcard || !follow[r.Resource.Type+"#"+r.Relation] {
			continue
		}
		o := tuple.ObjectRef{Type: r.Subject.Type, ID: r.Subject.ID}
		edges[o] = append(edges[o], r.Resource)
	}
	in := map[tuple.ObjectRef]bool{}
	queue := []tuple.ObjectRef{obj}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		for _, p := range edges[o] {
			if !in[p] {
				in[p] = true
				queue = append(queue, p)
			}
		}
	}
	return in
}

// testArrowTuplesets lists the relations the schema's arrows follow, as
// "type#relation" (the default of Through.Relations), computed here so
// that the oracle does not share the code under test.
func testArrowTuplesets(s *schema.Schema) map[string]bool {
	out := map[string]bool{}
	var walk func(w *schema.Rewrite)
	walk = func(w *schema.Rewrite) {
		if w.Kind == schema.RewriteArrow {
			out[w.Relation.Definition.Name+"#"+w.Relation.Name] = true
		}
		for _, c := range w.Children {
			walk(c)
		}
	}
	for _, d := range s.Definitions {
		for _, r := range d.Ordered {
			if r.Rewrite != nil {
				walk(r.Rewrite)
			}
		}
	}
	return out
}

// TestScopedLookupDifferential compares LookupResources through an object
// and LookupSubjects within a subject set, under every planner path and
// paged, with brute force: every candidate decided by a top-down Check (and
// a walk over all relationships for the scope) on random schemas and data
// with nested subject sets, arrows, intersections, exclusions, caveats,
// expirations and wildcards.
func TestScopedLookupDifferential(t *testing.T) {
	cs, err := schema.Compile("caveats.zed", diffCaveats)
	if err != nil {
		t.Fatal(err)
	}
	cases := 200
	if raceEnabled {
		cases = 30
	}
	var stats scopeStats
	for i := range cases {
		seed := uint64(i)
		rng := rand.New(rand.NewPCG(seed, 0x5c09e))
		s := genSchema(rng, cs.Caveats, "scope-"+strconv.Itoa(i))
		rels := genTuples(rng, s, testNow)
		reqCtx := diffContexts[rng.IntN(len(diffContexts))]
		if !runScopeCase(t, rng, seed, s, rels, reqCtx, &stats) {
			t.Logf("schema of seed %d:\n%s", seed, describeSchema(s))
			t.Logf("relationships:\n%s", describeTuples(rels))
			return
		}
	}
	// The random data must exercise what the test claims: non-empty
	// scoped answers, answers the scope removes, and wildcards.
	// The thresholds scale with the number of cases (fewer under the race
	// detector).
	t.Logf("%+v", stats)
	least := func(n int) int { return max(1, n*cases/200) }
	if stats.resources < least(100) || stats.cutResources < least(100) || stats.subjects < least(100) || stats.cutSubjects < least(100) ||
		stats.wildSubjects < least(5) || stats.badScopes < least(5) || (!raceEnabled && stats.nestedReads < 100) || stats.streamedThrough < least(200) || stats.streamedWithin < least(200) || stats.streamedWithinSet < least(10) {
		t.Errorf("the random cases exercise too little: %+v", stats)
	}
}

type scopeStats struct {
	resources, cutResources int // answers in scope; answers the scope removed
	subjects, cutSubjects   int
	wildSubjects, badScopes int // "*" answers in scope; scopes the schema cannot satisfy
	depthSkips              int
	nestedReads             int // closure reads of the lookups' walks (none in the race detector's first 30 cases)
	// Scoped lookups that streamed: LookupResources through a large
	// scope, LookupSubjects within a large subject set (candidates from
	// the permission's side or from the subject set's).
	streamedThrough, streamedWithin, streamedWithinSet int
}

func runScopeCase(t *testing.T, rng *rand.Rand, seed uint64, s *schema.Schema, rels []tuple.Relationship, reqCtx map[string]any, st *scopeStats) bool {
	t.Helper()
	ctx := context.Background()
	rd := load(t, rels)
	universe, allRels := diffWorld(s)
	oracle := New(s, Options{Concurrency: 1})
	oracle.wideFanout = math.MaxInt
	oracle.arrowProbe = 0
	configs := scopeConfigs(t, s, rels)
	defer func() {
		for _, cfg := range configs {
			st.nestedReads += int(cfg.e.nestedLookups.Load())
			st.streamedThrough += int(cfg.e.streamedThrough.Load())
			st.streamedWithin += int(cfg.e.streamedWithin.Load())
			st.streamedWithinSet += int(cfg.e.streamedWithinSet.Load())
		}
	}()
	var defs []string
	for _, name := range slices.Sorted(maps.Keys(s.Definitions)) {
		if name != "user" {
			defs = append(defs, name)
		}
	}
	// Relations a scope may follow: the plain-object relations.
	var followable []string
	for _, r := range allRels {
		if r.IsPermission {
			continue
		}
		for _, a := range r.Allowed {
			if a.Type != "user" && !a.Wildcard {
				followable = append(followable, r.Definition.Name+"#"+r.Name)
				break
			}
		}
	}
	subjects := []tuple.SubjectRef{{Type: "user", ID: tuple.Wildcard}, {Type: "user", ID: "nobody"}}
	for _, u := range diffUsers {
		subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: u})
	}
	now := testNow
	if rng.IntN(2) == 0 {
		now = testNow.Add(2 * time.Hour) // the expiring relationships have expired
	}
	p := Params{Reader: rd, Now: now, Context: reqCtx}
	check := func(r *schema.Relation, id string, sub tuple.SubjectRef) (CheckResult, error) {
		return oracle.Check(ctx, p, CheckRequest{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Permission: r.Name, Subject: sub})
	}

	// LookupResources through an object.
	for range 6 {
		sub := subjects[rng.IntN(len(subjects))]
		th := &Through{Object: tuple.ObjectRef{Type: defs[rng.IntN(len(defs))], ID: diffIDs[rng.IntN(len(diffIDs))]}}
		follow := testArrowTuplesets(s)
		if len(followable) > 0 && (len(follow) == 0 || rng.IntN(2) == 0) {
			follow = map[string]bool{}
			for range 1 + rng.IntN(2) {
				f := followable[rng.IntN(len(followable))]
				follow[f] = true
				th.Relations = append(th.Relations, f)
			}
		}
		// Mostly a scope object of a type that the followed relations lead
		// to from the goal's type (a scope the schema can satisfy),
		// sometimes of any type they point at, or of any type at all.
		next := map[string][]string{}
		var targets []string
		for f := range follow {
			typ, name, _ := strings.Cut(f, "#")
			for _, a := range s.Definitions[typ].Relations[name].Allowed {
				if a.Type != "user" && !a.Wildcard {
					targets = append(targets, a.Type)
					next[typ] = append(next[typ], a.Type)
				}
			}
		}
		// Mostly a goal on a type the followed relations leave from.
		goals := allRels
		if rng.IntN(8) > 0 {
			goals = slices.DeleteFunc(slices.Clone(allRels), func(r *schema.Relation) bool { return len(next[r.Definition.Name]) == 0 })
		}
		if len(goals) == 0 {
			goals = allRels
		}
		goal := goals[rng.IntN(len(goals))]
		if goal.Definition.Name == "user" {
			continue
		}
		var reachable []string
		seen := map[string]bool{}
		for queue := []string{goal.Definition.Name}; len(queue) > 0; queue = queue[1:] {
			for _, n := range next[queue[0]] {
				if !seen[n] {
					seen[n] = true
					reachable = append(reachable, n)
					queue = append(queue, n)
				}
			}
		}
		slices.Sort(targets)
		slices.Sort(reachable)
		switch k := rng.IntN(8); {
		case len(reachable) > 0 && k < 6:
			th.Object.Type = reachable[rng.IntN(len(reachable))]
		case len(targets) > 0 && k < 7:
			th.Object.Type = targets[rng.IntN(len(targets))]
		}
		in := bruteScope(rels, follow, th.Object, now)
		var want []ResourceResult
		skip := false
		for _, id := range universe[goal.Definition.Name] {
			cr, err := check(goal, id, sub)
			if err != nil {
				skip = true // a path past the depth limit: the lookup may fail too
				break
			}
			if cr.Permissionship == NoPermission {
				continue
			}
			if !in[tuple.ObjectRef{Type: goal.Definition.Name, ID: id}] {
				st.cutResources++
				continue
			}
			want = append(want, ResourceResult{ResourceID: id, Permissionship: cr.Permissionship})
		}
		if skip {
			st.depthSkips++
			continue
		}
		req := LookupResourcesRequest{ResourceType: goal.Definition.Name, Permission: goal.Name, Subject: sub, Through: th}
		for _, cfg := range configs {
			got, err := drain(cfg.e.LookupResources(ctx, cfg.params(p), req))
			if errors.Is(err, ErrInvalidRequest) && !slices.ContainsFunc(slices.Collect(maps.Keys(in)), func(o tuple.ObjectRef) bool { return o.Type == goal.Definition.Name }) {
				// The schema's types cannot satisfy this scope; the data
				// (which obeys the schema) agrees.
				st.badScopes++
				break
			}
			if err != nil || !slices.EqualFunc(got, want, sameResource) {
				t.Errorf("seed %d %s: LookupResources(%s#%s@%s through %s) = %v (err %v), brute force %v",
					seed, cfg.name, goal.Definition.Name, goal.Name, sub, th, got, err, want)
				return false
			}
			// Paged by one and by two, following After.
			for _, size := range []int{1, 2} {
				var paged []ResourceResult
				after := ""
				for range len(want) + 2 {
					r := req
					r.Limit, r.After = size, after
					page, err := drain(cfg.e.LookupResources(ctx, cfg.params(p), r))
					if err != nil {
						t.Fatalf("seed %d %s: page: %v", seed, cfg.name, err)
					}
					paged = append(paged, page...)
					if len(page) < size {
						break
					}
					after = page[len(page)-1].ResourceID
				}
				if !slices.EqualFunc(paged, want, sameResource) {
					t.Errorf("seed %d %s: pages of %d of LookupResources(%s#%s@%s through %s) = %v, brute force %v",
						seed, cfg.name, size, goal.Definition.Name, goal.Name, sub, th, paged, want)
					return false
				}
			}
		}
		st.resources += len(want)
	}

	// LookupSubjects within a subject set.
	for range 6 {
		goal := allRels[rng.IntN(len(allRels))]
		if goal.Definition.Name == "user" {
			continue
		}
		res := tuple.ObjectRef{Type: goal.Definition.Name, ID: diffIDs[rng.IntN(len(diffIDs))]}
		w := allRels[rng.IntN(len(allRels))]
		within := &tuple.SubjectRef{Type: w.Definition.Name, ID: diffIDs[rng.IntN(len(diffIDs))], Relation: w.Name}
		// Plain users, or sometimes the subject sets of one relation.
		subType, subRel, ids := "user", "", append(slices.Clone(diffUsers), "nobody")
		if rng.IntN(4) == 0 {
			k := allRels[rng.IntN(len(allRels))]
			subType, subRel, ids = k.Definition.Name, k.Name, diffIDs
		}
		want := map[string]Permissionship{}
		skip := false
		for _, id := range ids {
			sub := tuple.SubjectRef{Type: subType, ID: id, Relation: subRel}
			a, err1 := check(goal, res.ID, sub)
			b, err2 := check(w, within.ID, sub)
			if err1 != nil || err2 != nil {
				skip = true
				break
			}
			if a.Permissionship != NoPermission && b.Permissionship == NoPermission {
				st.cutSubjects++
			}
			want[id] = and2(a.Permissionship, b.Permissionship)
		}
		if skip {
			st.depthSkips++
			continue
		}
		req := LookupSubjectsRequest{Resource: res, Permission: goal.Name, SubjectType: subType, SubjectRelation: subRel, Within: within}
		for _, cfg := range configs {
			got, err := drain(cfg.e.LookupSubjects(ctx, cfg.params(p), req))
			if err != nil {
				t.Errorf("seed %d %s: LookupSubjects(%s#%s %s#%s within %s): %v", seed, cfg.name, res, goal.Name, subType, subRel, within, err)
				return false
			}
			if msg := compareSubjects(got, want); msg != "" {
				t.Errorf("seed %d %s: LookupSubjects(%s#%s %s#%s within %s) = %v: %s", seed, cfg.name, res, goal.Name, subType, subRel, within, got, msg)
				return false
			}
			// Pages of one, following After, list the same results.
			var paged []SubjectResult
			after := ""
			for range len(got) + 2 {
				r := req
				r.Limit, r.After = 1, after
				page, err := drain(cfg.e.LookupSubjects(ctx, cfg.params(p), r))
				if err != nil {
					t.Fatalf("seed %d %s: page: %v", seed, cfg.name, err)
				}
				paged = append(paged, page...)
				if len(page) < 1 {
					break
				}
				after = page[0].SubjectID
			}
			if fmt.Sprint(paged) != fmt.Sprint(got) {
				t.Errorf("seed %d %s: pages of LookupSubjects(%s#%s within %s) = %v, whole %v", seed, cfg.name, res, goal.Name, within, paged, got)
				return false
			}
			if cfg.name == "default" {
				for _, r := range got {
					if r.SubjectID == tuple.Wildcard {
						st.wildSubjects++
					} else {
						st.subjects++
					}
				}
			}
		}
	}
	return true
}

// and2 is the conjunction of two permissionships.
func and2(a, b Permissionship) Permissionship {
	switch {
	case a == NoPermission || b == NoPermission:
		return NoPermission
	case a == HasPermission && b == HasPermission:
		return HasPermission
	}
	return ConditionalPermission
}

// compareSubjects checks a LookupSubjects answer against the answer for
// every subject of the universe: a subject listed by its ID has its own
// answer; one not listed has the wildcard's (unless the wildcard excludes
// it) or none.
func compareSubjects(got []SubjectResult, want map[string]Permissionship) string {
	listed := map[string]SubjectResult{}
	for i, r := range got {
		if _, dup := listed[r.SubjectID]; dup {
			return "duplicate " + r.SubjectID
		}
		if i > 0 && subjectOrder(got[i-1].SubjectID, r.SubjectID) >= 0 {
			return "out of order"
		}
		if r.Permissionship == NoPermission {
			return "lists " + r.SubjectID + " without permission"
		}
		listed[r.SubjectID] = r
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		var p Permissionship
		if r, ok := listed[id]; ok {
			p = r.Permissionship
		} else if w, ok := listed[tuple.Wildcard]; ok && !slices.Contains(w.ExcludedIDs, id) {
			p = w.Permissionship
		}
		if p != want[id] {
			return fmt.Sprintf("%s: %v, brute force %v", id, p, want[id])
		}
	}
	return ""
}

func sameResource(a, b ResourceResult) bool {
	return a.ResourceID == b.ResourceID && a.Permissionship == b.Permissionship
}

// TestScopedLookupCaveats: a scope ignores the caveats of the
// relationships it follows (the permission is decided with them, as Check
// decides it), and a subject's answer within a subject set is the
// conjunction of both answers, its missing context the union of theirs.
func TestScopedLookupCaveats(t *testing.T) {
	s := mustCompile(t, `
caveat flag(on bool) { on }
caveat level(n int) { n > 2 }
definition user {}
definition group {
  relation member: user | user with level | group#member
}
definition folder {
  relation parent: folder | folder with flag
  relation viewer: user
  permission view = viewer + parent->view
}
definition doc {
  relation folder: folder
  relation viewer: user | user with flag | group#member
  permission view = viewer + folder->view
}`)
	rels := mustParse(t,
		"group:g#member@user:a[level]",
		"group:g#member@user:b",
		"group:g#member@user:e",
		"doc:d#viewer@user:a[flag]",
		"doc:d#viewer@user:b[flag]",
		"doc:d#viewer@user:c",
		"doc:d#viewer@user:e",
		"folder:root#viewer@user:a",
		"folder:sub#parent@folder:root[flag]",
		"doc:x#folder@folder:sub",
		"doc:y#folder@folder:root",
		"doc:z#viewer@user:a",
	)
	rd := load(t, rels)
	ctx := context.Background()
	within := &tuple.SubjectRef{Type: "group", ID: "g", Relation: "member"}
	for _, tc := range []struct {
		name string
		cctx map[string]any
		want string
	}{
		{"no context", nil, "a:CONDITIONAL_PERMISSION[n on] b:CONDITIONAL_PERMISSION[on] e:HAS_PERMISSION[]"},
		{"flag on", map[string]any{"on": true}, "a:CONDITIONAL_PERMISSION[n] b:HAS_PERMISSION[] e:HAS_PERMISSION[]"},
		{"flag off, level high", map[string]any{"on": false, "n": 5}, "e:HAS_PERMISSION[]"},
		{"flag on, level low", map[string]any{"on": true, "n": 1}, "b:HAS_PERMISSION[] e:HAS_PERMISSION[]"},
	} {
		for _, cfg := range scopeConfigs(t, s, rels) {
			got, err := drain(cfg.e.LookupSubjects(ctx, cfg.params(Params{Reader: rd, Now: testNow, Context: tc.cctx}),
				LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "d"}, Permission: "view", SubjectType: "user", Within: within}))
			var parts []string
			for _, r := range got {
				m := slices.Clone(r.MissingContext)
				slices.Sort(m)
				parts = append(parts, fmt.Sprintf("%s:%v%v", r.SubjectID, r.Permissionship, m))
			}
			if err != nil || strings.Join(parts, " ") != tc.want {
				t.Errorf("%s, %s: doc:d#view users within group:g#member = %q (%v), want %q", tc.name, cfg.name, strings.Join(parts, " "), err, tc.want)
			}
		}
	}
	root := &Through{Object: tuple.ObjectRef{Type: "folder", ID: "root"}}
	for _, tc := range []struct {
		name string
		cctx map[string]any
		want string
	}{
		// x sits under root whatever the flag says; whether a may view it
		// depends on the flag.
		{"no context", nil, "x:CONDITIONAL_PERMISSION y:HAS_PERMISSION"},
		{"flag on", map[string]any{"on": true}, "x:HAS_PERMISSION y:HAS_PERMISSION"},
		{"flag off", map[string]any{"on": false}, "y:HAS_PERMISSION"},
	} {
		for _, cfg := range scopeConfigs(t, s, rels) {
			got, err := drain(cfg.e.LookupResources(ctx, cfg.params(Params{Reader: rd, Now: testNow, Context: tc.cctx}),
				LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "a"}, Through: root}))
			var parts []string
			for _, r := range got {
				parts = append(parts, fmt.Sprintf("%s:%v", r.ResourceID, r.Permissionship))
			}
			if err != nil || strings.Join(parts, " ") != tc.want {
				t.Errorf("%s, %s: doc#view@user:a through folder:root = %q (%v), want %q", tc.name, cfg.name, strings.Join(parts, " "), err, tc.want)
			}
		}
	}
}

// relCounter counts the relationships read through it, both directions.
type relCounter struct {
	store.Reader
	n atomic.Int64
}

func (r *relCounter) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return r.count(r.Reader.QueryRelationships(ctx, f, opts))
}

func (r *relCounter) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return r.count(r.Reader.ReverseQueryRelationships(ctx, f, opts))
}

func (r *relCounter) count(seq iter.Seq2[tuple.Relationship, error]) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for x, err := range seq {
			r.n.Add(1)
			if !yield(x, err) {
				return
			}
		}
	}
}

// TestScopedLookupCost: the scope is pushed into the evaluation, not
// applied afterwards: with a small scope, the relationships a scoped
// lookup reads do not grow with what the subject (or the resource) can
// reach outside it, while the unscoped lookup's do.
func TestScopedLookupCost(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
  relation member: user | group#member
}
definition folder {
  relation parent: folder
  relation viewer: user
  permission view = viewer + parent->view
}
definition doc {
  relation folder: folder
  relation viewer: user | group#member
  permission view = viewer + folder->view
}`)
	ctx := context.Background()
	e := New(s, Options{Concurrency: 1})
	type reads struct{ scoped, unscoped int64 }
	measure := func(n int) reads {
		// a views folder:root, which holds n documents and folder:small
		// with 3; group:big has n members, group:small 3 of them.
		rels := []string{"folder:root#viewer@user:a", "folder:small#parent@folder:root", "doc:d#viewer@group:big#member"}
		for i := range n {
			rels = append(rels, fmt.Sprintf("doc:r%04d#folder@folder:root", i), fmt.Sprintf("group:big#member@user:u%04d", i))
		}
		for i := range 3 {
			rels = append(rels, fmt.Sprintf("doc:s%d#folder@folder:small", i), fmt.Sprintf("group:small#member@user:u%04d", i))
		}
		rd := load(t, mustParse(t, rels...))
		var out reads
		for _, scoped := range []bool{true, false} {
			rc := &relCounter{Reader: rd}
			p := Params{Reader: rc, Now: testNow}
			lr := LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "a"}}
			ls := LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "d"}, Permission: "view", SubjectType: "user"}
			if scoped {
				lr.Through = &Through{Object: tuple.ObjectRef{Type: "folder", ID: "small"}}
				ls.Within = &tuple.SubjectRef{Type: "group", ID: "small", Relation: "member"}
			}
			docs, err := drain(e.LookupResources(ctx, p, lr))
			if err != nil {
				t.Fatal(err)
			}
			users, err := drain(e.LookupSubjects(ctx, p, ls))
			if err != nil {
				t.Fatal(err)
			}
			if want := 3 + n; scoped {
				if len(docs) != 3 || len(users) != 3 {
					t.Fatalf("n=%d: scoped lookups found %d documents and %d users, want 3 and 3", n, len(docs), len(users))
				}
				out.scoped = rc.n.Load()
			} else {
				if len(docs) != want || len(users) != n {
					t.Fatalf("n=%d: lookups found %d documents and %d users, want %d and %d", n, len(docs), len(users), want, n)
				}
				out.unscoped = rc.n.Load()
			}
		}
		return out
	}
	small, large := measure(20), measure(400)
	t.Logf("relationships read: n=20 %+v, n=400 %+v", small, large)
	if large.scoped != small.scoped {
		t.Errorf("scoped lookups read %d relationships with 20 outside the scope, %d with 400", small.scoped, large.scoped)
	}
	if large.unscoped < small.unscoped+2*380 {
		t.Errorf("unscoped lookups read %d then %d relationships: the data does not measure what it should", small.unscoped, large.unscoped)
	}
}
