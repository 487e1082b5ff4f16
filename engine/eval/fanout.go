package eval

import (
	"context"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// maxParallelDepth is the deepest path frame whose branches may run on
// their own goroutines: parallelism near the root shortens the critical
// path, while deeper it mostly multiplies scheduling costs (measured: with
// every level parallel, CPU per uncached check was 3-4x the sequential one).
const maxParallelDepth = 2

// defaultWideFanout is the number of subject sets or arrow subjects from
// which a union is decided from the subject's side when possible: one walk
// up from the subject instead of one subproblem per branch.
const defaultWideFanout = 16

// defaultArrowProbe is how many relationships of an arrow's tupleset are
// read before the arrow is decided from the subject's side: as many as
// make anyBranch decide a union from the subject's side anyway (wide), so
// the planner only spares reading the rest. Reading a relationship costs
// about half a microsecond; on the wide-arrow workload a probe of 64 was
// a third of a check's CPU.
const defaultArrowProbe = defaultWideFanout

// fanBranch is one branch of a fan-out (a subject set of a relation, or a
// subject an arrow follows): target of object id, under the condition of
// the relationship that led there.
type fanBranch struct {
	target *schema.Relation
	id     string
	cv     result
}

// anyBranch is the union of the branches below frame f: from the subject's
// side when there are many and wide can decide, else one check per branch.
func (rq *request) anyBranch(ctx context.Context, f *frame, branches []fanBranch, sub tuple.SubjectRef) (result, error) {
	if len(branches) >= rq.e.wideFanout {
		if res, ok := rq.wide(ctx, f, branches, sub); ok {
			rq.count(PlanUnionSubject)
			return res, nil
		}
	}
	return rq.foldBranches(ctx, disjunction, f, branches, sub)
}

// allBranches is the intersection of the branches below frame f.
func (rq *request) allBranches(ctx context.Context, f *frame, branches []fanBranch, sub tuple.SubjectRef) (result, error) {
	return rq.foldBranches(ctx, conjunction, f, branches, sub)
}

// foldBranches combines with op the branches below f, each and(cv,
// target(id)), checked top-down.
func (rq *request) foldBranches(ctx context.Context, op connective, f *frame, branches []fanBranch, sub tuple.SubjectRef) (result, error) {
	return rq.fold(ctx, fold{op: op, n: len(branches), parallel: len(branches) >= 2 && f.depth <= maxParallelDepth,
		f: f, sub: sub, fan: branches})
}

// wide decides the union of and(cv, target(id)) over the branches below
// frame f with one reverse walk per distinct pure target. ok is false when
// some target is not pure, a walk was over budget, or no branch is yes
// within the depth limit while one is yes only beyond it; the caller then
// evaluates top-down.
func (rq *request) wide(ctx context.Context, f *frame, branches []fanBranch, sub tuple.SubjectRef) (result, bool) {
	sets, ok := rq.wideMembers(ctx, branches, sub)
	if !ok {
		return result{}, false
	}
	acc := resNo
	for _, m := range sets {
		acc.deps(result{expires: m.expires, cut: noCut})
	}
	deep := false
	for _, b := range branches {
		t := resNo
		// The targets are checked one frame below f.
		if in, known := sets[b.target].member(b.id, f.depth+1, rq.e.opts.MaxDepth); in && known {
			t = resYes
			t.h = sets[b.target].ids[b.id].h
		} else if in {
			deep = true
			continue
		}
		if acc = or(acc, and(b.cv, t)); acc.perm == HasPermission {
			return acc, true
		}
	}
	return acc, !deep
}

// wideMembers walks up from sub once per distinct target of branches; ok
// is false when a target is not pure or a walk gave up.
func (rq *request) wideMembers(ctx context.Context, branches []fanBranch, sub tuple.SubjectRef) (map[*schema.Relation]*revSet, bool) {
	sets := map[*schema.Relation]*revSet{}
	for _, b := range branches {
		if _, seen := sets[b.target]; seen {
			continue
		}
		if b.target == nil || !rq.e.an.pure[b.target.Index] {
			return nil, false
		}
		m, ok := rq.reverseMembers(ctx, b.target, sub)
		if !ok {
			return nil, false
		}
		sets[b.target] = m
	}
	return sets, true
}
