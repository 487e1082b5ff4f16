package eval

import (
	"context"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// connective is the Kleene operator of a fold.
type connective uint8

const (
	// disjunction (or) is decided by the first yes.
	disjunction connective = iota
	// conjunction (and) is decided by the first no.
	conjunction
)

// unit is the value of the connective over no operands.
func (op connective) unit() result {
	if op == conjunction {
		return resYes
	}
	return resNo
}

// decider is the answer that decides the connective alone.
func (op connective) decider() Permissionship {
	if op == conjunction {
		return NoPermission
	}
	return HasPermission
}

func (op connective) combine(a, b result) result {
	if op == conjunction {
		return and(a, b)
	}
	return or(a, b)
}

// fold combines n branches with op, stopping at the first deciding value.
// With parallel set, up to the request's goroutine budget of branches run
// concurrently. An error in a branch fails the fold unless another branch
// decided it; of several errors, the lowest branch's wins.
//
// The branches are described by data, not by a closure: a closure would
// escape to the heap on every fold (the concurrent path hands it to
// goroutines), while a fold value stays on the stack unless it runs
// concurrently (see branch).
type fold struct {
	op       connective
	n        int
	parallel bool
	// The branches are below frame f, for subject sub: with w set, its
	// children in order (branch i is w.Children[order[i]]); else the
	// fan-out branches fan (branch i is and(fan[i].cv,
	// fan[i].target(fan[i].id))).
	f     *frame
	sub   tuple.SubjectRef
	w     *schema.Rewrite
	order []int
	fan   []fanBranch
	// rewrites, when set, are the branches themselves (branch i is
	// rewrites[i] on f's object).
	rewrites []*schema.Rewrite
}

// branch evaluates branch i of fd.
func (rq *request) branch(ctx context.Context, fd *fold, i int) (result, error) {
	if fd.w != nil {
		return rq.rewrite(ctx, fd.f, fd.w.Children[fd.order[i]], fd.sub)
	}
	if fd.rewrites != nil {
		return rq.rewrite(ctx, fd.f, fd.rewrites[i], fd.sub)
	}
	b := &fd.fan[i]
	t, err := rq.check(ctx, fd.f, b.target, b.id, fd.sub)
	if err != nil {
		return result{}, err
	}
	return and(b.cv, t), nil
}

// foldState accumulates the branches of a fold.
type foldState struct {
	op      connective
	acc     result
	decided bool
	errAt   int // branch of err
	err     error
}

// add records branch i's answer, reporting whether the fold is decided.
func (s *foldState) add(i int, r result, err error) bool {
	if err != nil {
		if s.err == nil || i < s.errAt {
			s.errAt, s.err = i, err
		}
		return false
	}
	s.acc = s.op.combine(s.acc, r)
	s.decided = s.acc.perm == s.op.decider()
	return s.decided
}

// result is the fold's value: the error of the lowest failed branch unless
// a branch decided.
func (s *foldState) result() (result, error) {
	if !s.decided && s.err != nil {
		return result{}, s.err
	}
	return s.acc, nil
}

func (rq *request) fold(ctx context.Context, fd fold) (result, error) {
	s := foldState{op: fd.op, acc: fd.op.unit()}
	// Two branches gain nothing from a goroutine: the first runs inline
	// before any would start (it is the cheapest, see plan, and often
	// decides alone), and then only one is left.
	if !fd.parallel || rq.tokens == nil || fd.n <= 2 {
		for i := range fd.n {
			r, err := rq.branch(ctx, &fd, i)
			if s.add(i, r, err) {
				break
			}
		}
		return s.result()
	}
	if r, err := rq.branch(ctx, &fd, 0); s.add(0, r, err) {
		return s.result()
	}
	rq.foldConcurrent(ctx, fd, &s)
	return s.result()
}

// foldOut is the answer of a branch run on its own goroutine.
type foldOut struct {
	i   int
	r   result
	err error
}

// foldConcurrent adds branches 1 to n-1 of fd to s: those for which the
// request has goroutine tokens run concurrently, the others inline; a
// decision cancels the branches still running.
func (rq *request) foldConcurrent(ctx context.Context, fd fold, s *foldState) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan foldOut, fd.n)
	spawned := 0
	inline := make([]int, 1, fd.n)
	inline[0] = 1
	for i := 2; i < fd.n; i++ {
		select {
		case rq.tokens <- struct{}{}:
			spawned++
			go func() {
				r, err := rq.branch(cctx, &fd, i)
				<-rq.tokens
				ch <- foldOut{i, r, err}
			}()
		default:
			inline = append(inline, i)
		}
	}
	for _, i := range inline {
		r, err := rq.branch(cctx, &fd, i)
		if s.add(i, r, err) {
			cancel()
			break
		}
	}
	for range spawned {
		o := <-ch
		if s.decided {
			continue
		}
		if s.add(o.i, o.r, o.err) {
			cancel()
		}
	}
}
