package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// groupsSchema has one self-nesting relation, group#member.
const groupsSchema = `
definition user {}
definition group {
	relation member: user | group#member
}`

// TestClosureIndex loads random closures (as loadNested computes them
// from random nested groups) and compares every lookup with the rows
// themselves: each stored pair's distance, pairs not stored, objects
// unknown, the rows of each object in order, and the memory budget.
func TestClosureIndex(t *testing.T) {
	s := mustCompile(t, groupsSchema)
	member := s.Definitions["group"].Relations["member"]
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			n := 1 + rng.IntN(40)
			var edges []tuple.Relationship
			for range rng.IntN(3 * n) {
				// IDs of varying length, so that ID order is not
				// insertion or numeric order.
				x, y := fmt.Sprintf("g%d", rng.IntN(n)*7), fmt.Sprintf("g%d", rng.IntN(n)*7)
				edges = append(edges, rel("group:"+x, "member", "group:"+y+"#member"))
			}
			rels := loadNestedRels(s, edges)
			want := map[[2]string]int{}
			for i := range rels {
				if d, ok := NestedDistance(&rels[i]); ok && rels[i].Relation == NestedClosureRelation("member") {
					want[[2]string{rels[i].Resource.ID, rels[i].Subject.ID}] = d
				}
			}
			r := load(t, rels)
			c, fits, err := LoadClosureIndex(context.Background(), r, member, 42, 0)
			if err != nil || !fits {
				t.Fatal(fits, err)
			}
			if c.Gen() != 42 || c.Rows() != len(want) {
				t.Fatalf("gen %d, %d rows; want 42, %d", c.Gen(), c.Rows(), len(want))
			}
			for x := range n + 1 {
				from := fmt.Sprintf("g%d", x*7)
				prev := ""
				seen := 0
				c.Each(from, func(to string, d int) {
					if to <= prev {
						t.Errorf("Each(%s): %s after %s", from, to, prev)
					}
					prev = to
					seen++
					if w, ok := want[[2]string{from, to}]; !ok || w != d {
						t.Errorf("Each(%s) gave %s at %d; the rows say %d (%v)", from, to, d, w, ok)
					}
				})
				for y := range n + 1 {
					to := fmt.Sprintf("g%d", y*7)
					w, wok := want[[2]string{from, to}]
					if wok {
						seen--
					}
					if d, ok := c.Distance(from, to); ok != wok || d != w {
						t.Errorf("Distance(%s, %s) = %d, %v; want %d, %v", from, to, d, ok, w, wok)
					}
				}
				if seen != 0 {
					t.Errorf("Each(%s) gave %d rows more than the rows of %s", from, seen, from)
				}
			}
			if _, ok := c.Distance("nobody", "g0"); ok {
				t.Error("Distance of an unknown object found a row")
			}
			if len(want) > 0 {
				if _, fits, err := LoadClosureIndex(context.Background(), r, member, 42, c.Bytes()-1); fits || err != nil {
					t.Errorf("with a budget one byte short: fits %v, %v", fits, err)
				}
				if _, fits, err := LoadClosureIndex(context.Background(), r, member, 42, c.Bytes()); !fits || err != nil {
					t.Errorf("with a budget of its own size: fits %v, %v", fits, err)
				}
			}
		})
	}
}

// TestNestedCheckFromMemory checks nested groups from the in-memory
// closure on both of nestedCheck's paths: a subject in a few groups (a
// lookup per pair) and one in more than nestedPointReads (the object's
// closure matched against them), against the walk and the closure read
// from the store.
func TestNestedCheckFromMemory(t *testing.T) {
	s := mustCompile(t, groupsSchema)
	lines := []string{"group:h7#member@user:few", "group:h8#member@user:few", "group:g3#member@group:h7#member"}
	for i := 1; i <= 5; i++ { // g5 ⊃ … ⊃ g0
		lines = append(lines, fmt.Sprintf("group:g%d#member@group:g%d#member", i, i-1))
	}
	for i := range nestedPointReads + 4 {
		lines = append(lines, fmt.Sprintf("group:h%d#member@user:many", i))
	}
	rd := loadNested(t, s, mustParse(t, lines...))
	plans := &PlanCounters{}
	evals := map[string]*Evaluator{
		"walk":   New(s, Options{Concurrency: 1}),
		"store":  New(s, Options{Concurrency: 1, NestedIndex: true}),
		"memory": New(s, Options{Concurrency: 1, NestedIndex: true, Plans: plans, Closures: newTestClosures(t, s, rd)}),
	}
	for _, tc := range []struct {
		group, user string
		want        Permissionship
	}{
		{"g5", "few", HasPermission}, {"g3", "few", HasPermission}, {"g2", "few", NoPermission}, {"h7", "few", HasPermission},
		{"g5", "many", HasPermission}, {"g3", "many", HasPermission}, {"g0", "many", NoPermission}, {"h19", "many", HasPermission},
	} {
		for name, e := range evals {
			res, err := e.Check(context.Background(), Params{Reader: rd, Now: testNow}, CheckRequest{
				Resource: tuple.ObjectRef{Type: "group", ID: tc.group}, Permission: "member", Subject: tuple.SubjectRef{Type: "user", ID: tc.user}})
			if err != nil || res.Permissionship != tc.want {
				t.Errorf("%s: group:%s#member@user:%s = %v (%v), want %v", name, tc.group, tc.user, res.Permissionship, err, tc.want)
			}
		}
	}
	if n := plans.Counts()[PlanNestedMemory.String()]; n < 8 {
		t.Errorf("%d checks read the closure from memory, want 8", n)
	}
}
