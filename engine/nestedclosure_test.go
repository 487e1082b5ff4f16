package engine

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// TestDiffClosureMatchesBruteForce is a differential test of the rebuild's
// closure (interned graph, breadth-first walks over reused arrays) and of
// its comparison with stored rows: for random graphs (cycles, loops, IDs
// whose order is not their order of appearance) and random stored rows
// (right, missing, extra, at a wrong distance, for objects without edges),
// the writes diffClosure emits turn the stored rows into the closure a
// map-based breadth-first search computes, and its counts are those of a
// brute-force comparison.
func TestDiffClosureMatchesBruteForce(t *testing.T) {
	ctx := t.Context()
	s, err := schema.Compile("t", "definition user {}\ndefinition group {\n\trelation member: user | group#member\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	rel := s.Definitions["group"].Relations["member"]
	n := &nestedRel{rel: rel, closure: eval.NestedClosureRelation("member")}
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 3))
			nodes := 2 + rng.IntN(14)
			id := func() string { return fmt.Sprintf("n%d", rng.IntN(nodes)) }
			adj := map[string][]string{}
			var rels []tuple.Relationship
			seen := map[[2]string]bool{}
			for range rng.IntN(3 * nodes) {
				a, b := id(), id()
				if seen[[2]string{a, b}] {
					continue
				}
				seen[[2]string{a, b}] = true
				adj[a] = append(adj[a], b)
				rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: a}, Relation: "member",
					Subject: tuple.SubjectRef{Type: "group", ID: b, Relation: "member"}})
			}
			want := map[[2]string]int{} // the brute-force closure
			for x := range adj {
				dist := map[string]int{x: 0}
				queue := []string{x}
				for len(queue) > 0 {
					u := queue[0]
					queue = queue[1:]
					for _, v := range adj[u] {
						if _, ok := dist[v]; !ok {
							dist[v] = dist[u] + 1
							queue = append(queue, v)
						}
					}
				}
				for y, d := range dist {
					if y != x {
						want[[2]string{x, y}] = d
					}
				}
			}
			// Stored rows: most of want, some at a wrong distance, some
			// extra (objects without edges included).
			have := map[[2]string]int{}
			for p, d := range want {
				switch rng.IntN(6) {
				case 0: // missing
				case 1:
					have[p] = d + 1 + rng.IntN(2)
				default:
					have[p] = d
				}
			}
			for range rng.IntN(4) {
				p := [2]string{fmt.Sprintf("n%d", rng.IntN(nodes+3)), id()}
				if p[0] != p[1] {
					if _, ok := have[p]; !ok {
						have[p] = 1 + rng.IntN(3)
					}
				}
			}
			st := memstore.New(memstore.Options{})
			defer st.Close()
			if _, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
				for _, r := range rels {
					if err := tx.Touch(ctx, r); err != nil {
						return err
					}
				}
				for p, d := range have {
					if err := tx.Touch(ctx, eval.NestedRow(rel, p[0], p[1], d)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			r, err := st.Snapshot(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			g, err := loadNestedGraph(ctx, r, n)
			if err != nil {
				t.Fatal(err)
			}
			got := maps.Clone(have)
			rep, err := diffClosure(ctx, r, n, g, func(op rowOp) error {
				d, ok := eval.NestedDistance(&op.r)
				if !ok {
					t.Fatalf("emitted a malformed row %s", op.r)
				}
				p := [2]string{op.r.Resource.ID, op.r.Subject.ID}
				if op.touch {
					got[p] = d
				} else if got[p] == d {
					delete(got, p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, want) {
				t.Errorf("stored rows after the writes\n%v\nwant\n%v", sortedPairs(got), sortedPairs(want))
			}
			var missing, extra, wrong int
			for p, d := range have {
				if w, ok := want[p]; !ok {
					extra++
				} else if w != d {
					wrong++
				}
			}
			for p := range want {
				if _, ok := have[p]; !ok {
					missing++
				}
			}
			if rep.Rows != len(have) || rep.Missing != missing || rep.Extra != extra || rep.Wrong != wrong {
				t.Errorf("report %+v, want %d rows, %d missing, %d extra, %d wrong", rep, len(have), missing, extra, wrong)
			}
		})
	}
}

func sortedPairs(m map[[2]string]int) []string {
	var out []string
	for p, d := range m {
		out = append(out, fmt.Sprintf("%s>%s:%d", p[0], p[1], d))
	}
	slices.Sort(out)
	return out
}
