package eval

import (
	"cmp"
	"context"
	"errors"
	"iter"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// This file finds, for a denial, the nearest relationship that would have
// granted: among the missing relationships of the explanation (Wanted),
// the one closest to the checked permission that, written alone, turns
// the answer into a grant. Each candidate is tried by a real check over
// the snapshot with the candidate added (an overlay reader), so the
// answer is exact (exclusions, intersections and caveats included), not
// inferred from the tree. The tries are bounded (maxNearestTries), and
// run on an evaluator without the cross-request cache or the router,
// whose answers belong to the real data.

// maxNearestTries bounds the candidates tried, nearest first.
const maxNearestTries = 16

// nearest returns the nearest missing relationship of the walked tree
// root that, written alone, grants req; nil when none of the first
// maxNearestTries candidates does (or the schema would refuse it).
func (e *Evaluator) nearest(ctx context.Context, p Params, req CheckRequest, root *ExplainNode) (*tuple.Relationship, error) {
	plain := e.uncached()
	tries := 0
	for _, w := range e.candidates(root) {
		if tries == maxNearestTries {
			break
		}
		tries++
		q := p
		q.Reader = &overlay{Reader: p.Reader, extra: w}
		res, err := plain.Check(ctx, q, req)
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

// uncached returns an evaluator of the same schema and limits without the
// cross-request cache and the router (e itself when it has neither), for
// checks over data that is not a stored revision.
func (e *Evaluator) uncached() *Evaluator {
	if e.opts.Cache == nil && e.opts.Router == nil && e.chain.cache == nil {
		return e
	}
	if p := e.plain.Load(); p != nil {
		return p
	}
	p := New(e.s, Options{MaxDepth: e.opts.MaxDepth, Concurrency: e.opts.Concurrency})
	p.wideFanout, p.reverseBudget, p.arrowProbe = e.wideFanout, e.reverseBudget, e.arrowProbe
	e.plain.CompareAndSwap(nil, p)
	return e.plain.Load()
}

// overlay is a snapshot with one relationship added: extra appears in
// every query it matches, in index order, as if it were stored.
type overlay struct {
	store.Reader
	extra tuple.Relationship
}

// forwardOrder and reverseOrder compare keys in the orders of
// QueryRelationships and ReverseQueryRelationships.
func forwardOrder(a, b tuple.Key) int {
	return cmp.Or(cmp.Compare(a.Resource.Type, b.Resource.Type), cmp.Compare(a.Resource.ID, b.Resource.ID),
		cmp.Compare(a.Relation, b.Relation), cmp.Compare(a.Subject.Type, b.Subject.Type),
		cmp.Compare(a.Subject.ID, b.Subject.ID), cmp.Compare(a.Subject.Relation, b.Subject.Relation))
}

func reverseOrder(a, b tuple.Key) int {
	return cmp.Or(cmp.Compare(a.Subject.Type, b.Subject.Type), cmp.Compare(a.Subject.ID, b.Subject.ID),
		cmp.Compare(a.Subject.Relation, b.Subject.Relation), cmp.Compare(a.Resource.Type, b.Resource.Type),
		cmp.Compare(a.Relation, b.Relation), cmp.Compare(a.Resource.ID, b.Resource.ID))
}

// QueryRelationships yields the snapshot's matches of f with extra among
// them when it matches.
func (o *overlay) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return o.merge(o.Reader.QueryRelationships(ctx, f, opts), f.Matches(o.extra), opts, forwardOrder)
}

// ReverseQueryRelationships yields the snapshot's matches of f with extra
// among them when it matches.
func (o *overlay) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return o.merge(o.Reader.ReverseQueryRelationships(ctx, f, opts), f.Matches(o.extra), opts, reverseOrder)
}

// merge inserts extra, when it matches and lies after opts.After, into
// base at its place in order, keeping opts.Limit. A stored relationship
// with extra's key gives way to extra.
func (o *overlay) merge(base iter.Seq2[tuple.Relationship, error], match bool, opts store.QueryOptions, order func(a, b tuple.Key) int) iter.Seq2[tuple.Relationship, error] {
	key := o.extra.Key()
	if match && opts.After != nil && order(key, *opts.After) <= 0 {
		match = false
	}
	if !match {
		return base
	}
	return func(yield func(tuple.Relationship, error) bool) {
		n, pending := 0, true
		emit := func(r tuple.Relationship, err error) bool {
			n++
			return yield(r, err) && (opts.Limit == 0 || n < opts.Limit)
		}
		for r, err := range base {
			if err != nil {
				yield(r, err)
				return
			}
			c := order(r.Key(), key)
			if pending && c >= 0 {
				pending = false
				if !emit(o.extra, nil) {
					return
				}
				if c == 0 {
					continue
				}
			}
			if !emit(r, nil) {
				return
			}
		}
		if pending {
			emit(o.extra, nil)
		}
	}
}
