package eval

import (
	"context"
	"errors"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// This file finds, for a denial, the nearest relationship that would have
// granted: among the missing relationships of the explanation (Wanted),
// the one closest to the checked permission that, written alone, turns
// the answer into a grant. Each candidate is tried by a real check with
// the candidate as a contextual relationship (Params.Contextual: read
// through store.Overlay, past the cross-request cache for what it
// reaches), so the answer is exact (exclusions, intersections and
// caveats included), not inferred from the tree. The tries are bounded
// (maxNearestTries).

// maxNearestTries bounds the candidates tried, nearest first.
const maxNearestTries = 16

// nearest returns the nearest missing relationship of the walked tree
// root that, written alone, grants req; nil when none of the first
// maxNearestTries candidates does (or the schema would refuse it).
func (e *Evaluator) nearest(ctx context.Context, p Params, req CheckRequest, root *ExplainNode) (*tuple.Relationship, error) {
	tries := 0
	for _, w := range e.candidates(root) {
		if tries == maxNearestTries {
			break
		}
		tries++
		q := p
		q.Contextual = []tuple.Relationship{w}
		for _, r := range p.Contextual {
			if r.Key() != w.Key() {
				q.Contextual = append(q.Contextual, r)
			}
		}
		res, err := e.Check(ctx, q, req)
		if err != nil {
			// A path too deep with the candidate: not a grant within
			// the limit; a failing read fails the search.
			if errors.Is(err, ErrMaxDepth) {
				continue
			}
			return nil, err
		}
		if res.Permissionship == HasPermission {
			return &w, nil
		}
	}
	return nil, nil
}

// candidates lists the Wanted relationships of root's tree, breadth first
// (nearest the checked permission first), each once, that the schema
// allows to be written as they are (no caveat required).
func (e *Evaluator) candidates(root *ExplainNode) []tuple.Relationship {
	var out []tuple.Relationship
	seen := map[tuple.Key]bool{}
	visited := map[*ExplainNode]bool{}
	level := []*ExplainNode{root}
	for len(level) > 0 {
		var next []*ExplainNode
		for _, n := range level {
			if n.Repeat && n.orig != nil {
				n = n.orig
			}
			if visited[n] {
				continue
			}
			visited[n] = true
			if w := n.Wanted; w != nil && n.Reason == ReasonMissing && !seen[w.Key()] && e.writable(*w) {
				seen[w.Key()] = true
				out = append(out, *w)
			}
			next = append(next, n.Children...)
		}
		level = next
	}
	return out
}

// writable reports whether the schema allows r, without caveat or
// expiration, in its relation.
func (e *Evaluator) writable(r tuple.Relationship) bool {
	def := e.s.Definitions[r.Resource.Type]
	if def == nil {
		return false
	}
	rel := def.Relations[r.Relation]
	if rel == nil || rel.IsPermission {
		return false
	}
	for _, a := range rel.Allowed {
		if a.Type == r.Subject.Type && a.Relation == r.Subject.Relation && a.Wildcard == r.Subject.IsWildcard() && a.Caveat == nil {
			return true
		}
	}
	return false
}
