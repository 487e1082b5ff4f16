package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

func TestNestedArrows(t *testing.T) {
	s := mustCompile(t, `
caveat c(on bool) { on }
definition user {}
definition org {
	relation admin: user
	relation folder: folder
	permission manage = admin
	permission administer = admin
	permission back = folder->loop
}
definition folder {
	relation parent: folder | org
	relation org: org
	relation admin: user
	relation banned: user
	permission manage = admin + (parent->manage + org->administer)
	permission view = (admin - banned) + parent->view
	permission all = admin + parent.all(all)
	permission both = admin & parent->both
	permission loop = admin + parent->loop + org->back
}
definition drive {
	relation parent: drive with c
	relation admin: user
	permission manage = admin + parent->manage
}
definition doc {
	relation parent: doc | folder
	relation group: doc#admin
	relation admin: user
	permission view = admin + parent->view
	permission manage = admin + parent->manage
}
definition team {
	relation up: team
	relation down: team
	relation admin: user
	permission manage = admin + up->manage + down->manage
	permission member = admin + up->member
}
`)
	var got []string
	for _, na := range NestedArrows(s) {
		got = append(got, fmt.Sprintf("%s#%s over %s (%d)", na.Permission.Definition.Name, na.Permission.Name, na.Parent.Name, len(na.Base)))
	}
	// folder#manage: org has manage too, so the recursion leaves folder;
	// folder#all: an intersection arrow; folder#both: an intersection;
	// folder#loop: its base reaches it; drive: a caveated tupleset;
	// doc: folder has view and manage; team#manage: two tuplesets.
	want := []string{"folder#view over parent (1)", "team#member over up (1)"}
	if !slices.Equal(got, want) {
		t.Errorf("NestedArrows = %v, want %v", got, want)
	}
	got = nil
	for _, r := range NestedRelations(s) {
		got = append(got, fmt.Sprintf("%s#%s@%q", r.Definition.Name, r.Name, NestedSubjectRelation(r)))
	}
	if want := []string{`folder#parent@""`, `team#up@""`}; !slices.Equal(got, want) {
		t.Errorf("NestedRelations = %v, want %v", got, want)
	}

	src, err := os.ReadFile("../../examples/enterprise/schema.zed")
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, na := range NestedArrows(mustCompile(t, string(src))) {
		got = append(got, na.Permission.Definition.Name+"#"+na.Permission.Name)
	}
	if want := []string{"department#manage", "department#view_records"}; !slices.Equal(got, want) {
		t.Errorf("NestedArrows(enterprise) = %v, want %v", got, want)
	}
}

// nestedArrowSchema has two recursive arrows over folder#parent, with
// caveats and expirations in their bases, an exclusion in one base and an
// arrow to another type in the other.
const nestedArrowSchema = `
use expiration
caveat c(on bool) { on }
definition user {}
definition org {
	relation admin: user
	permission administer = admin
}
definition folder {
	relation parent: folder | org
	relation org: org
	relation admin: user | user with c | user with expiration
	relation banned: user
	permission manage = admin + parent->manage + org->administer
	permission view = (admin - banned) + parent->view
}
`

// nestedArrowData is a chain f45 -> … -> f0, a cycle c1 -> c2 -> c3 ->
// c1, and a diamond whose long side is longer than its short one, with
// grants of every kind along them.
func nestedArrowData(t testing.TB) []tuple.Relationship {
	lines := []string{
		"folder:f0#admin@user:deep",
		"folder:f5#banned@user:deep",
		"folder:f20#admin@user:mid[c]",
		"folder:f25#admin@user:off[c:{\"on\":false}]",
		"folder:f30#admin@user:gone[expiration:2026-06-01T11:00:00Z]",
		"folder:f35#admin@user:soon[expiration:2026-06-01T13:00:00Z]",
		"folder:f10#org@org:o",
		"org:o#admin@user:boss",
		"folder:f0#parent@org:o",
		"folder:c1#parent@folder:c2", "folder:c2#parent@folder:c3", "folder:c3#parent@folder:c1",
		"folder:c3#admin@user:cy",
		"folder:c2#org@org:o",
		"folder:d0#parent@folder:d1", "folder:d0#parent@folder:e1",
		"folder:e1#parent@folder:e2", "folder:e2#parent@folder:e3", "folder:e3#parent@folder:d2",
		"folder:d1#parent@folder:d2",
		"folder:d2#admin@user:dia",
	}
	for i := 1; i <= 45; i++ {
		lines = append(lines, fmt.Sprintf("folder:f%d#parent@folder:f%d", i, i-1))
	}
	return mustParse(t, lines...)
}

// TestNestedArrowCheck checks recursive arrows with the index and
// without it, at depth limits that cut the chain, through a cycle and a
// diamond, with caveats, expirations and an exclusion in the bases: the
// same answers and the same errors, and with the index fewer dispatches.
func TestNestedArrowCheck(t *testing.T) {
	s := mustCompile(t, nestedArrowSchema)
	rels := nestedArrowData(t)
	rd := loadNested(t, s, rels)
	ctx := context.Background()
	resources := []string{"f0", "f5", "f10", "f20", "f30", "f36", "f39", "f45", "c1", "c2", "c3", "d0", "e3", "nowhere"}
	subjects := []string{"user:deep", "user:mid", "user:off", "user:gone", "user:soon", "user:boss", "user:cy", "user:dia", "user:nobody", "user:*"}
	for _, limit := range []int{0, 12, 47} {
		walk := New(s, Options{Concurrency: 1, MaxDepth: limit})
		indexes := map[string]*Evaluator{
			"sequential": New(s, Options{Concurrency: 1, MaxDepth: limit, NestedIndex: true}),
			"cached":     New(s, Options{Concurrency: 4, MaxDepth: limit, NestedIndex: true, Cache: NewCache(1 << 20)}),
		}
		for _, reqCtx := range []map[string]any{nil, {"on": true}} {
			for _, perm := range []string{"manage", "view"} {
				for _, id := range resources {
					for _, subject := range subjects {
						req := CheckRequest{Resource: tuple.ObjectRef{Type: "folder", ID: id}, Permission: perm, Subject: mustSubject(t, subject)}
						p := Params{Reader: rd, Now: testNow, Context: reqCtx}
						a, errA := walk.Check(ctx, p, req)
						for name, index := range indexes {
							for pass := range 2 { // the second from the cache
								b, errB := index.Check(ctx, p, req)
								if fmt.Sprint(errA) != fmt.Sprint(errB) || a.Permissionship != b.Permissionship || !slices.Equal(a.MissingContext, b.MissingContext) {
									t.Errorf("limit %d %s pass %d ctx %v: folder:%s#%s@%s: walk %v %v (%v), index %v %v (%v)",
										limit, name, pass, reqCtx, id, perm, subject, a.Permissionship, a.MissingContext, errA, b.Permissionship, b.MissingContext, errB)
								}
							}
						}
					}
				}
			}
		}
	}
	// At the default limit the index answers the deep checks with a
	// dispatch per base operand and ancestor, not one more per level.
	walk := New(s, Options{Concurrency: 1})
	index := New(s, Options{Concurrency: 1, NestedIndex: true})
	for _, subject := range []string{"user:deep", "user:nobody"} {
		req := CheckRequest{Resource: tuple.ObjectRef{Type: "folder", ID: "f45"}, Permission: "manage", Subject: mustSubject(t, subject)}
		a, errA := walk.Check(ctx, Params{Reader: rd, Now: testNow}, req)
		b, errB := index.Check(ctx, Params{Reader: rd, Now: testNow}, req)
		if errA != nil || errB != nil || a.Permissionship != b.Permissionship || b.Dispatches >= a.Dispatches {
			t.Errorf("folder:f45#manage@%s: walk %v in %d dispatches (%v), index %v in %d (%v)", subject, a.Permissionship, a.Dispatches, errA, b.Permissionship, b.Dispatches, errB)
		}
	}
}

// TestNestedArrowContextual: contextual relationships that add parent
// edges make the check walk (the index knows only stored edges); others
// leave it on the index.
func TestNestedArrowContextual(t *testing.T) {
	s := mustCompile(t, nestedArrowSchema)
	rd := loadNested(t, s, nestedArrowData(t))
	ctx := context.Background()
	walk := New(s, Options{Concurrency: 1})
	index := New(s, Options{Concurrency: 1, NestedIndex: true})
	for _, extra := range [][]string{
		{"folder:x#parent@folder:f45", "folder:x#admin@user:x"},
		{"folder:f0#parent@folder:x", "folder:x#admin@user:x"},
		{"folder:c1#admin@user:x"},
		{"org:o#admin@user:x"},
	} {
		p := Params{Reader: rd, Now: testNow, Contextual: mustParse(t, extra...)}
		for _, id := range []string{"x", "f0", "f45", "c2"} {
			for _, subject := range []string{"user:x", "user:deep", "user:boss"} {
				req := CheckRequest{Resource: tuple.ObjectRef{Type: "folder", ID: id}, Permission: "manage", Subject: mustSubject(t, subject)}
				a, errA := walk.Check(ctx, p, req)
				b, errB := index.Check(ctx, p, req)
				if fmt.Sprint(errA) != fmt.Sprint(errB) || a.Permissionship != b.Permissionship {
					t.Errorf("%v: folder:%s#manage@%s: walk %v (%v), index %v (%v)", extra, id, subject, a.Permissionship, errA, b.Permissionship, errB)
				}
			}
		}
	}
}

// genArrowSchema is genSchema with a recursive arrow added: definition
// t0 gets a tupleset "up" (t0, sometimes other plain types too) and a
// permission "rec" = a random base + up->rec, so that the differential
// test exercises nestedArrowCheck (the base may still reach rec, which
// leaves it to the walk).
func genArrowSchema(rng *rand.Rand, caveats map[string]*schema.Caveat, name string) *schema.Schema {
	for {
		s := tryGenSchema(rng, caveats, name)
		if s == nil {
			continue
		}
		d := s.Definitions["t0"]
		n := s.NumRelations
		up := &schema.Relation{Name: "up", Definition: d, Index: n, Allowed: []*schema.AllowedSubject{{Type: "t0"}}}
		if rng.IntN(3) == 0 {
			up.Allowed = append(up.Allowed, &schema.AllowedSubject{Type: "user"})
		}
		rec := &schema.Relation{Name: "rec", Definition: d, Index: n + 1, IsPermission: true}
		for _, r := range []*schema.Relation{up, rec} {
			d.Relations[r.Name] = r
			d.Ordered = append(d.Ordered, r)
		}
		s.NumRelations = n + 2
		arrow := &schema.Rewrite{Kind: schema.RewriteArrow, Relation: up, TargetName: "rec", Targets: map[string]*schema.Relation{"t0": rec}}
		base := genRewrite(rng, s.Definitions, rec, 2)
		rec.Rewrite = &schema.Rewrite{Kind: schema.RewriteUnion, Children: []*schema.Rewrite{base, arrow}}
		if rng.IntN(2) == 0 {
			rec.Rewrite.Children = []*schema.Rewrite{arrow, base}
		}
		var all []*schema.Relation
		for _, def := range s.Definitions {
			all = append(all, def.Ordered...)
		}
		if !stratified(all) || len(NestedArrows(s)) == 0 {
			continue
		}
		return s
	}
}

// genArrowTuples is genTuples for a schema of genArrowSchema, with
// chains and cycles of its tupleset t0#up added.
func genArrowTuples(rng *rand.Rand, s *schema.Schema) []tuple.Relationship {
	rels := genTuples(rng, s, testNow)
	seen := map[tuple.Key]bool{}
	for _, r := range rels {
		seen[r.Key()] = true
	}
	for range 2 + rng.IntN(4) {
		r := tuple.Relationship{Resource: tuple.ObjectRef{Type: "t0", ID: diffIDs[rng.IntN(len(diffIDs))]}, Relation: "up",
			Subject: tuple.SubjectRef{Type: "t0", ID: diffIDs[rng.IntN(len(diffIDs))]}}
		if !seen[r.Key()] {
			seen[r.Key()] = true
			rels = append(rels, r)
		}
	}
	return rels
}

// TestDifferentialNestedArrows is TestDifferential over schemas with a
// recursive arrow and data with chains and cycles of its tupleset: every
// configuration, the nested-index one included, agrees with the
// reference.
func TestDifferentialNestedArrows(t *testing.T) {
	cs, err := schema.Compile("caveats.zed", diffCaveats)
	if err != nil {
		t.Fatal(err)
	}
	first, cases := 0, max(1, diffCases()/12)
	if v, err := strconv.Atoi(os.Getenv("PEMBA_DIFF_SEED")); err == nil {
		first, cases = v, 1 // reproduce one case
	}
	var counts diffCounts
	for i := first; i < first+cases; i++ {
		seed := uint64(i)
		rng := rand.New(rand.NewPCG(seed, 0x1d0c))
		s := genArrowSchema(rng, cs.Caveats, "arrows-"+strconv.Itoa(int(seed)))
		rels := genArrowTuples(rng, s)
		reqCtx := diffContexts[rng.IntN(len(diffContexts))]
		if !runDiffCase(t, seed, s, rels, reqCtx, &counts) {
			t.Logf("schema of seed %d:\n%s", seed, describeSchema(s))
			t.Logf("relationships:\n%s", describeTuples(rels))
			return
		}
	}
	t.Logf("%d checks answered from the index in %d cases", nestedArrowAnswers.Load(), cases)
	// The index answers often enough to be compared.
	if n := nestedArrowAnswers.Load(); cases >= 40 && n < uint64(cases) {
		t.Errorf("%d checks answered from the index in %d cases: the schemas no longer exercise nestedarrow.go", n, cases)
	}
	// So are the streamed lookups of the recursive arrow (streamarrow.go).
	t.Logf("%d lookups streamed from the closure in %d cases", counts.arrows, cases)
	if cases >= 40 && counts.arrows < uint64(cases) {
		t.Errorf("%d lookups streamed from the closure in %d cases: the schemas no longer exercise streamarrow.go", counts.arrows, cases)
	}
	// And the forward walks' reads of the closure (nestedlookup.go).
	t.Logf("%d closure reads of the arrow by forward walks in %d cases", counts.arrowWalks, cases)
	if cases >= 40 && counts.arrowWalks < uint64(cases) {
		t.Errorf("%d closure reads of the arrow by forward walks in %d cases: the schemas no longer exercise them", counts.arrowWalks, cases)
	}
}

// nestedArrowAnswers sums the evaluators' nestedArrowAnswers over the
// differential cases run.
var nestedArrowAnswers atomic.Uint64
