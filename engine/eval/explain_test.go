package eval

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// TestExplainDifferential holds Explain to Check on random schemas and
// data (the generator of TestDifferential): the same verdict (or the same
// depth failure) for every relation, object and subject; a grant's
// relationships alone reproduce the grant in a fresh store (the witness
// is a proof); a denial names a failing branch; a conditional answer a
// caveat that needs context.
func TestExplainDifferential(t *testing.T) {
	cs, err := schema.Compile("caveats.zed", diffCaveats)
	if err != nil {
		t.Fatal(err)
	}
	cases := diffCases() / 15 // each case checks every question twice and replays every grant
	first := 0
	if v, err := strconv.Atoi(os.Getenv("PEMBA_DIFF_SEED")); err == nil {
		first, cases = v, 1
	}
	for i := first; i < first+cases; i++ {
		seed := uint64(i)
		rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		s := genSchema(rng, cs.Caveats, "diff-"+strconv.Itoa(i))
		rels := genTuples(rng, s, testNow)
		reqCtx := diffContexts[rng.IntN(len(diffContexts))]
		if !explainDiffCase(t, seed, s, rels, reqCtx) {
			t.Logf("schema of seed %d:\n%s", seed, describeSchema(s))
			t.Logf("relationships:\n%s", describeTuples(rels))
			return
		}
	}
}

func explainDiffCase(t *testing.T, seed uint64, s *schema.Schema, rels []tuple.Relationship, reqCtx map[string]any) bool {
	t.Helper()
	ctx := context.Background()
	rd := load(t, rels)
	universe, allRels := diffWorld(s)
	subjects := []tuple.SubjectRef{{Type: "user", ID: tuple.Wildcard}, {Type: "user", ID: "nobody"}}
	for _, u := range diffUsers {
		subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: u})
	}
	for i, r := range allRels {
		subjects = append(subjects, tuple.SubjectRef{Type: r.Definition.Name, ID: diffIDs[i%2], Relation: r.Name})
	}
	loose := looseMissing(allRels)
	// A small depth limit makes some answers fail on depth, which
	// Explain must reproduce.
	for _, maxDepth := range []int{0, 4} {
		e := New(s, Options{Concurrency: 1, MaxDepth: maxDepth})
		for _, now := range []time.Time{testNow, testNow.Add(2 * time.Hour)} {
			p := Params{Reader: rd, Now: now, Context: reqCtx}
			for _, sub := range subjects {
				for _, r := range allRels {
					for _, id := range universe[r.Definition.Name] {
						req := CheckRequest{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Permission: r.Name, Subject: sub}
						want, werr := e.Check(ctx, p, req)
						x, xerr := e.Explain(ctx, p, req)
						where := func() string {
							return "seed " + strconv.FormatUint(seed, 10) + " depth " + strconv.Itoa(maxDepth) + " now " + now.Format(time.Kitchen) +
								": " + req.Resource.String() + "#" + r.Name + "@" + sub.String()
						}
						if (werr != nil) != (xerr != nil) || (werr != nil && !errors.Is(xerr, ErrMaxDepth)) {
							t.Errorf("%s: Check err %v, Explain err %v", where(), werr, xerr)
							return false
						}
						if werr != nil {
							if x == nil || !hasReason(x.Root, ReasonDepthLimit) {
								t.Errorf("%s: depth failure without a depth-limit node", where())
								return false
							}
							continue
						}
						if x.Permissionship != want.Permissionship || !sameMissing(x.MissingContext, want.MissingContext, loose) && !sameMissing(want.MissingContext, x.MissingContext, loose) {
							t.Errorf("%s: Explain %v %v, Check %v %v", where(), x.Permissionship, x.MissingContext, want.Permissionship, want.MissingContext)
							return false
						}
						if msg := checkExplanation(ctx, t, s, x, p, req, maxDepth); msg != "" {
							t.Errorf("%s: %s", where(), msg)
							return false
						}
					}
				}
			}
		}
	}
	return true
}

// checkExplanation verifies the shape an explanation promises: a grant
// replays from its relationships alone; a denial names a failing branch;
// a conditional answer a caveat missing context. It returns what is wrong,
// or "".
func checkExplanation(ctx context.Context, t *testing.T, s *schema.Schema, x *Explanation, p Params, req CheckRequest, maxDepth int) string {
	switch x.Permissionship {
	case HasPermission:
		rd := load(t, x.Relationships())
		got, err := New(s, Options{Concurrency: 1, MaxDepth: maxDepth}).Check(ctx, Params{Reader: rd, Now: p.Now, Context: p.Context}, req)
		if err != nil || got.Permissionship != HasPermission {
			return "the witness " + describeTuples(x.Relationships()) + " alone gives " + got.Permissionship.String() + " (err " + errString(err) + ")"
		}
	case NoPermission:
		if !failing(x.Root) {
			return "a denial that names no failing branch"
		}
	case ConditionalPermission:
		if !hasReason(x.Root, ReasonCaveatMissing) {
			return "a conditional answer without a caveat needing context:\n" + dumpExplain(x.Root, "")
		}
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

func hasReason(n *ExplainNode, r ExplainReason) bool {
	if n.Reason == r {
		return true
	}
	for _, c := range n.Children {
		if hasReason(c, r) {
			return true
		}
	}
	return false
}

// failing reports whether a node below n (or n) says why something does
// not grant.
func failing(n *ExplainNode) bool {
	if n.Kind == ExplainNil || (n.Reason != ReasonNone && n.Reason != ReasonSubjectItself) {
		return true
	}
	for _, c := range n.Children {
		if failing(c) {
			return true
		}
	}
	return false
}

// dumpExplain renders n one node per line, for failure messages.
func dumpExplain(n *ExplainNode, indent string) string {
	s := indent + n.Kind.String() + " " + n.Object.String() + "#" + n.Relation
	if n.Kind == ExplainArrow && n.ArrowAll {
		s += ".all(" + n.Target + ")"
	} else if n.Kind == ExplainArrow {
		s += "->" + n.Target
	}
	s += " = " + n.Permissionship.String()
	if n.Reason != ReasonNone {
		s += " (" + n.Reason.String() + ")"
	}
	if n.Relationship != nil {
		s += " via " + n.Relationship.String()
	}
	if n.Repeat {
		s += " [repeat]"
	}
	s += "\n"
	for _, c := range n.Children {
		s += dumpExplain(c, indent+"  ")
	}
	return s
}
