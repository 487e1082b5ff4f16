package eval

import (
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Contextual relationships (Params.Contextual) hold for one call only. The
// call reads them through store.Overlay, so evaluation itself is unchanged;
// what changes is what may be shared with other calls. A subproblem about
// relation r can read a contextual relationship only if r is a relation
// the relationships name, or r's value is computed from such a relation,
// directly or through others (computed references, arrows and their
// tuplesets, subject sets, in any position: an exclusion's subtracted
// side changes the answer too). Those relations, and only those, bypass
// the cross-request cache, both ways (an answer computed with the
// relationships is never stored, and a stored one is never served to a
// call that has them), and stay on this node of a cluster. The memo of
// the call itself is private to it, so it shares everything.

// dependentsOf lists, for every relation index, the relations computed
// directly from it (the reverse of allReferences).
func dependentsOf(rels []*schema.Relation) [][]int {
	out := make([][]int, len(rels))
	for i, r := range rels {
		if r == nil {
			continue
		}
		for _, ref := range allReferences(r) {
			if ref != nil && ref.Index >= 0 && ref.Index < len(out) {
				out[ref.Index] = append(out[ref.Index], i)
			}
		}
	}
	return out
}

// reaching marks, by relation index, the relations whose value can depend
// on one of rels: the relations they name and, transitively, every
// relation computed from those. Relationships naming no relation of the
// schema mark nothing (the caller validated them; an unknown one cannot
// be read by any relation).
func (a *analysis) reaching(rels []tuple.Relationship) []bool {
	named := make(map[kind]bool, 4)
	for _, r := range rels {
		named[kind{r.Resource.Type, r.Relation}] = true
	}
	out := make([]bool, len(a.rels))
	var stack []int
	for i, rel := range a.rels {
		if rel != nil && named[kind{rel.Definition.Name, rel.Name}] {
			out[i] = true
			stack = append(stack, i)
		}
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range a.dependents[i] {
			if !out[d] {
				out[d] = true
				stack = append(stack, d)
			}
		}
	}
	return out
}

// touches reports whether subproblems of relation index rel may read the
// call's contextual relationships (rq nil: a call without any).
func (rq *request) touches(rel int) bool {
	return rq != nil && rq.uncached != nil && rq.uncached[rel]
}
