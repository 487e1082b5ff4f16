package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestClosureIndex loads random closures (as loadNested computes them
// from random nested groups) and compares every lookup with the rows
// themselves: each stored pair's distance, pairs not stored, objects
// unknown, the rows of each object in order, and the memory budget.
func TestClosureIndex(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
	relation member: user | group#member
}`)
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
