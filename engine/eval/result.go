package eval

import (
	"math"
	"slices"
	"time"
)

// noCut marks a result that assumed nothing about nodes on the path.
const noCut = math.MaxInt32

// result is the three-valued answer to one subproblem with what it depends
// on, so that it can be combined, cached and invalidated.
type result struct {
	perm    Permissionship
	missing []string // sorted; only for ConditionalPermission
	// expires is the earliest expiration among the relationships read;
	// from then on the answer may differ. Zero: nothing expires.
	expires time.Time
	// cut is the smallest depth of a path node that this result assumed
	// to be "no" because the evaluation came back to it (a cycle in the
	// data). Such a result is only right below that node, so it is
	// neither cached nor shared; noCut means none.
	cut int32
	// h is the height the answer needed: the relations on the longest
	// path it had to follow, counted from where it is used (a
	// subproblem's answer counts its own relation). For a yes that is
	// the shortest path that proves it; a no or a conditional answer had
	// to rule out every branch (unless one "no" decided an
	// intersection). Reusing the answer at frame depth d is what a fresh
	// evaluation there would give only while d-1+h is within
	// Options.MaxDepth (see fits): deeper, that evaluation fails on the
	// depth, and so must the reuse, or one operation would answer where
	// another fails.
	h int32
}

// fits reports whether r may answer a subproblem at frame depth d under
// the depth limit.
func (r result) fits(d int32, limit int) bool {
	return int(d)-1+int(r.h) <= limit
}

var (
	resNo  = result{perm: NoPermission, cut: noCut}
	resYes = result{perm: HasPermission, cut: noCut}
)

func minTime(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

// deps merges the dependencies of b into a.
func (a *result) deps(b result) {
	a.expires = minTime(a.expires, b.expires)
	a.cut = min(a.cut, b.cut)
}

func unionMissing(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]string, 0, len(a)+len(b))
	out = append(out, a...)
	out = append(out, b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// or is Kleene disjunction: yes if either is yes, else conditional if
// either is conditional (needing the params of each conditional side).
// A yes needs only its shorter proof; anything else needed both sides.
func or(a, b result) result {
	r := result{expires: a.expires, cut: a.cut, h: max(a.h, b.h)}
	r.deps(b)
	switch {
	case a.perm == HasPermission || b.perm == HasPermission:
		r.perm = HasPermission
		r.h = deciding(a, b, HasPermission)
	case a.perm == ConditionalPermission || b.perm == ConditionalPermission:
		r.perm = ConditionalPermission
		r.missing = unionMissing(condMissing(a), condMissing(b))
	}
	return r
}

// deciding is the height of the lower of a and b that answers perm, the
// value that decides alone.
func deciding(a, b result, perm Permissionship) int32 {
	switch {
	case a.perm != perm:
		return b.h
	case b.perm != perm:
		return a.h
	}
	return min(a.h, b.h)
}

// and is Kleene conjunction. A no needs only its lower side; anything
// else needed both.
func and(a, b result) result {
	r := result{expires: a.expires, cut: a.cut, h: max(a.h, b.h)}
	r.deps(b)
	switch {
	case a.perm == NoPermission || b.perm == NoPermission:
		r.perm = NoPermission
		r.h = deciding(a, b, NoPermission)
	case a.perm == ConditionalPermission || b.perm == ConditionalPermission:
		r.perm = ConditionalPermission
		r.missing = unionMissing(condMissing(a), condMissing(b))
	default:
		r.perm = HasPermission
	}
	return r
}

// not is Kleene negation: conditional stays conditional; the height is
// what deciding the negated answer took.
func not(a result) result {
	switch a.perm {
	case HasPermission:
		a.perm = NoPermission
	case NoPermission:
		a.perm = HasPermission
	}
	return a
}

func condMissing(a result) []string {
	if a.perm == ConditionalPermission {
		return a.missing
	}
	return nil
}

func (a result) checkResult() CheckResult {
	cr := CheckResult{Permissionship: a.perm}
	if a.perm == ConditionalPermission {
		cr.MissingContext = slices.Clone(a.missing)
	}
	return cr
}
