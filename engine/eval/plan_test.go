package eval

import (
	"context"
	"fmt"
	"iter"
	"math"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// planSchema is the wide-arrow shape: a document in many folders, each
// folder's view reached through a nested group.
const planSchema = `
caveat small(n int) { n < 10 }

definition user {}

definition group {
	relation member: user | group#member
}

definition folder {
	relation viewer: user | group#member
	permission view = viewer
}

definition doc {
	relation parent: folder | folder with small
	relation viewer: user
	relation reader: user | group#member | group#member with small
	permission view = viewer + parent->view
}
`

// TestArrowPlanner checks that an arrow over a wide tupleset is decided
// from the subject's side (CheckResult.SubjectSidePlans) and answers as
// the top-down walk does: grants through a folder, through a nested
// group, through a caveated or expiring parent, and denials.
func TestArrowPlanner(t *testing.T) {
	s := mustCompile(t, planSchema)
	var lines []string
	for i := range 40 { // doc:wide is in 40 folders
		lines = append(lines, fmt.Sprintf("doc:wide#parent@folder:f%d", i))
	}
	lines = append(lines,
		"doc:wide#parent@folder:fc[small]",
		"doc:wide#parent@folder:fx[expiration:2020-01-01T00:00:00Z]",
		"doc:narrow#parent@folder:f7",
		"folder:f7#viewer@user:ann",
		"folder:f9#viewer@group:g#member",
		"group:g#member@group:h#member",
		"group:h#member@user:bob",
		"folder:fc#viewer@user:cat",
		"folder:fx#viewer@user:dan",
		"folder:elsewhere#viewer@user:eve",
	)
	rd := load(t, mustParse(t, lines...))
	planned := New(s, Options{Concurrency: 1})
	planned.arrowProbe = 8
	topDown := New(s, Options{Concurrency: 1})
	topDown.arrowProbe = 0
	tests := []struct {
		check   string
		ctx     map[string]any
		want    Permissionship
		subject bool // decided from the subject's side
	}{
		{"doc:wide#view@user:ann", nil, HasPermission, true},
		{"doc:wide#view@user:bob", nil, HasPermission, true}, // folder f9 through nested groups
		{"doc:wide#view@user:cat", nil, ConditionalPermission, true},
		{"doc:wide#view@user:cat", map[string]any{"n": 3}, HasPermission, true},
		{"doc:wide#view@user:cat", map[string]any{"n": 30}, NoPermission, true},
		{"doc:wide#view@user:dan", nil, NoPermission, true}, // the parent expired
		{"doc:wide#view@user:eve", nil, NoPermission, true}, // a folder the doc is not in
		{"doc:wide#view@user:nobody", nil, NoPermission, true},
		{"doc:narrow#view@user:ann", nil, HasPermission, false}, // one parent: from the resource
		{"doc:narrow#view@user:bob", nil, NoPermission, false},
	}
	for _, tt := range tests {
		t.Run(tt.check, func(t *testing.T) {
			p := Params{Reader: rd, Now: testNow, Context: tt.ctx}
			got, err := planned.Check(context.Background(), p, parseCheck(t, tt.check))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := topDown.Check(context.Background(), p, parseCheck(t, tt.check))
			if err != nil {
				t.Fatal(err)
			}
			if got.Permissionship != tt.want || ref.Permissionship != tt.want {
				t.Errorf("planned %v, top-down %v, want %v", got.Permissionship, ref.Permissionship, tt.want)
			}
			if (got.SubjectSidePlans > 0) != tt.subject {
				t.Errorf("%d arrows from the subject's side, want subject side %v", got.SubjectSidePlans, tt.subject)
			}
			if ref.SubjectSidePlans != 0 {
				t.Errorf("planner off: %d arrows from the subject's side", ref.SubjectSidePlans)
			}
			// The plan reads the probe, a few reverse rows and point
			// reads; the top-down walk every parent.
			pr, tr := &countingReader{Reader: rd}, &countingReader{Reader: rd}
			if _, err := planned.Check(context.Background(), Params{Reader: pr, Now: testNow, Context: tt.ctx}, parseCheck(t, tt.check)); err != nil {
				t.Fatal(err)
			}
			if _, err := topDown.Check(context.Background(), Params{Reader: tr, Now: testNow, Context: tt.ctx}, parseCheck(t, tt.check)); err != nil {
				t.Fatal(err)
			}
			if tt.subject && (pr.n.Load() > 20 || tr.n.Load() < 40) {
				t.Errorf("planned read %d relationships, top-down %d", pr.n.Load(), tr.n.Load())
			}
		})
	}
}

// TestArrowPlannerFallsBack checks the subject-side plan gives way to the
// top-down walk when the walk up from the subject is over budget, with the
// same answer.
func TestArrowPlannerFallsBack(t *testing.T) {
	s := mustCompile(t, planSchema)
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("doc:wide#parent@folder:f%d", i),
			fmt.Sprintf("folder:f%d#viewer@group:g%d#member", i+10, i), fmt.Sprintf("group:g%d#member@user:ann", i))
	}
	rd := load(t, mustParse(t, lines...))
	e := New(s, Options{Concurrency: 1})
	e.arrowProbe = 4
	e.reverseBudget = 3 // ann is in 20 groups: over budget
	got, err := e.Check(context.Background(), Params{Reader: rd, Now: testNow}, CheckRequest{
		Resource: tuple.ObjectRef{Type: "doc", ID: "wide"}, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "ann"}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Permissionship != HasPermission || got.SubjectSidePlans != 0 {
		t.Errorf("got %v with %d subject-side arrows, want a grant from the top-down walk", got.Permissionship, got.SubjectSidePlans)
	}
}

// countingReader counts the relationships a reader yields to forward
// queries.
type countingReader struct {
	store.Reader
	n atomic.Int64
}

func (c *countingReader) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for r, err := range c.Reader.QueryRelationships(ctx, f, opts) {
			c.n.Add(1)
			if !yield(r, err) {
				return
			}
		}
	}
}

// TestSubjectSetPlanner is TestArrowPlanner for a relation holding many
// subject sets: doc:wide#reader names 40 groups' members.
func TestSubjectSetPlanner(t *testing.T) {
	s := mustCompile(t, planSchema)
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf("doc:wide#reader@group:g%d#member", i))
	}
	lines = append(lines,
		"doc:wide#reader@group:gc#member[small]",
		"doc:wide#reader@group:gx#member[expiration:2020-01-01T00:00:00Z]",
		"doc:wide#reader@user:zed",
		"doc:narrow#reader@group:g7#member",
		"group:g7#member@user:ann",
		"group:g9#member@group:h#member",
		"group:h#member@user:bob",
		"group:gc#member@user:cat",
		"group:gx#member@user:dan",
		"group:elsewhere#member@user:eve",
	)
	rd := load(t, mustParse(t, lines...))
	planned := New(s, Options{Concurrency: 1})
	planned.arrowProbe = 8
	topDown := New(s, Options{Concurrency: 1})
	topDown.arrowProbe = 0
	topDown.wideFanout = math.MaxInt
	tests := []struct {
		check   string
		ctx     map[string]any
		want    Permissionship
		subject bool
	}{
		{"doc:wide#reader@user:ann", nil, HasPermission, true},
		{"doc:wide#reader@user:bob", nil, HasPermission, true}, // g9 through h
		{"doc:wide#reader@user:cat", nil, ConditionalPermission, true},
		{"doc:wide#reader@user:cat", map[string]any{"n": 3}, HasPermission, true},
		{"doc:wide#reader@user:cat", map[string]any{"n": 30}, NoPermission, true},
		{"doc:wide#reader@user:dan", nil, NoPermission, true},
		{"doc:wide#reader@user:eve", nil, NoPermission, true},
		{"doc:wide#reader@user:zed", nil, HasPermission, false},        // a point read decides
		{"doc:wide#reader@group:g7#member", nil, HasPermission, false}, // the subject set itself
		{"doc:wide#reader@group:h#member", nil, HasPermission, true},   // inside g9
		{"doc:narrow#reader@user:ann", nil, HasPermission, false},
	}
	for _, tt := range tests {
		t.Run(tt.check, func(t *testing.T) {
			p := Params{Reader: rd, Now: testNow, Context: tt.ctx}
			got, err := planned.Check(context.Background(), p, parseCheck(t, tt.check))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := topDown.Check(context.Background(), p, parseCheck(t, tt.check))
			if err != nil {
				t.Fatal(err)
			}
			if got.Permissionship != tt.want || ref.Permissionship != tt.want {
				t.Errorf("planned %v, top-down %v, want %v", got.Permissionship, ref.Permissionship, tt.want)
			}
			if (got.SubjectSidePlans > 0) != tt.subject || ref.SubjectSidePlans != 0 {
				t.Errorf("subject-side plans: planned %d, top-down %d; want planned > 0: %v", got.SubjectSidePlans, ref.SubjectSidePlans, tt.subject)
			}
		})
	}
}

// TestStatsPlanner checks the planner's use of the store's statistics
// (memstore keeps them exactly): documents whose mean fan-out of parents
// reaches statsFanout are decided from the subject's side without a probe
// (PlanArrowSubjectStats), and subjects named by more relationships on
// average than the reverse walk's budget are walked top-down without one
// (PlanResourceStats); either way the answer is the top-down walk's.
func TestStatsPlanner(t *testing.T) {
	s := mustCompile(t, planSchema)
	var wide []string
	for i := range 40 { // two documents in 40 folders each
		wide = append(wide, fmt.Sprintf("doc:wide#parent@folder:f%d", i), fmt.Sprintf("doc:other#parent@folder:f%d", i+20))
	}
	wide = append(wide, "folder:f7#viewer@user:ann", "folder:f9#viewer@group:g#member", "group:g#member@user:bob",
		"folder:elsewhere#viewer@user:eve")
	var busy []string
	for i := range 30 { // busy is in 30 groups, each a folder's viewer
		busy = append(busy, "doc:wide#parent@folder:f1", fmt.Sprintf("folder:f%d#viewer@group:g%d#member", i, i),
			fmt.Sprintf("group:g%d#member@user:busy", i))
	}
	tests := []struct {
		data  []string
		check string
		want  Permissionship
		plan  Plan
	}{
		{wide, "doc:wide#view@user:ann", HasPermission, PlanArrowSubjectStats},
		{wide, "doc:wide#view@user:bob", HasPermission, PlanArrowSubjectStats},
		{wide, "doc:wide#view@user:eve", NoPermission, PlanArrowSubjectStats},
		{wide, "doc:other#view@user:ann", NoPermission, PlanArrowSubjectStats},
		{busy, "doc:wide#view@user:busy", HasPermission, PlanResourceStats},
	}
	for _, tt := range tests {
		t.Run(tt.check, func(t *testing.T) {
			rd := load(t, mustParse(t, tt.data...))
			if _, ok := rd.(store.StatsReader); !ok {
				t.Fatal("memstore's reader keeps no statistics")
			}
			plans := new(PlanCounters)
			planned := New(s, Options{Concurrency: 1, Plans: plans})
			planned.statsFanout = 20
			planned.reverseBudget = 10
			topDown := New(s, Options{Concurrency: 1})
			topDown.arrowProbe = 0
			topDown.wideFanout = math.MaxInt
			p := Params{Reader: rd, Now: testNow}
			got, err := planned.Check(context.Background(), p, parseCheck(t, tt.check))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := topDown.Check(context.Background(), p, parseCheck(t, tt.check))
			if err != nil {
				t.Fatal(err)
			}
			if got.Permissionship != tt.want || ref.Permissionship != tt.want {
				t.Errorf("planned %v, top-down %v, want %v", got.Permissionship, ref.Permissionship, tt.want)
			}
			counts := plans.Counts()
			if counts[tt.plan.String()] == 0 {
				t.Errorf("plan counts %v, want a %s", counts, tt.plan)
			}
			if tt.plan == PlanResourceStats && counts[PlanArrowSubjectProbe.String()]+counts[PlanArrowSubjectStats.String()] != 0 {
				t.Errorf("plan counts %v: a walk from the subject after the statistics vetoed it", counts)
			}
		})
	}
}

// TestStatsChildOrder checks that the statistics put an intersection's
// cheaper fan-out first (doc#narrow names one group, doc#wide thirty) and
// that the answers stay the top-down walk's.
func TestStatsChildOrder(t *testing.T) {
	s := mustCompile(t, `
definition user {}

definition group {
	relation member: user | group#member
}

definition doc {
	relation wide: group#member
	relation narrow: group#member
	permission both = wide & narrow
}
`)
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf("doc:1#wide@group:g%d#member", i), fmt.Sprintf("group:g%d#member@user:u%d", i, i))
	}
	lines = append(lines, "doc:1#narrow@group:n#member", "group:n#member@user:u3", "group:n#member@user:zed")
	rd := load(t, mustParse(t, lines...))
	st := rd.(store.StatsReader).Statistics()
	e := New(s, Options{Concurrency: 1})
	both := s.Definitions["doc"].Relations["both"].Rewrite
	if got := e.an.orderByStats(st)[both]; !slices.Equal(got, []int{1, 0}) {
		t.Errorf("order of doc#both's children = %v, want [1 0] (narrow first)", got)
	}
	topDown := New(s, Options{Concurrency: 1})
	topDown.arrowProbe = 0 // no statistics either
	for _, c := range []string{"doc:1#both@user:u3", "doc:1#both@user:u4", "doc:1#both@user:zed", "doc:1#both@user:nobody"} {
		p := Params{Reader: rd, Now: testNow}
		got, err := e.Check(context.Background(), p, parseCheck(t, c))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := topDown.Check(context.Background(), p, parseCheck(t, c))
		if err != nil {
			t.Fatal(err)
		}
		want := NoPermission
		if c == "doc:1#both@user:u3" {
			want = HasPermission
		}
		if got.Permissionship != want || ref.Permissionship != want {
			t.Errorf("%s: ordered %v, top-down %v, want %v", c, got.Permissionship, ref.Permissionship, want)
		}
	}
}
