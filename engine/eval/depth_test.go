package eval

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// depthSchema holds the three shapes of nesting: subject sets
// (group#member), arrows (folder#view over parent) and a subject set
// reached through an arrow (doc#view over folder's team).
const depthSchema = `
definition user {}
definition group {
	relation member: user | group#member
}
definition folder {
	relation parent: folder
	relation viewer: user | group#member
	permission view = viewer + parent->view
}
`

// depthChain is a chain of n nesting levels whose grant reaches the
// subject after rels(n) relations on the path of a check (the requested
// one and the one naming the subject included).
type depthChain struct {
	name       string
	schema     string
	build      func(n int) []string // relationships of a chain of n levels
	resource   func(n int) tuple.ObjectRef
	permission string
	subject    string
	rels       func(n int) int
	// expandExtra is how many relations Expand follows past the grant:
	// Expand has no subject to stop at, so it expands a subject set that
	// Check finds in itself (and, like a Check that answers no, follows
	// every path to its end).
	expandExtra int
}

// groupChain nests group:g0 (holding user:deep) n levels deep.
func groupChain(n int) []string {
	out := []string{"group:g0#member@user:deep"}
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("group:g%d#member@group:g%d#member", i, i-1))
	}
	return out
}

var depthChains = []depthChain{
	{
		// group:gn#member ∋ group:gn-1#member ∋ … ∋ group:g0#member ∋ user:deep:
		// gn, …, g0 are n+1 relations.
		name:       "subject sets",
		schema:     depthSchema,
		build:      groupChain,
		resource:   func(n int) tuple.ObjectRef { return tuple.ObjectRef{Type: "group", ID: fmt.Sprintf("g%d", n)} },
		permission: "member",
		subject:    "user:deep",
		rels:       func(n int) int { return n + 1 },
	},
	{
		// A subject set is in itself before any relation is visited:
		// gn, …, g1 are n relations.
		name:        "subject set as the subject",
		schema:      depthSchema,
		build:       groupChain,
		resource:    func(n int) tuple.ObjectRef { return tuple.ObjectRef{Type: "group", ID: fmt.Sprintf("g%d", n)} },
		permission:  "member",
		subject:     "group:g0#member",
		rels:        func(n int) int { return n },
		expandExtra: 1,
	},
	{
		// folder:fn#view -> parent -> … -> folder:f0#view -> f0#viewer:
		// n+1 views and one viewer.
		name:   "arrows",
		schema: depthSchema,
		build: func(n int) []string {
			out := []string{"folder:f0#viewer@user:deep"}
			for i := 1; i <= n; i++ {
				out = append(out, fmt.Sprintf("folder:f%d#parent@folder:f%d", i, i-1))
			}
			return out
		},
		resource:   func(n int) tuple.ObjectRef { return tuple.ObjectRef{Type: "folder", ID: fmt.Sprintf("f%d", n)} },
		permission: "view",
		subject:    "user:deep",
		rels:       func(n int) int { return n + 2 },
	},
	{
		// Arrows, then subject sets: folder:fn#view down to f0#viewer,
		// which holds group:gn#member, nested n deep.
		name:   "arrows then subject sets",
		schema: depthSchema,
		build: func(n int) []string {
			out := []string{"folder:f0#viewer@group:g" + fmt.Sprint(n) + "#member", "group:g0#member@user:deep"}
			for i := 1; i <= n; i++ {
				out = append(out, fmt.Sprintf("folder:f%d#parent@folder:f%d", i, i-1),
					fmt.Sprintf("group:g%d#member@group:g%d#member", i, i-1))
			}
			return out
		},
		resource:   func(n int) tuple.ObjectRef { return tuple.ObjectRef{Type: "folder", ID: fmt.Sprintf("f%d", n)} },
		permission: "view",
		subject:    "user:deep",
		rels:       func(n int) int { return 2*n + 3 },
	},
}

// depthEvaluators are the configurations whose answers must agree: the
// plain top-down walk, concurrency, subject-side fan-outs, reverse checks
// that give up at once, the cross-request cache, and a node of a cluster
// that sends subproblems, with their paths, to their owners.
func depthEvaluators(t *testing.T, src string, maxDepth int, rd store.Reader) map[string]*Evaluator {
	s := mustCompile(t, src)
	wide := New(s, Options{MaxDepth: maxDepth, Concurrency: 1})
	wide.wideFanout = 1
	small := New(s, Options{MaxDepth: maxDepth, Concurrency: 4})
	small.reverseBudget = 1
	small.arrowProbe = 1
	planner := New(s, Options{MaxDepth: maxDepth, Concurrency: 1})
	planner.arrowProbe = 1
	topDown := New(s, Options{MaxDepth: maxDepth, Concurrency: 1})
	topDown.arrowProbe = 0
	return map[string]*Evaluator{
		"planner":       planner,
		"top-down":      topDown,
		"sequential":    New(s, Options{MaxDepth: maxDepth, Concurrency: 1}),
		"concurrent":    New(s, Options{MaxDepth: maxDepth, Concurrency: 4}),
		"wide":          wide,
		"small budget":  small,
		"cached":        New(s, Options{MaxDepth: maxDepth, Concurrency: 4, Cache: NewCache(1 << 20)}),
		"cached+single": New(s, Options{MaxDepth: maxDepth, Concurrency: 1, Cache: NewCache(1 << 20)}),
		"cluster":       newTestClusterDepth(s, 3, rd, maxDepth).nodes[1],
	}
}

// depthOutcome is what one operation answered about the grant: granted,
// or the depth error (any other error fails the test).
type depthOutcome struct {
	granted bool
	err     *MaxDepthError
}

func (o depthOutcome) String() string {
	if o.err != nil {
		return "max depth error: " + o.err.Error()
	}
	return fmt.Sprintf("granted=%v", o.granted)
}

func outcome(t *testing.T, op string, granted bool, err error) depthOutcome {
	t.Helper()
	if err == nil {
		return depthOutcome{granted: granted}
	}
	var md *MaxDepthError
	if !errors.As(err, &md) || !errors.Is(err, ErrMaxDepth) {
		t.Fatalf("%s: err = %v, want nil or a *MaxDepthError", op, err)
	}
	return depthOutcome{err: md}
}

// allFour asks Check, Expand, LookupResources and LookupSubjects whether
// subject has permission on resource.
func allFour(t *testing.T, e *Evaluator, rd store.Reader, resource tuple.ObjectRef, permission, subject string) map[string]depthOutcome {
	t.Helper()
	ctx := context.Background()
	p := Params{Reader: rd, Now: testNow}
	sub := mustSubject(t, subject)
	out := map[string]depthOutcome{}

	res, err := e.Check(ctx, p, CheckRequest{Resource: resource, Permission: permission, Subject: sub})
	out["Check"] = outcome(t, "Check", res.Permissionship == HasPermission, err)

	tree, err := e.Expand(ctx, p, ExpandRequest{Resource: resource, Permission: permission})
	out["Expand"] = outcome(t, "Expand", err == nil && treeHas(tree, sub), err)

	found, err := false, error(nil)
	for r, lerr := range e.LookupResources(ctx, p, LookupResourcesRequest{ResourceType: resource.Type, Permission: permission, Subject: sub}) {
		if lerr != nil {
			err = lerr
			break
		}
		found = found || (r.ResourceID == resource.ID && r.Permissionship == HasPermission)
	}
	out["LookupResources"] = outcome(t, "LookupResources", found, err)

	found, err = false, nil
	for r, lerr := range e.LookupSubjects(ctx, p, LookupSubjectsRequest{Resource: resource, Permission: permission, SubjectType: sub.Type, SubjectRelation: sub.Relation}) {
		if lerr != nil {
			err = lerr
			break
		}
		found = found || (r.SubjectID == sub.ID && r.Permissionship == HasPermission)
	}
	out["LookupSubjects"] = outcome(t, "LookupSubjects", found, err)
	return out
}

// treeHas reports whether sub appears in t: among the stored subjects, or
// as a subject set that was expanded.
func treeHas(t *Tree, sub tuple.SubjectRef) bool {
	if t == nil {
		return false
	}
	if sub.Relation != "" && t.Object.Type == sub.Type && t.Object.ID == sub.ID && t.Relation == sub.Relation {
		return true
	}
	for _, s := range t.Subjects {
		if s.Subject == sub {
			return true
		}
	}
	return slices.ContainsFunc(t.Children, func(c *Tree) bool { return treeHas(c, sub) })
}

// TestDepthRuleAgrees builds chains whose grant lies just within, exactly
// at and just past MaxDepth, and demands that Check, Expand,
// LookupResources and LookupSubjects all grant, or all fail with the same
// depth error naming the same path, under every evaluator configuration.
func TestDepthRuleAgrees(t *testing.T) {
	const limit = 12
	for _, c := range depthChains {
		// The chain lengths whose grant needs limit-1, limit and
		// limit+1 relations (where the shape allows: "arrows then
		// subject sets" grows by two).
		for n := 0; n < 2*limit; n++ {
			need := c.rels(n)
			if need < limit-1 || need > limit+1 {
				continue
			}
			want := map[string]bool{"Check": need <= limit, "Expand": need+c.expandExtra <= limit,
				"LookupResources": need <= limit, "LookupSubjects": need <= limit}
			t.Run(fmt.Sprintf("%s/%d levels/%d relations", c.name, n, need), func(t *testing.T) {
				rd := load(t, mustParse(t, c.build(n)...))
				for name, e := range depthEvaluators(t, c.schema, limit, rd) {
					// Twice: the second pass meets warm caches.
					for pass := range 2 {
						got := allFour(t, e, rd, c.resource(n), c.permission, c.subject)
						checkAgreement(t, fmt.Sprintf("%s pass %d", name, pass), got, want, limit, c.resource(n), c.permission)
					}
				}
			})
		}
	}
}

// checkAgreement demands that every operation grants (want[op]) or fails
// with the same depth error, reported for resource#permission at the given
// limit, on the path Check followed.
func checkAgreement(t *testing.T, config string, got map[string]depthOutcome, want map[string]bool, limit int, resource tuple.ObjectRef, permission string) {
	t.Helper()
	root := resource.String() + "#" + permission
	check := got["Check"].err
	for _, op := range []string{"Check", "Expand", "LookupResources", "LookupSubjects"} {
		o := got[op]
		if want[op] {
			if !o.granted || o.err != nil {
				t.Errorf("%s: %s = %v, want the grant", config, op, o)
			}
			continue
		}
		if o.err == nil {
			t.Errorf("%s: %s = %v, want the max depth error", config, op, o)
			continue
		}
		md := o.err
		if md.Depth != limit || len(md.Path) != limit+1 || md.Path[0] != root || md.Cycle {
			t.Errorf("%s: %s error = %+v, want a path of %d relations from %s, no cycle", config, op, md, limit+1, root)
			continue
		}
		// The last step is the first branch tried past the limit, which
		// may differ (Expand takes a rewrite's branches in schema order).
		if check != nil && !slices.Equal(md.Path[:limit], check.Path[:limit]) {
			t.Errorf("%s: %s followed %v, Check %v", config, op, md.Path, check.Path)
		}
		if msg := md.Error(); !strings.Contains(msg, root) || !strings.Contains(msg, "no cycle") {
			t.Errorf("%s: %s message %q does not name %s or say that no cycle was seen", config, op, msg, root)
		}
	}
}

// TestDepthEnterpriseAdminChain is the case of issue 13: department:d70
// nested 70 levels below department:d0, whose scoped admin manages it
// through parent->manage. The path department:d70#manage, …,
// department:d0#manage, department:d0#scoped_admin has 72 relations:
// every operation fails at the default limit and at 71, and every one
// grants at 72.
func TestDepthEnterpriseAdminChain(t *testing.T) {
	src, err := os.ReadFile("../../examples/enterprise/schema.zed")
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{"enterprise:acme#creator@employee:ceo", "department:d0#scoped_admin@employee:boss", "department:d0#parent@enterprise:acme"}
	for i := 1; i <= 70; i++ {
		lines = append(lines, fmt.Sprintf("department:d%d#parent@department:d%d", i, i-1))
	}
	rd := load(t, mustParse(t, lines...))
	d70 := tuple.ObjectRef{Type: "department", ID: "d70"}
	for _, limit := range []int{0, 71, 72} {
		want := limit >= 72
		effective := limit
		if limit == 0 {
			effective = DefaultMaxDepth
		}
		for name, e := range depthEvaluators(t, string(src), limit, rd) {
			got := allFour(t, e, rd, d70, "manage", "employee:boss")
			config := fmt.Sprintf("MaxDepth %d %s", limit, name)
			if want {
				checkAgreement(t, config, got, map[string]bool{"Check": true, "Expand": true, "LookupResources": true, "LookupSubjects": true}, effective, d70, "manage")
				continue
			}
			for op, o := range got {
				if o.err == nil || o.err.Depth != effective || o.err.Cycle {
					t.Errorf("%s: %s = %v, want the max depth error at %d", config, op, o, effective)
					continue
				}
				if !strings.HasPrefix(o.err.Path[0], "department:") || !strings.HasSuffix(o.err.Path[0], "#manage") {
					t.Errorf("%s: %s error starts at %s, want a department's manage", config, op, o.err.Path[0])
				}
			}
			// The resource asked about is where Check and Expand start.
			for _, op := range []string{"Check", "Expand", "LookupSubjects"} {
				if o := got[op]; o.err != nil && o.err.Path[0] != "department:d70#manage" {
					t.Errorf("%s: %s error path starts at %s", config, op, o.err.Path[0])
				}
			}
		}
	}
}

// TestDepthErrorNamesACycle nests a cycle (c0 in c1 in c2 in c0) above a
// deep chain: evaluation comes back to c0 before running out of depth
// below c2, and every operation says so.
func TestDepthErrorNamesACycle(t *testing.T) {
	const limit = 10
	lines := []string{
		"group:c0#member@group:c1#member",
		"group:c1#member@group:c2#member",
		// c2 holds c0 (the cycle; "c0" sorts before "t1", so it is
		// followed first) and the deep chain t1, …, t20.
		"group:c2#member@group:c0#member",
		"group:c2#member@group:t1#member",
		"group:t20#member@user:deep",
	}
	for i := 1; i < 20; i++ {
		lines = append(lines, fmt.Sprintf("group:t%d#member@group:t%d#member", i, i+1))
	}
	rd := load(t, mustParse(t, lines...))
	c0 := tuple.ObjectRef{Type: "group", ID: "c0"}
	for name, e := range depthEvaluators(t, depthSchema, limit, rd) {
		if e.opts.Concurrency > 1 {
			continue // which branch is followed first is then a race
		}
		for op, o := range allFour(t, e, rd, c0, "member", "user:deep") {
			if o.err == nil || !o.err.Cycle || o.err.Path[0] != "group:c0#member" {
				t.Errorf("%s: %s = %v, want a max depth error from group:c0#member that saw a cycle", name, op, o)
				continue
			}
			if msg := o.err.Error(); !strings.Contains(msg, "cycle in the data was seen") {
				t.Errorf("%s: %s message %q does not say a cycle was seen", name, op, msg)
			}
		}
	}
}

// TestMaxDepthErrorMessage pins down how a long path is shortened.
func TestMaxDepthErrorMessage(t *testing.T) {
	var path []string
	for i := 10; i >= 0; i-- {
		path = append(path, fmt.Sprintf("group:g%d#member", i))
	}
	tests := []struct {
		err  MaxDepthError
		want string
	}{
		{MaxDepthError{Depth: 10, Path: path},
			"eval: max depth 10 exceeded: a path of 11 relations: group:g10#member -> group:g9#member -> group:g8#member -> … 5 more … -> " +
				"group:g2#member -> group:g1#member -> group:g0#member; no cycle seen on this path: the nesting is this deep (raise the max depth if it is meant to be)"},
		{MaxDepthError{Depth: 2, Path: path[:3], Cycle: true},
			"eval: max depth 2 exceeded: a path of 3 relations: group:g10#member -> group:g9#member -> group:g8#member; a cycle in the data was seen on this path"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() =\n%s\nwant\n%s", got, tt.want)
		}
	}
}

// TestDepthRuleWarmCache: a grant found earlier for a relation deep in the
// chain (within the limit from there) must not make a check from further
// up, whose path is too long, answer yes from the cache or the memo.
func TestDepthRuleWarmCache(t *testing.T) {
	const limit = 12
	for _, c := range depthChains {
		for n := 0; n < 2*limit; n++ {
			need := c.rels(n)
			if need != limit+1 {
				continue
			}
			t.Run(fmt.Sprintf("%s/%d levels", c.name, n), func(t *testing.T) {
				rd := load(t, mustParse(t, c.build(n)...))
				for name, e := range depthEvaluators(t, c.schema, limit, rd) {
					if e.opts.Cache == nil {
						continue
					}
					p := Params{Reader: rd, Now: testNow}
					sub := mustSubject(t, c.subject)
					// One request: the memo shares the inner answers.
					var reqs []CheckRequest
					for i := range n {
						reqs = append(reqs, CheckRequest{Resource: c.resource(i), Permission: c.permission, Subject: sub})
					}
					for _, r := range e.CheckBulk(context.Background(), p, reqs) {
						if r.Err != nil {
							t.Fatalf("%s: warming: %v", name, r.Err)
						}
					}
					root := CheckRequest{Resource: c.resource(n), Permission: c.permission, Subject: sub}
					bulk := e.CheckBulk(context.Background(), p, append(reqs, root))
					for i, r := range [][]BulkResult{bulk[len(reqs):], e.CheckBulk(context.Background(), p, []CheckRequest{root})} {
						if !errors.Is(r[0].Err, ErrMaxDepth) {
							t.Errorf("%s: check %d of %s = %v, %v; want the max depth error", name, i, root.Resource, r[0].Permissionship, r[0].Err)
						}
					}
				}
			})
		}
	}
}

// TestDifferentialDepth runs the random schemas and data of
// TestDifferential under depth limits small enough to be hit all the time.
// No operation may then answer differently from the reference (which has
// no limit): it answers right or fails with the max depth error. And a
// grant that a lookup reports, Check reports too, whatever the memo, the
// cache or the peers of a cluster held from earlier requests (found by
// seeds 11, 195 and 554: answers reused at a depth where a fresh
// evaluation fails).
func TestDifferentialDepth(t *testing.T) {
	cs, err := schema.Compile("caveats.zed", diffCaveats)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, cases := 0, max(diffCases()/6, 10)
	if v, err := strconv.Atoi(os.Getenv("PEMBA_DIFF_SEED")); err == nil {
		first, cases = v, 1 // reproduce one case
	}
	// Then schemas with a recursive arrow, which the index answers
	// (nestedarrow.go), with their tupleset chained and cycled.
	for _, arrows := range []bool{false, true} {
		for i := first; i < first+cases; i++ {
			seed := uint64(i)
			rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
			var s *schema.Schema
			var rels []tuple.Relationship
			if !arrows {
				s = genSchema(rng, cs.Caveats, "depth-"+strconv.Itoa(i))
				rels = genTuples(rng, s, testNow)
			} else if i%3 == 0 {
				s = genArrowSchema(rng, cs.Caveats, "depth-arrows-"+strconv.Itoa(i))
				rels = genArrowTuples(rng, s)
			} else {
				continue
			}
			reqCtx := diffContexts[rng.IntN(len(diffContexts))]
			rd := load(t, rels)
			rdNested := loadNested(t, s, rels)
			universe, allRels := diffWorld(s)
			subjects := []tuple.SubjectRef{{Type: "user", ID: tuple.Wildcard}}
			for _, u := range diffUsers {
				subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: u})
			}
			for j, r := range allRels {
				subjects = append(subjects, tuple.SubjectRef{Type: r.Definition.Name, ID: diffIDs[j%2], Relation: r.Name})
			}
			loose := looseMissing(allRels)
			ref := newRefEval(s, rels, testNow, reqCtx, universe)
			want := map[tuple.SubjectRef]map[refNode]refVal{}
			refOf := func(sub tuple.SubjectRef, r *schema.Relation, id string) refVal {
				v, ok := want[sub]
				if !ok {
					if v, err = ref.solve(sub); err != nil {
						t.Fatalf("seed %d: reference: %v", seed, err)
					}
					want[sub] = v
				}
				return v[refNode{r.Index, id}]
			}
			p := Params{Reader: rd, Now: testNow, Context: reqCtx}
			fail := func(format string, args ...any) {
				t.Errorf("seed %d: "+format, append([]any{seed}, args...)...)
				t.Logf("schema:\n%s\nrelationships:\n%s", describeSchema(s), describeTuples(rels))
			}
			for _, limit := range []int{2, 4} {
				// The index changes no answer and adds no error: what the
				// same evaluator answers without it, it answers with it; it
				// may answer "no" where the walk down fails on a deep path
				// to nothing, as the walk up from the subject (reverseCheck)
				// does (the configurations below hold it to the reference).
				plain, nested := New(s, Options{MaxDepth: limit, Concurrency: 1}), New(s, Options{MaxDepth: limit, Concurrency: 1, NestedIndex: true})
				for _, sub := range subjects {
					for _, r := range allRels {
						for _, id := range universe[r.Definition.Name] {
							req := CheckRequest{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Permission: r.Name, Subject: sub}
							a, errA := plain.Check(ctx, p, req)
							pn := p
							pn.Reader = rdNested
							b, errB := nested.Check(ctx, pn, req)
							if errB != nil && errA == nil || errA == nil && a.Permissionship != b.Permissionship {
								fail("limit %d: Check %s:%s#%s@%s: walk %v (%v), index %v (%v)", limit, r.Definition.Name, id, r.Name, sub, a.Permissionship, errA, b.Permissionship, errB)
								return
							}
						}
					}
				}
				seq := New(s, Options{MaxDepth: limit, Concurrency: 1})
				seq.wideFanout = 1
				seq.arrowProbe = 1
				conc := New(s, Options{MaxDepth: limit, Concurrency: 4, Cache: NewCache(1 << 20)})
				conc.reverseBudget = 3
				conc.arrowProbe = 1
				for _, ev := range []struct {
					name string
					e    *Evaluator
					rd   store.Reader // nil: the case's reader
				}{{"sequential+wide", seq, nil}, {"concurrent+cache+small-budget", conc, nil}, {"cluster", newTestClusterDepth(s, 3, rd, limit).nodes[1], nil},
					{"nested-index", New(s, Options{MaxDepth: limit, Concurrency: 1, NestedIndex: true}), rdNested}} {
					p := p
					if ev.rd != nil {
						p.Reader = ev.rd
					}
					// depthErr tells a max depth error from any other; the
					// latter fails the test.
					depthErr := func(op string, err error) bool {
						if err == nil {
							return false
						}
						var md *MaxDepthError
						if !errors.As(err, &md) || md.Depth != limit || len(md.Path) != limit+1 {
							fail("%s limit %d: %s: %v", ev.name, limit, op, err)
						}
						return true
					}
					checkErr := map[string]bool{}
					key := func(sub tuple.SubjectRef, r *schema.Relation, id string) string {
						return sub.String() + " " + r.Definition.Name + ":" + id + "#" + r.Name
					}
					for _, sub := range subjects {
						for _, r := range allRels {
							for _, id := range universe[r.Definition.Name] {
								got, err := ev.e.Check(ctx, p, CheckRequest{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Permission: r.Name, Subject: sub})
								if depthErr("Check "+key(sub, r, id), err) {
									checkErr[key(sub, r, id)] = true
									continue
								}
								if exp := refOf(sub, r, id); got.Permissionship != exp.perm || !sameMissing(got.MissingContext, exp.missing, loose) {
									fail("%s limit %d: Check %s = %v %v, reference %v %v", ev.name, limit, key(sub, r, id), got.Permissionship, got.MissingContext, exp.perm, exp.missing)
									return
								}
							}
						}
					}
					for _, sub := range subjects {
						for _, r := range allRels {
							got, err := drain(ev.e.LookupResources(ctx, p, LookupResourcesRequest{ResourceType: r.Definition.Name, Permission: r.Name, Subject: sub}))
							if depthErr("LookupResources", err) {
								continue
							}
							var exp []ResourceResult
							for _, id := range universe[r.Definition.Name] {
								if v := refOf(sub, r, id); v.perm != NoPermission {
									exp = append(exp, ResourceResult{ResourceID: id, Permissionship: v.perm, MissingContext: v.missing})
								}
							}
							if !slices.EqualFunc(got, exp, eqResource(loose)) {
								fail("%s limit %d: LookupResources(%s#%s@%s) = %v, reference %v", ev.name, limit, r.Definition.Name, r.Name, sub, got, exp)
								return
							}
							for _, g := range got {
								if checkErr[key(sub, r, g.ResourceID)] {
									fail("%s limit %d: LookupResources grants %s, Check fails on its depth", ev.name, limit, key(sub, r, g.ResourceID))
									return
								}
							}
						}
					}
					for _, r := range allRels {
						for j, id := range universe[r.Definition.Name] {
							res := tuple.ObjectRef{Type: r.Definition.Name, ID: id}
							k := allRels[(r.Index*len(diffIDs)+j)%len(allRels)]
							for _, kind := range []tuple.SubjectRef{{Type: "user"}, {Type: k.Definition.Name, Relation: k.Name}} {
								got, err := drain(ev.e.LookupSubjects(ctx, p, LookupSubjectsRequest{Resource: res, Permission: r.Name, SubjectType: kind.Type, SubjectRelation: kind.Relation}))
								if depthErr("LookupSubjects", err) {
									continue
								}
								ids := slices.Clone(universe[kind.Type])
								if kind.Relation == "" {
									ids = append(ids, tuple.Wildcard)
								}
								for _, sid := range ids {
									sub := tuple.SubjectRef{Type: kind.Type, ID: sid, Relation: kind.Relation}
									exp := refOf(sub, r, id)
									gp, gm := subjectAnswer(got, sid)
									if gp != exp.perm || !sameMissing(gm, exp.missing, loose) {
										fail("%s limit %d: LookupSubjects(%s#%s, %s#%s): %s is %v %v, reference %v %v", ev.name, limit, res, r.Name, kind.Type, kind.Relation, sid, gp, gm, exp.perm, exp.missing)
										return
									}
									if gp != NoPermission && checkErr[key(sub, r, id)] {
										fail("%s limit %d: LookupSubjects grants %s, Check fails on its depth", ev.name, limit, key(sub, r, id))
										return
									}
								}
							}
						}
					}
				}
			}
		}
	}
}
