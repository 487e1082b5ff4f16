package eval

import (
	"slices"
	"time"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// This file is the oracle of the differential test: a deliberately simple
// evaluator. For one subject it computes the value of every (relation,
// object) of a small universe at once, by plain fixpoint iteration over all
// relationships: no caching, no concurrency, no short-circuit, no pruning.
// Strongly connected groups of relations are solved one at a time in
// dependency order, so that an exclusion only ever subtracts a settled
// value (the generator only produces such stratified schemas).

type refVal struct {
	perm    Permissionship
	missing []string
}

type refNode struct {
	rel int
	id  string
}

type refEval struct {
	s        *schema.Schema
	rels     []*schema.Relation
	byRes    map[tuple.Key][]tuple.Relationship // Key with Subject zeroed
	universe map[string][]string                // object IDs by type
	ctx      map[string]any
	sccs     [][]*schema.Relation // dependencies first
}

func newRefEval(s *schema.Schema, rels []tuple.Relationship, now time.Time, ctx map[string]any, universe map[string][]string) *refEval {
	re := &refEval{s: s, rels: make([]*schema.Relation, s.NumRelations), byRes: map[tuple.Key][]tuple.Relationship{}, universe: universe, ctx: ctx}
	for _, d := range s.Definitions {
		for _, r := range d.Ordered {
			re.rels[r.Index] = r
		}
	}
	for _, r := range rels {
		if r.ExpiredAt(now) {
			continue
		}
		k := tuple.Key{Resource: r.Resource, Relation: r.Relation}
		re.byRes[k] = append(re.byRes[k], r)
	}
	re.sccs = refSCCs(re.rels)
	return re
}

// refDeps lists every relation r's value is computed from; neg those
// reached through the subtracted side of an exclusion.
func refDeps(r *schema.Relation) (all, neg []*schema.Relation) {
	for _, a := range r.Allowed {
		if a.Target != nil {
			all = append(all, a.Target)
		}
	}
	var walk func(w *schema.Rewrite, negative bool)
	walk = func(w *schema.Rewrite, negative bool) {
		var refs []*schema.Relation
		switch w.Kind {
		case schema.RewriteComputed:
			refs = append(refs, w.Relation)
		case schema.RewriteArrow:
			for _, t := range w.Targets {
				refs = append(refs, t)
			}
		case schema.RewriteExclusion:
			walk(w.Children[0], negative)
			walk(w.Children[1], true)
		default:
			for _, c := range w.Children {
				walk(c, negative)
			}
		}
		all = append(all, refs...)
		if negative {
			neg = append(neg, refs...)
		}
	}
	if r.Rewrite != nil {
		walk(r.Rewrite, false)
	}
	return all, neg
}

// refSCCs returns the strongly connected components of the dependency
// graph, dependencies first (Tarjan's algorithm emits them in that order).
func refSCCs(rels []*schema.Relation) [][]*schema.Relation {
	index := make([]int, len(rels))
	low := make([]int, len(rels))
	on := make([]bool, len(rels))
	for i := range index {
		index[i] = -1
	}
	var stack []*schema.Relation
	var out [][]*schema.Relation
	next := 0
	var visit func(r *schema.Relation)
	visit = func(r *schema.Relation) {
		i := r.Index
		index[i], low[i] = next, next
		next++
		stack = append(stack, r)
		on[i] = true
		deps, _ := refDeps(r)
		for _, d := range deps {
			switch {
			case index[d.Index] < 0:
				visit(d)
				low[i] = min(low[i], low[d.Index])
			case on[d.Index]:
				low[i] = min(low[i], index[d.Index])
			}
		}
		if low[i] == index[i] {
			var scc []*schema.Relation
			for {
				x := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[x.Index] = false
				scc = append(scc, x)
				if x == r {
					break
				}
			}
			out = append(out, scc)
		}
	}
	for _, r := range rels {
		if index[r.Index] < 0 {
			visit(r)
		}
	}
	return out
}

// stratified reports whether no exclusion subtracts a relation of its own
// component: such schemas have no well-defined meaning.
func stratified(rels []*schema.Relation) bool {
	comp := make([]int, len(rels))
	for ci, scc := range refSCCs(rels) {
		for _, r := range scc {
			comp[r.Index] = ci
		}
	}
	for _, r := range rels {
		_, neg := refDeps(r)
		for _, n := range neg {
			if comp[n.Index] == comp[r.Index] {
				return false
			}
		}
	}
	return true
}

func refOr(vs ...refVal) refVal {
	out := refVal{perm: NoPermission}
	for _, v := range vs {
		if v.perm == HasPermission {
			return refVal{perm: HasPermission}
		}
	}
	for _, v := range vs {
		if v.perm == ConditionalPermission {
			out.perm = ConditionalPermission
			out.missing = append(out.missing, v.missing...)
		}
	}
	return normMissing(out)
}

func refAnd(vs ...refVal) refVal {
	out := refVal{perm: HasPermission}
	for _, v := range vs {
		if v.perm == NoPermission {
			return refVal{perm: NoPermission}
		}
	}
	for _, v := range vs {
		if v.perm == ConditionalPermission {
			out.perm = ConditionalPermission
			out.missing = append(out.missing, v.missing...)
		}
	}
	return normMissing(out)
}

func refNot(v refVal) refVal {
	switch v.perm {
	case HasPermission:
		return refVal{perm: NoPermission}
	case NoPermission:
		return refVal{perm: HasPermission}
	}
	return v
}

func normMissing(v refVal) refVal {
	slices.Sort(v.missing)
	v.missing = slices.Compact(v.missing)
	if len(v.missing) == 0 {
		v.missing = nil
	}
	return v
}

func (re *refEval) caveat(r tuple.Relationship) (refVal, error) {
	if r.Caveat == nil {
		return refVal{perm: HasPermission}, nil
	}
	ctx := map[string]any{}
	for k, v := range re.ctx {
		ctx[k] = v
	}
	for k, v := range r.Caveat.Context {
		ctx[k] = v
	}
	cr, err := re.s.Caveats[r.Caveat.Name].Evaluate(ctx)
	if err != nil {
		return refVal{}, err
	}
	switch cr.Kind {
	case schema.CaveatTrue:
		return refVal{perm: HasPermission}, nil
	case schema.CaveatMissing:
		return normMissing(refVal{perm: ConditionalPermission, missing: slices.Clone(cr.Missing)}), nil
	}
	return refVal{perm: NoPermission}, nil
}

// solve returns the value of every (relation, object) of the universe for
// subject sub.
func (re *refEval) solve(sub tuple.SubjectRef) (map[refNode]refVal, error) {
	val := map[refNode]refVal{}
	get := func(r *schema.Relation, id string) refVal {
		if r == nil {
			return refVal{perm: NoPermission}
		}
		if v, ok := val[refNode{r.Index, id}]; ok {
			return v
		}
		return refVal{perm: NoPermission}
	}
	var evalRel func(r *schema.Relation, id string) (refVal, error)
	var evalRewrite func(r *schema.Relation, w *schema.Rewrite, id string) (refVal, error)
	evalRel = func(r *schema.Relation, id string) (refVal, error) {
		if sub.Relation == r.Name && sub.Type == r.Definition.Name && sub.ID == id {
			return refVal{perm: HasPermission}, nil
		}
		if r.Rewrite != nil {
			return evalRewrite(r, r.Rewrite, id)
		}
		var parts []refVal
		for _, t := range re.byRes[tuple.Key{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Relation: r.Name}] {
			cv, err := re.caveat(t)
			if err != nil {
				return refVal{}, err
			}
			var m refVal
			switch {
			case t.Subject == sub:
				m = refVal{perm: HasPermission}
			case t.Subject.ID == tuple.Wildcard && sub.Relation == "" && t.Subject.Type == sub.Type:
				m = refVal{perm: HasPermission}
			case t.Subject.Relation != "":
				m = get(re.s.Definitions[t.Subject.Type].Relations[t.Subject.Relation], t.Subject.ID)
			default:
				m = refVal{perm: NoPermission}
			}
			parts = append(parts, refAnd(cv, m))
		}
		return refOr(parts...), nil
	}
	evalRewrite = func(r *schema.Relation, w *schema.Rewrite, id string) (refVal, error) {
		switch w.Kind {
		case schema.RewriteNil:
			return refVal{perm: NoPermission}, nil
		case schema.RewriteSelf:
			// The object itself, as a plain subject; nothing else.
			if sub.Relation == "" && sub.Type == r.Definition.Name && sub.ID == id {
				return refVal{perm: HasPermission}, nil
			}
			return refVal{perm: NoPermission}, nil
		case schema.RewriteComputed:
			return get(w.Relation, id), nil
		case schema.RewriteArrow:
			// Each subject of the tupleset relation contributes its
			// relationship's caveat and the target on it. any: one
			// contribution holds; all: there is a subject and every
			// contribution holds (a subject whose type lacks the target
			// contributes "no", as does one whose caveat is false).
			var each []refVal
			for _, t := range re.byRes[tuple.Key{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Relation: w.Relation.Name}] {
				if t.Subject.ID == tuple.Wildcard {
					continue
				}
				cv, err := re.caveat(t)
				if err != nil {
					return refVal{}, err
				}
				each = append(each, refAnd(cv, get(w.Targets[t.Subject.Type], t.Subject.ID)))
			}
			if w.ArrowAll {
				if len(each) == 0 {
					return refVal{perm: NoPermission}, nil
				}
				return refAnd(each...), nil
			}
			return refOr(each...), nil
		}
		var parts []refVal
		for _, c := range w.Children {
			v, err := evalRewrite(r, c, id)
			if err != nil {
				return refVal{}, err
			}
			parts = append(parts, v)
		}
		switch w.Kind {
		case schema.RewriteUnion:
			return refOr(parts...), nil
		case schema.RewriteIntersection:
			return refAnd(parts...), nil
		}
		return refAnd(parts[0], refNot(parts[1])), nil
	}
	for _, scc := range re.sccs {
		for changed, rounds := true, 0; changed; rounds++ {
			if rounds > 10000 {
				panic("reference evaluator did not converge")
			}
			changed = false
			for _, r := range scc {
				for _, id := range re.universe[r.Definition.Name] {
					v, err := evalRel(r, id)
					if err != nil {
						return nil, err
					}
					k := refNode{r.Index, id}
					if old := val[k]; old.perm != v.perm || !slices.Equal(old.missing, v.missing) {
						val[k] = v
						changed = true
					}
				}
			}
		}
	}
	return val, nil
}
