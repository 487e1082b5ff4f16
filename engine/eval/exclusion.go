package eval

import (
	"context"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Exclusions. The walk evaluates base - minus base first: a "no" of the
// base decides, and the subtraction is read only when the base is not
// "no". When the subtraction is cheap and the base is not (a point read
// of a ban list against a walk of nested folders), evaluating the
// subtraction first and stopping when it holds saves the base's walk:
// minus "yes" makes the exclusion "no" whatever the base says, unless
// the base fails. The walk fails the exclusion when the base fails (on
// the depth limit, on a caveat), before the subtraction can say no, and
// so must every plan: the subtraction goes first only where the base
// cannot fail, decided from the schema (exclusionPlan):
//
//   - no caveat can reach the base (a caveat's evaluation may fail on the
//     request's context), and
//   - the base's relations are not recursive, so that the relations on
//     any path below the base are bounded (height), and the exclusion is
//     evaluated at a depth where that bound is within Options.MaxDepth.
//
// Everything else is the walk's: a subtraction that is "no" or
// conditional (a caveat's condition decides nothing alone) or fails
// needs the base, and the two are combined exactly as the walk combines
// them. A subtraction that holds answers "no" with the subtraction's
// dependencies (expiry, cycles) and the height of both sides' bound, so
// that the answer is reused (cached, memoized, routed) only at depths
// where the early stop is allowed, and where the walk would answer the
// same.

// subtractMode is Evaluator.subtractMode.
type subtractMode uint8

const (
	subtractPlanned subtractMode = iota // by cost (subtractFirst)
	subtractNever                       // the walk: every base first
	subtractAlways                      // every subtraction first where the base cannot fail
)

// exclusionPlan is what the schema says about one exclusion node.
type exclusionPlan struct {
	// height bounds the relations on any path below the base (a
	// computed reference or arrow counts the target relation and those
	// below it); -1 when the base may fail whatever the depth (a caveat
	// reaches it) or its paths are unbounded (recursion).
	height int32
	// light: the subtraction is a few point reads and the base may fan
	// out; without statistics, the subtraction goes first.
	light bool
}

// exclusionPlans derives the plan of every exclusion of the schema.
func (a *analysis) exclusionPlans() map[*schema.Rewrite]exclusionPlan {
	var excl []*schema.Rewrite
	var collect func(w *schema.Rewrite)
	collect = func(w *schema.Rewrite) {
		if w == nil {
			return
		}
		if w.Kind == schema.RewriteExclusion && len(w.Children) == 2 {
			excl = append(excl, w)
		}
		for _, c := range w.Children {
			collect(c)
		}
	}
	for _, r := range a.rels {
		if r != nil {
			collect(r.Rewrite)
		}
	}
	if len(excl) == 0 {
		return nil
	}
	heights := a.relationHeights()
	out := make(map[*schema.Rewrite]exclusionPlan, len(excl))
	for _, w := range excl {
		p := exclusionPlan{height: a.rewriteHeight(w.Children[0], heights)}
		p.light = p.height >= 0 && !a.heavyRewrite(w.Children[1]) && a.heavyRewrite(w.Children[0])
		out[w] = p
	}
	return out
}

// relationHeights returns, by relation index, the most relations on a
// path of the walk from the relation down (itself included), or -1 when
// the relation is recursive or reaches a recursive one. Every relation
// the relation's value is computed from counts (allRefs: an arrow's
// tupleset too, which the walk reads without a frame: an upper bound).
func (a *analysis) relationHeights() []int32 {
	n := len(a.rels)
	comp := schema.Components(a.allRefs)
	// Components numbers a component after every component it reaches:
	// in increasing order, dependencies come first.
	byComp := make([][]int32, n)
	size := make([]int, n)
	for i := range n {
		byComp[comp[i]] = append(byComp[comp[i]], int32(i))
		size[comp[i]]++
	}
	h := make([]int32, n)
	for c := range byComp {
		for _, i := range byComp[c] {
			h[i] = 1
			for _, d := range a.allRefs[i] {
				switch {
				case comp[d] == comp[i] || h[d] < 0:
					h[i] = -1
				case h[i] >= 0:
					h[i] = max(h[i], h[d]+1)
				}
				if h[i] < 0 {
					break
				}
			}
			if size[c] > 1 {
				h[i] = -1
			}
		}
	}
	return h
}

// rewriteHeight bounds the relations on a path below w (0 for self and
// nil), or -1 when w may fail whatever the depth: a caveat reaches it or
// one of its relations is recursive.
func (a *analysis) rewriteHeight(w *schema.Rewrite, heights []int32) int32 {
	rel := func(r *schema.Relation) int32 {
		if r == nil {
			return 0
		}
		if a.caveated[r.Index] {
			return -1
		}
		return heights[r.Index]
	}
	switch w.Kind {
	case schema.RewriteNil, schema.RewriteSelf:
		return 0
	case schema.RewriteComputed:
		return rel(w.Relation)
	case schema.RewriteArrow:
		// The tupleset's relationships are read on this object; their
		// caveats are evaluated.
		if rel(w.Relation) < 0 {
			return -1
		}
		h := int32(0)
		for _, t := range w.Targets {
			th := rel(t)
			if th < 0 {
				return -1
			}
			h = max(h, th)
		}
		return h
	}
	h := int32(0)
	for _, c := range w.Children {
		ch := a.rewriteHeight(c, heights)
		if ch < 0 {
			return -1
		}
		h = max(h, ch)
	}
	return h
}

// subtractFirst reports whether to evaluate exclusion w's subtraction
// first on a frame at depth d: where the base cannot fail (see
// exclusionPlan) and the subtraction is the cheaper side, by the
// request's statistics when it has them (estimated relationships read,
// at most half the base's), else by the schema (point reads against a
// fan-out).
func (rq *request) subtractFirst(w *schema.Rewrite, d int32) (exclusionPlan, bool) {
	p, ok := rq.e.an.exclusions[w]
	if !ok || p.height < 0 || int(d)+int(p.height) > rq.e.opts.MaxDepth || rq.e.subtractMode == subtractNever {
		return p, false
	}
	switch {
	case rq.e.subtractMode == subtractAlways:
		return p, true
	case rq.stats == nil:
		return p, p.light
	}
	return p, rq.statsOrders().subtract[w]
}

// subtractByStats lists the exclusions whose subtraction the statistics
// in st estimate to read at most half the relationships of the base,
// among those whose base cannot fail.
func (a *analysis) subtractByStats(st *store.Statistics) map[*schema.Rewrite]bool {
	out := map[*schema.Rewrite]bool{}
	for w, p := range a.exclusions {
		if p.height < 0 {
			continue
		}
		if 2*a.rewriteCost(w.Children[1], st, 3) <= a.rewriteCost(w.Children[0], st, 3) {
			out[w] = true
		}
	}
	return out
}

// exclusion evaluates base - minus on f's object: the base first (the
// subtraction is read only when the base is not "no"), or the
// subtraction first where subtractFirst says so.
func (rq *request) exclusion(ctx context.Context, f *frame, w *schema.Rewrite, sub tuple.SubjectRef) (result, error) {
	if p, ok := rq.subtractFirst(w, f.depth); ok {
		return rq.subtractionFirst(ctx, f, w, sub, p)
	}
	base, err := rq.rewrite(ctx, f, w.Children[0], sub)
	if err != nil || base.perm == NoPermission {
		return base, err
	}
	minus, err := rq.rewrite(ctx, f, w.Children[1], sub)
	if err != nil {
		return result{}, err
	}
	return exclude(base, minus), nil
}

// exclude combines a base that is not "no" with its subtraction, as the
// walk does.
func exclude(base, minus result) result {
	res := and(base, not(minus))
	// Both sides were needed, whichever decided: an error in the base
	// fails the exclusion before the subtraction can say no.
	res.h = max(base.h, minus.h)
	return res
}

// subtracted is the answer of an exclusion whose subtraction holds,
// without the base (whose paths p bounds): "no", depending on what the
// subtraction depended on.
func subtracted(minus result, p exclusionPlan) result {
	res := resNo
	res.deps(minus)
	res.h = max(minus.h, p.height)
	return res
}

// subtractionFirst is exclusion with the subtraction evaluated first.
func (rq *request) subtractionFirst(ctx context.Context, f *frame, w *schema.Rewrite, sub tuple.SubjectRef, p exclusionPlan) (result, error) {
	rq.count(PlanExclusionSubtractionFirst)
	minus, merr := rq.rewrite(ctx, f, w.Children[1], sub)
	if merr == nil && minus.perm == HasPermission {
		rq.count(PlanExclusionBaseSkipped)
		return subtracted(minus, p), nil
	}
	base, err := rq.rewrite(ctx, f, w.Children[0], sub)
	if err != nil || base.perm == NoPermission {
		return base, err
	}
	if merr != nil {
		return result{}, merr
	}
	return exclude(base, minus), nil
}
