package eval

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// exclusionSchema has exclusions whose base cannot fail (doc#view: a
// team, one level of subject sets, and an arrow to a folder's viewers),
// one whose base is recursive (doc#nested), and one whose base a caveat
// reaches (doc#flagged).
const exclusionSchema = `
caveat flag(on bool) { on }
definition user {}
definition group {
	relation member: user | group#member
}
definition team {
	relation member: user
}
definition folder {
	relation viewer: user | team#member
}
definition doc {
	relation parent: folder
	relation reader: user | team#member
	relation banned: user
	relation guest: user | user with flag
	relation grouped: group#member
	relation blocked: team#member
	permission view = reader + parent->viewer - banned
	permission nested = grouped - banned
	permission flagged = guest + reader - banned
	permission both = reader & parent->viewer
	permission open = reader - blocked
}
`

func TestExclusionPlans(t *testing.T) {
	s := mustCompile(t, exclusionSchema)
	e := New(s, Options{Concurrency: 1})
	doc := s.Definitions["doc"]
	for _, tt := range []struct {
		perm   string
		height int32
		light  bool
	}{
		// reader (team#member below it: 2), parent->viewer (viewer,
		// team#member: 2; the tupleset counts 1).
		{"view", 2, true},
		{"nested", -1, false},  // group#member is recursive
		{"flagged", -1, false}, // guest's caveat
	} {
		p, ok := e.an.exclusions[doc.Relations[tt.perm].Rewrite]
		if !ok || p.height != tt.height || p.light != tt.light {
			t.Errorf("doc#%s: plan %+v (found %v), want height %d light %v", tt.perm, p, ok, tt.height, tt.light)
		}
	}

	rels := mustParse(t,
		"doc:1#reader@team:t#member", "team:t#member@user:ann", "team:t#member@user:bob",
		"doc:1#parent@folder:f", "folder:f#viewer@user:cat",
		"doc:1#banned@user:bob", "doc:1#banned@user:cat",
		"doc:1#guest@user:bob[flag]", "doc:1#grouped@group:g#member", "group:g#member@user:bob")
	rd := load(t, rels)
	ctx := context.Background()
	for _, tt := range []struct {
		check    string
		maxDepth int
		want     Permissionship
		depthErr bool
		skipped  uint64 // exclusions decided by the subtraction alone
		first    uint64 // exclusions evaluated subtraction first
	}{
		{"doc:1#view@user:ann", 0, HasPermission, false, 0, 1},
		{"doc:1#view@user:bob", 0, NoPermission, false, 1, 1},
		{"doc:1#view@user:cat", 0, NoPermission, false, 1, 1},
		{"doc:1#view@user:dan", 0, NoPermission, false, 0, 1},
		// With room for one relation below view, team#member does not
		// fit: the walk order, failing as the walk does.
		{"doc:1#view@user:bob", 2, 0, true, 0, 0},
		// Depth 3 holds view and the two below it.
		{"doc:1#view@user:bob", 3, NoPermission, false, 1, 1},
		{"doc:1#nested@user:bob", 0, NoPermission, false, 0, 0},
		{"doc:1#flagged@user:bob", 0, NoPermission, false, 0, 0},
	} {
		t.Run(fmt.Sprintf("%s depth %d", tt.check, tt.maxDepth), func(t *testing.T) {
			plans := new(PlanCounters)
			planned := New(s, Options{Concurrency: 1, MaxDepth: tt.maxDepth, Plans: plans})
			planned.subtractMode = subtractAlways
			walk := New(s, Options{Concurrency: 1, MaxDepth: tt.maxDepth})
			walk.subtractMode = subtractNever
			p := Params{Reader: rd, Now: testNow, Context: map[string]any{"on": true}}
			req := parseCheck(t, tt.check)
			got, err := planned.Check(ctx, p, req)
			ref, rerr := walk.Check(ctx, p, req)
			if fmt.Sprint(err) != fmt.Sprint(rerr) || got.Permissionship != ref.Permissionship {
				t.Fatalf("subtraction first: %v (err %v); walk: %v (err %v)", got.Permissionship, err, ref.Permissionship, rerr)
			}
			if tt.depthErr != errors.Is(err, ErrMaxDepth) || (err == nil && got.Permissionship != tt.want) {
				t.Errorf("got %v (err %v), want %v (depth error %v)", got.Permissionship, err, tt.want, tt.depthErr)
			}
			c := plans.Counts()
			if c["exclusion_base_skipped"] != tt.skipped || c["exclusion_subtraction_first"] != tt.first {
				t.Errorf("plans %v, want %d skipped of %d subtraction first", c, tt.skipped, tt.first)
			}
			x, xerr := planned.Explain(ctx, p, req)
			if fmt.Sprint(xerr) != fmt.Sprint(err) {
				t.Fatalf("Explain: %v, Check: %v", xerr, err)
			}
			if err != nil {
				return
			}
			root := x.Root.Children[0] // the permission's rewrite
			wantPlan := ""
			switch {
			case tt.skipped > 0:
				wantPlan = "exclusion_base_skipped"
			case tt.first > 0:
				wantPlan = "exclusion_subtraction_first"
			}
			if root.Kind != ExplainExclusion || root.Plan != wantPlan {
				t.Errorf("explanation's exclusion: %v plan %q, want plan %q", root.Kind, root.Plan, wantPlan)
			}
		})
	}
}

// TestSubtractionByStatistics: with statistics, the subtraction goes
// first when it is estimated to read at most half what the base reads.
func TestSubtractionByStatistics(t *testing.T) {
	s := mustCompile(t, exclusionSchema)
	e := New(s, Options{Concurrency: 1})
	doc := s.Definitions["doc"]
	stats := func(reader, blocked int) *store.Statistics {
		var lines []string
		for i := range reader {
			lines = append(lines, fmt.Sprintf("doc:1#reader@team:r%d#member", i))
		}
		for i := range blocked {
			lines = append(lines, fmt.Sprintf("doc:1#blocked@team:b%d#member", i))
		}
		return load(t, mustParse(t, lines...)).(store.StatsReader).Statistics()
	}
	for _, tt := range []struct {
		reader, blocked int
		perm            string
		want            bool
	}{
		{20, 1, "open", true},
		{1, 20, "open", false},
		{2, 2, "open", false},
		// A subtraction of point reads is cheap however many it holds.
		{1, 20, "view", true},
	} {
		if got := e.an.subtractByStats(stats(tt.reader, tt.blocked))[doc.Relations[tt.perm].Rewrite]; got != tt.want {
			t.Errorf("doc#%s, %d readers and %d blocked per doc: subtraction first %v, want %v", tt.perm, tt.reader, tt.blocked, got, tt.want)
		}
	}
}

// exclusionCases is the number of random cases of
// TestDifferentialExclusions; PEMBA_EXCL_CASES overrides it, -long
// multiplies it by 20, PEMBA_EXCL_SEED runs one.
func exclusionCases() int {
	n := 150
	if raceEnabled {
		n = 20
	}
	if v, err := strconv.Atoi(os.Getenv("PEMBA_EXCL_CASES")); err == nil && v > 0 {
		n = v
	}
	if *diffLong {
		n *= 20
	}
	return n
}

// genExclusionSchema builds a random schema heavy in exclusions and
// intersections whose relations mostly nest without recursion (subject
// sets and arrows point to definitions of lower number, now and then
// anywhere), with few caveats: bases that cannot fail are common, so
// that the subtraction-first plan runs often, beside recursive and
// caveated ones.
func genExclusionSchema(rng *rand.Rand, caveats map[string]*schema.Caveat, name string) *schema.Schema {
	for {
		s := &schema.Schema{Definitions: map[string]*schema.Definition{}, Caveats: caveats, Source: name}
		s.Definitions["user"] = &schema.Definition{Name: "user", Relations: map[string]*schema.Relation{}}
		var defs []*schema.Definition
		var all []*schema.Relation
		add := func(d *schema.Definition, name string, perm bool) *schema.Relation {
			r := &schema.Relation{Name: name, Definition: d, Index: len(all), IsPermission: perm}
			d.Relations[name] = r
			d.Ordered = append(d.Ordered, r)
			all = append(all, r)
			return r
		}
		nd := 2 + rng.IntN(3)
		for i := range nd {
			d := &schema.Definition{Name: "t" + strconv.Itoa(i), Relations: map[string]*schema.Relation{}}
			s.Definitions[d.Name] = d
			defs = append(defs, d)
			for j := range 2 + rng.IntN(2) {
				add(d, "r"+strconv.Itoa(j), false)
			}
		}
		var perms []*schema.Relation
		for _, d := range defs {
			for j := range 1 + rng.IntN(3) {
				perms = append(perms, add(d, "p"+strconv.Itoa(j), true))
			}
		}
		// lower returns a definition below d (or any, now and then).
		lower := func(di int) int {
			if di == 0 || rng.IntN(6) == 0 {
				return rng.IntN(nd)
			}
			return rng.IntN(di)
		}
		for di, d := range defs {
			for _, r := range d.Ordered {
				if r.IsPermission {
					continue
				}
				seen := map[string]bool{}
				for range 1 + rng.IntN(2) {
					var a schema.AllowedSubject
					switch rng.IntN(10) {
					case 0, 1, 2:
						a = schema.AllowedSubject{Type: "user"}
					case 3:
						a = schema.AllowedSubject{Type: "user", Wildcard: true}
					case 4:
						a = schema.AllowedSubject{Type: "user", Expiration: true}
					case 5:
						if rng.IntN(3) == 0 {
							a = schema.AllowedSubject{Type: "user", Caveat: caveats["flag"]}
						} else {
							a = schema.AllowedSubject{Type: "user"}
						}
					case 6, 7:
						a = schema.AllowedSubject{Type: defs[lower(di)].Name}
					default:
						t := defs[lower(di)]
						target := t.Ordered[rng.IntN(len(t.Ordered))]
						a = schema.AllowedSubject{Type: t.Name, Relation: target.Name, Target: target}
					}
					k := fmt.Sprintf("%s#%s %v %v %v", a.Type, a.Relation, a.Wildcard, a.Caveat != nil, a.Expiration)
					if !seen[k] {
						seen[k] = true
						r.Allowed = append(r.Allowed, &a)
					}
				}
			}
		}
		for _, p := range perms {
			p.Rewrite = genExclusionRewrite(rng, s.Definitions, p, 2)
		}
		s.NumRelations = len(all)
		if stratified(all) {
			return s
		}
	}
}

// genExclusionRewrite is genRewrite with exclusions and intersections
// twice as likely as unions, and a direct relation of the definition as
// the subtraction half the time (a cheap one: a ban list).
func genExclusionRewrite(rng *rand.Rand, defs map[string]*schema.Definition, p *schema.Relation, depth int) *schema.Rewrite {
	if depth == 0 || rng.IntN(4) == 0 {
		return genRewrite(rng, defs, p, 0)
	}
	switch rng.IntN(5) {
	case 0:
		return &schema.Rewrite{Kind: schema.RewriteUnion, Children: []*schema.Rewrite{
			genExclusionRewrite(rng, defs, p, depth-1), genExclusionRewrite(rng, defs, p, depth-1)}}
	case 1, 2:
		w := &schema.Rewrite{Kind: schema.RewriteIntersection}
		for range 2 + rng.IntN(2) {
			w.Children = append(w.Children, genExclusionRewrite(rng, defs, p, depth-1))
		}
		return w
	}
	minus := genExclusionRewrite(rng, defs, p, depth-1)
	if rng.IntN(2) == 0 {
		var direct []*schema.Relation
		for _, r := range p.Definition.Ordered {
			if !r.IsPermission {
				direct = append(direct, r)
			}
		}
		minus = &schema.Rewrite{Kind: schema.RewriteComputed, Relation: direct[rng.IntN(len(direct))]}
	}
	return &schema.Rewrite{Kind: schema.RewriteExclusion, Children: []*schema.Rewrite{genExclusionRewrite(rng, defs, p, depth-1), minus}}
}

// genSkewedTuples writes relationships the schema allows, skewed: a few
// relations get most of them (wide bases, wide tuplesets), others few
// (narrow subtractions), so that the statistics order both ways.
func genSkewedTuples(rng *rand.Rand, s *schema.Schema, now time.Time) []tuple.Relationship {
	var rels []*schema.Relation
	var weights []int
	total := 0
	for _, name := range slices.Sorted(maps.Keys(s.Definitions)) {
		for _, r := range s.Definitions[name].Ordered {
			if !r.IsPermission && len(r.Allowed) > 0 {
				w := 1
				if rng.IntN(3) == 0 {
					w = 12
				}
				rels = append(rels, r)
				weights = append(weights, w)
				total += w
			}
		}
	}
	seen := map[tuple.Key]bool{}
	var out []tuple.Relationship
	for range 20 + rng.IntN(60) {
		x := rng.IntN(total)
		i := 0
		for ; x >= weights[i]; i++ {
			x -= weights[i]
		}
		r := rels[i]
		a := r.Allowed[rng.IntN(len(r.Allowed))]
		t := tuple.Relationship{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: diffIDs[rng.IntN(len(diffIDs))]}, Relation: r.Name}
		switch {
		case a.Wildcard:
			t.Subject = tuple.SubjectRef{Type: a.Type, ID: tuple.Wildcard}
		case a.Type == "user":
			t.Subject = tuple.SubjectRef{Type: "user", ID: diffUsers[rng.IntN(len(diffUsers))]}
		default:
			t.Subject = tuple.SubjectRef{Type: a.Type, ID: diffIDs[rng.IntN(len(diffIDs))], Relation: a.Relation}
		}
		if a.Caveat != nil {
			t.Caveat = &tuple.Caveat{Name: a.Caveat.Name}
			if rng.IntN(3) == 0 {
				t.Caveat.Context = map[string]any{"on": rng.IntN(2) == 0}
			}
		}
		if a.Expiration {
			t.Expiration = now.Add(time.Duration(rng.IntN(2)*2-1) * time.Hour)
		}
		if !seen[t.Key()] {
			seen[t.Key()] = true
			out = append(out, t)
		}
	}
	return out
}

// TestDifferentialExclusions compares, on random exclusion- and
// intersection-heavy schemas over skewed data, the planner's orders with
// the walk's (every base first, children in the schema's plan): every
// check's answer, missing parameters and error (the depth limit is
// small, so that paths fail on it) must be the same, with and without a
// cache, and the answers the reference's. Which path a depth error names
// may differ (the first one found, as with any order of a fold's
// children), not whether the check fails. Explain must agree with Check
// on the planned evaluator. Both orders must run.
func TestDifferentialExclusions(t *testing.T) {
	cs, err := schema.Compile("caveats.zed", diffCaveats)
	if err != nil {
		t.Fatal(err)
	}
	first, cases := 0, exclusionCases()
	if v, err := strconv.Atoi(os.Getenv("PEMBA_EXCL_SEED")); err == nil {
		first, cases = v, 1
	}
	plans := new(PlanCounters)
	var depthErrs, checks int
	ctx := context.Background()
	for i := first; i < first+cases; i++ {
		seed := uint64(i)
		rng := rand.New(rand.NewPCG(seed, 0x243f6a8885a308d3))
		s := genExclusionSchema(rng, cs.Caveats, "excl-"+strconv.Itoa(i))
		rels := genSkewedTuples(rng, s, testNow)
		reqCtx := diffContexts[rng.IntN(len(diffContexts))]
		maxDepth := 3 + rng.IntN(4)
		rd := load(t, rels)
		universe, allRels := diffWorld(s)
		subjects := []tuple.SubjectRef{{Type: "user", ID: tuple.Wildcard}, {Type: "user", ID: "nobody"}}
		for _, u := range diffUsers {
			subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: u})
		}
		for j, r := range allRels {
			if j%3 == 0 {
				subjects = append(subjects, tuple.SubjectRef{Type: r.Definition.Name, ID: diffIDs[j%2], Relation: r.Name})
			}
		}
		walk := New(s, Options{Concurrency: 1, MaxDepth: maxDepth})
		walk.subtractMode = subtractNever
		walk.arrowProbe = 0 // no statistics: children in the schema's plan
		always := New(s, Options{Concurrency: 1, MaxDepth: maxDepth, Plans: plans})
		always.subtractMode = subtractAlways
		planned := New(s, Options{Concurrency: 1, MaxDepth: maxDepth, Plans: plans})
		cached := New(s, Options{Concurrency: 4, MaxDepth: maxDepth, Plans: plans, Cache: NewCache(1 << 20)})
		cached.subtractMode = subtractAlways
		evals := []struct {
			name string
			e    *Evaluator
		}{{"subtraction first", always}, {"planned", planned}, {"subtraction first+cache", cached}}
		loose := looseMissing(allRels)
		for _, now := range []time.Time{testNow, testNow.Add(2 * time.Hour)} {
			ref := newRefEval(s, rels, now, reqCtx, universe)
			p := Params{Reader: rd, Now: now, Context: reqCtx}
			for _, sub := range subjects {
				want, err := ref.solve(sub)
				if err != nil {
					t.Fatalf("seed %d: reference: %v", seed, err)
				}
				for _, r := range allRels {
					for _, id := range universe[r.Definition.Name] {
						req := CheckRequest{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Permission: r.Name, Subject: sub}
						wr, werr := walk.Check(ctx, p, req)
						checks++
						if werr != nil && !errors.Is(werr, ErrMaxDepth) {
							t.Fatalf("seed %d: walk: Check(%s#%s@%s): %v", seed, req.Resource, r.Name, sub, werr)
						}
						if werr != nil {
							depthErrs++
						} else if exp := want[refNode{r.Index, id}]; wr.Permissionship != exp.perm || !sameMissing(wr.MissingContext, exp.missing, loose) {
							t.Fatalf("seed %d: walk: Check(%s#%s@%s) = %v %v, reference %v %v\nschema:\n%s\nrelationships:\n%s",
								seed, req.Resource, r.Name, sub, wr.Permissionship, wr.MissingContext, exp.perm, exp.missing, describeSchema(s), describeTuples(rels))
						}
						for _, ev := range evals {
							for pass := range 2 {
								got, err := ev.e.Check(ctx, p, req)
								if errors.Is(err, ErrMaxDepth) != errors.Is(werr, ErrMaxDepth) || (err == nil) != (werr == nil) || got.Permissionship != wr.Permissionship || !slices.Equal(got.MissingContext, wr.MissingContext) {
									t.Fatalf("seed %d %s pass %d now %s ctx %v depth %d: Check(%s#%s@%s) = %v %v (err %v), walk %v %v (err %v)\nschema:\n%s\nrelationships:\n%s",
										seed, ev.name, pass, now.Format(time.Kitchen), reqCtx, maxDepth, req.Resource, r.Name, sub,
										got.Permissionship, got.MissingContext, err, wr.Permissionship, wr.MissingContext, werr, describeSchema(s), describeTuples(rels))
								}
							}
						}
						if (checks % 7) == 0 {
							x, xerr := always.Explain(ctx, p, req)
							if errors.Is(xerr, ErrMaxDepth) != errors.Is(werr, ErrMaxDepth) || (xerr == nil) != (werr == nil) || (xerr == nil && x.Permissionship != wr.Permissionship) {
								t.Fatalf("seed %d: Explain(%s#%s@%s): %v, walk's Check %v (err %v)", seed, req.Resource, r.Name, sub, xerr, wr.Permissionship, werr)
							}
						}
					}
				}
			}
		}
	}
	c := plans.Counts()
	t.Logf("%d checks, %d failed on the depth limit; plans %v", checks, depthErrs, c)
	if cases >= 50 && (c["exclusion_base_skipped"] == 0 || c["exclusion_subtraction_first"] <= c["exclusion_base_skipped"] || depthErrs == 0 || c["children_statistics"] == 0) {
		t.Errorf("the random cases no longer run both orders (plans %v, %d depth errors)", c, depthErrs)
	}
}

// BenchmarkExclusion checks doc#view = reader + parent->viewer - banned
// on skewed data: each document has 200 teams of readers (the base fans
// out) and a short ban list (a point read). Half the checks ask about a
// banned user who is in no team (the walk reads all 200 teams to say no;
// the subtraction first reads one relationship), half about a reader in
// the last team who is not banned (both plans read the teams; the
// subtraction first one relationship more). Sub-benchmarks: the walk
// (base first) and the planner (statistics), cache off, one goroutine.
func BenchmarkExclusion(b *testing.B) {
	s := mustCompile(b, exclusionSchema)
	const docs, teams = 50, 200
	var rels []tuple.Relationship
	for d := range docs {
		doc := tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%d", d)}
		for i := range teams {
			team := fmt.Sprintf("t%d-%d", d, i)
			rels = append(rels,
				tuple.Relationship{Resource: doc, Relation: "reader", Subject: tuple.SubjectRef{Type: "team", ID: team, Relation: "member"}},
				tuple.Relationship{Resource: tuple.ObjectRef{Type: "team", ID: team}, Relation: "member", Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d-%d", d, i)}})
		}
		for i := range 3 {
			rels = append(rels, tuple.Relationship{Resource: doc, Relation: "banned", Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("banned%d", i)}})
		}
	}
	rd := load(b, rels)
	for _, bc := range []struct {
		name string
		mode subtractMode
	}{{"walk", subtractNever}, {"planner", subtractPlanned}} {
		for _, who := range []string{"banned", "reader"} {
			b.Run(bc.name+"/"+who, func(b *testing.B) {
				plans := new(PlanCounters)
				e := New(s, Options{Concurrency: 1, Plans: plans})
				e.subtractMode = bc.mode
				p := Params{Reader: rd, Now: testNow}
				i := 0
				var cpu time.Duration
				for b.Loop() {
					if i == 0 {
						cpu = cpuStart()
					}
					d := i % docs
					sub := tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("banned%d", i%3)}
					want := NoPermission
					if who == "reader" {
						sub.ID, want = fmt.Sprintf("u%d-%d", d, teams-1), HasPermission
					}
					got, err := e.Check(context.Background(), p, CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%d", d)}, Permission: "view", Subject: sub})
					if err != nil || got.Permissionship != want {
						b.Fatalf("%v %v, want %v", got.Permissionship, err, want)
					}
					i++
				}
				reportCPU(b, cpu, i)
				b.ReportMetric(float64(plans.Counts()["exclusion_base_skipped"])/float64(i), "skipped/op")
			})
		}
	}
}
