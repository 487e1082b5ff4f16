package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// This file computes the nested-group index of a relation from scratch
// (rebuilds, VerifyNestedIndex, a schema write that starts indexing a
// relation) and compares it with the stored rows as a stream: the edges
// are read once into a graph of dense integers, the closure of each
// object is a breadth-first search over reused arrays (no map, no
// allocation per object or per row), and the rows to write are handed to
// the caller one by one in the order of the stored rows, never collected.

// nestedGraph is the subject-set edges of one indexed relation at one
// revision: object IDs interned as dense integers in ID order, children
// in compressed rows (the children of object i are to[off[i]:off[i+1]]).
type nestedGraph struct {
	ids   []string
	index map[string]int32
	off   []int32
	to    []int32
}

// loadNestedGraph reads the edges of n that r holds.
func loadNestedGraph(ctx context.Context, r relationshipQuerier, n *nestedRel) (*nestedGraph, error) {
	typ := n.rel.Definition.Name
	index := map[string]int32{}
	var ids []string
	var from, to []int32
	intern := func(id string) int32 {
		if i, ok := index[id]; ok {
			return i
		}
		i := int32(len(ids))
		index[id] = i
		ids = append(ids, id)
		return i
	}
	f := tuple.Filter{ResourceType: typ, Relation: n.rel.Name, Subject: &tuple.SubjectFilter{Type: typ, Relation: n.rel.Name}}
	for row, err := range r.QueryRelationships(ctx, f, store.QueryOptions{}) {
		if err != nil {
			return nil, fmt.Errorf("engine: edges of %s#%s: %w", typ, n.rel.Name, err)
		}
		from = append(from, intern(row.Resource.ID))
		to = append(to, intern(row.Subject.ID))
	}
	// Renumber in ID order, so that integer order is ID order.
	order := make([]int32, len(ids)) // new number -> first number
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(ids[a], ids[b]) })
	renum := make([]int32, len(ids)) // first number -> new number
	sorted := make([]string, len(ids))
	for nw, old := range order {
		renum[old] = int32(nw)
		sorted[nw] = ids[old]
	}
	for id, old := range index {
		index[id] = renum[old]
	}
	off := make([]int32, len(ids)+1)
	for _, a := range from {
		off[renum[a]+1]++
	}
	for i := range ids {
		off[i+1] += off[i]
	}
	adj := make([]int32, len(to))
	next := slices.Clone(off[:len(ids)])
	for k, a := range from {
		a = renum[a]
		adj[next[a]] = renum[to[k]]
		next[a]++
	}
	return &nestedGraph{ids: sorted, index: index, off: off, to: adj}, nil
}

// children returns the objects that object i names as member sets.
func (g *nestedGraph) children(i int32) []int32 { return g.to[g.off[i]:g.off[i+1]] }

// reach is one member set of a closure: an object and its distance.
type reach struct{ node, dist int32 }

// closureWalker computes closures of a graph, reusing its arrays.
type closureWalker struct {
	g     *nestedGraph
	stamp int32
	seen  []int32 // the stamp of the walk that last reached each object
	queue []int32
	out   []reach
}

func newClosureWalker(g *nestedGraph) *closureWalker {
	return &closureWalker{g: g, seen: make([]int32, len(g.ids))}
}

// closure returns the member sets of object x with their shortest
// distances, in ID order, without x itself (a cycle back to x). The
// slice is reused by the next call.
func (w *closureWalker) closure(x int32) []reach {
	w.out = w.out[:0]
	if len(w.g.children(x)) == 0 {
		return w.out
	}
	w.stamp++
	w.seen[x] = w.stamp
	w.queue = append(w.queue[:0], x)
	for k, lo := int32(1), 0; lo < len(w.queue); k++ {
		hi := len(w.queue)
		for i := lo; i < hi; i++ {
			for _, v := range w.g.children(w.queue[i]) {
				if w.seen[v] == w.stamp {
					continue
				}
				w.seen[v] = w.stamp
				w.queue = append(w.queue, v)
				w.out = append(w.out, reach{v, k})
			}
		}
		lo = hi
	}
	slices.SortFunc(w.out, func(a, b reach) int { return cmp.Compare(a.node, b.node) })
	return w.out
}

// rowMaker builds the closure rows of one relation from one row
// eval.NestedRow made, sharing the subject relation string of each
// distance between rows (no allocation per row).
type rowMaker struct {
	n     *nestedRel
	tmpl  *tuple.Relationship
	dists []string // dists[d]: the subject relation of distance d
}

func (m *rowMaker) row(from, to string, d int) tuple.Relationship {
	for len(m.dists) <= d {
		m.dists = append(m.dists, eval.NestedRow(m.n.rel, "", "", len(m.dists)).Subject.Relation)
	}
	if m.tmpl == nil {
		t := eval.NestedRow(m.n.rel, "", "", 1)
		m.tmpl = &t
	}
	r := *m.tmpl
	r.Resource.ID, r.Subject.ID, r.Subject.Relation = from, to, m.dists[d]
	return r
}

// storedRow is one closure row read: its member set and distance.
type storedRow struct {
	id   string
	dist int
}

// errStopDiff is returned by a diffClosure emit function to stop it early;
// diffClosure then returns it.
var errStopDiff = errors.New("engine: nested index diff stopped")

// diffClosure compares the closure rows of n that r holds with the
// closure of g (the edges r holds, or another revision's) and calls emit
// with each row write that turns the first into the second: per object,
// in the order r yields the stored rows, then the objects with no stored
// row in ID order. emit may be nil (counting only). It returns the
// comparison's counts: Rows, Missing, Extra, Wrong.
func diffClosure(ctx context.Context, r relationshipQuerier, n *nestedRel, g *nestedGraph, emit func(rowOp) error) (NestedIndexReport, error) {
	rep := NestedIndexReport{Relation: n.rel.Definition.Name + "#" + n.rel.Name}
	w := newClosureWalker(g)
	mk := rowMaker{n: n}
	done := make([]bool, len(g.ids))
	put := func(op rowOp) error {
		if emit == nil {
			return nil
		}
		return emit(op)
	}
	// compare emits the writes of object x, whose rows are have.
	compare := func(x string, have []storedRow) error {
		var want []reach
		if i, ok := g.index[x]; ok {
			done[i] = true
			want = w.closure(i)
		}
		if !slices.IsSortedFunc(have, func(a, b storedRow) int { return strings.Compare(a.id, b.id) }) {
			slices.SortStableFunc(have, func(a, b storedRow) int { return strings.Compare(a.id, b.id) })
		}
		rep.Rows += len(have)
		i, j := 0, 0
		for i < len(want) || j < len(have) {
			switch {
			case j == len(have) || (i < len(want) && g.ids[want[i].node] < have[j].id):
				rep.Missing++
				if err := put(rowOp{r: mk.row(x, g.ids[want[i].node], int(want[i].dist)), touch: true}); err != nil {
					return err
				}
				i++
			case i == len(want) || have[j].id < g.ids[want[i].node]:
				rep.Extra++
				if err := put(rowOp{r: mk.row(x, have[j].id, have[j].dist)}); err != nil {
					return err
				}
				j++
			default: // rows for the same member set
				y, d, kept := have[j].id, int(want[i].dist), false
				for ; j < len(have) && have[j].id == y; j++ {
					if have[j].dist == d && !kept {
						kept = true
						continue
					}
					rep.Wrong++
					if err := put(rowOp{r: mk.row(x, y, have[j].dist)}); err != nil {
						return err
					}
				}
				if !kept {
					if err := put(rowOp{r: mk.row(x, y, d), touch: true}); err != nil {
						return err
					}
				}
				i++
			}
		}
		return nil
	}
	typ := n.rel.Definition.Name
	var have []storedRow
	cur := ""
	f := tuple.Filter{ResourceType: typ, Relation: n.closure}
	for row, err := range r.QueryRelationships(ctx, f, store.QueryOptions{}) {
		if err != nil {
			return rep, fmt.Errorf("engine: nested index of %s#%s: %w", typ, n.rel.Name, err)
		}
		d, ok := eval.NestedDistance(&row)
		if !ok {
			continue
		}
		if row.Resource.ID != cur {
			if len(have) > 0 {
				if err := compare(cur, have); err != nil {
					return rep, err
				}
			}
			cur, have = row.Resource.ID, have[:0]
		}
		have = append(have, storedRow{id: row.Subject.ID, dist: d})
	}
	if len(have) > 0 {
		if err := compare(cur, have); err != nil {
			return rep, err
		}
	}
	for i, x := range g.ids {
		if !done[i] {
			if err := compare(x, nil); err != nil {
				return rep, err
			}
		}
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// changedSources returns, in ID order, the objects whose children differ
// between graphs a and b (an object without children in one of them
// included).
func changedSources(a, b *nestedGraph) []string {
	var out []string
	kids := func(g *nestedGraph, id string) []string {
		i, ok := g.index[id]
		if !ok {
			return nil
		}
		c := g.children(i)
		ids := make([]string, len(c))
		for k, v := range c {
			ids[k] = g.ids[v]
		}
		slices.Sort(ids)
		return ids
	}
	seen := map[string]bool{}
	for _, g := range []*nestedGraph{a, b} {
		for _, id := range g.ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			if !slices.Equal(kids(a, id), kids(b, id)) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}
