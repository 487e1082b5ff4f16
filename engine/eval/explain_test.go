package eval

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
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
						if msg := checkExplanation(ctx, t, s, rels, x, p, req, maxDepth); msg != "" {
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
func checkExplanation(ctx context.Context, t *testing.T, s *schema.Schema, rels []tuple.Relationship, x *Explanation, p Params, req CheckRequest, maxDepth int) string {
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
		if w := x.Nearest; w != nil {
			// The nearest relationship that would grant does, once
			// written beside the data.
			with := []tuple.Relationship{*w}
			for _, r := range rels {
				if r.Key() != w.Key() {
					with = append(with, r)
				}
			}
			got, err := New(s, Options{Concurrency: 1, MaxDepth: maxDepth}).Check(ctx, Params{Reader: load(t, with), Now: p.Now, Context: p.Context}, req)
			if err != nil || got.Permissionship != HasPermission {
				return "the nearest grant " + w.String() + " written gives " + got.Permissionship.String() + " (err " + errString(err) + ")"
			}
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

// explainSchema has one of every rewrite, a caveat, an expiring relation,
// an arrow whose subjects may lack the target, and self.
const explainSchema = `
use expiration
use self
caveat under(n int, limit int) { n < limit }
definition user {
	permission me = self
}
definition group {
	relation member: user | user with under | user with expiration | group#member
}
definition folder {
	relation parent: folder | group
	relation viewer: user
	permission view = viewer + parent->view
}
definition doc {
	relation folder: folder
	relation viewer: user | user:* | group#member
	relation banned: user | group#member
	relation approved: user
	permission view = (viewer + folder->view) - banned
	permission approved_view = view & approved
	permission nothing = nil
}
`

// TestExplainReasons: each way an answer is decided shows in the
// explanation with its reason and the facts behind it.
func TestExplainReasons(t *testing.T) {
	ctx := context.Background()
	s := mustCompile(t, explainSchema)
	rels := mustParse(t,
		"doc:d1#viewer@group:eng#member",
		"group:eng#member@user:ann",
		"group:eng#member@user:bob",
		"group:eng#member@user:cat[under:{\"limit\":10}]",
		"group:eng#member@user:old[expiration:2026-06-01T11:00:00Z]",
		"doc:d1#banned@user:bob",
		"doc:d1#approved@user:ann",
		"doc:d2#folder@folder:f1",
		"folder:f1#parent@folder:f0",
		"folder:f1#parent@group:eng",
		"folder:f0#viewer@user:dan",
		"folder:loop#parent@folder:loop",
		"doc:d3#folder@folder:loop",
		"folder:x0#viewer@user:deep",
		"folder:x1#parent@folder:x0",
		"folder:x2#parent@folder:x1",
		"folder:x3#parent@folder:x2",
	)
	rd := load(t, rels)
	type want struct {
		reason ExplainReason
		// check inspects a step with reason: some step must pass it.
		check func(n *ExplainNode) string // "" when n is right
	}
	cases := []struct {
		name     string
		q        string
		ctx      map[string]any
		maxDepth int
		perm     Permissionship
		wantErr  bool
		want     []want
		// nearest is the relationship that would grant a denial ("" for
		// none).
		nearest string
	}{
		{name: "grant through a subject set", q: "doc:d1#view@user:ann", perm: HasPermission},
		{name: "missing, with the relationship that would grant", q: "doc:d1#view@user:eve", perm: NoPermission, nearest: "doc:d1#viewer@user:eve",
			want: []want{{ReasonMissing, func(n *ExplainNode) string {
				if n.Wanted == nil || n.Wanted.String() != "doc:d1#viewer@user:eve" {
					return "wanted " + fmt.Sprint(n.Wanted)
				}
				return ""
			}}}},
		{name: "excluded, with the excluding path", q: "doc:d1#view@user:bob", perm: NoPermission,
			want: []want{{ReasonExcluded, func(n *ExplainNode) string {
				if len(n.Children) != 2 || n.Children[1].Permissionship != HasPermission || !hasRelationship(n.Children[1], "doc:d1#banned@user:bob") {
					return "no excluding path:\n" + dumpExplain(n, "")
				}
				return ""
			}}}},
		{name: "caveat false, with the values used", q: "doc:d1#view@user:cat", ctx: map[string]any{"n": 12, "other": 1}, perm: NoPermission, nearest: "doc:d1#viewer@user:cat",
			want: []want{{ReasonCaveatFalse, func(n *ExplainNode) string {
				c := n.Caveat
				if c == nil || c.Name != "under" || c.Expression != "n < limit" || c.Result != NoPermission ||
					fmt.Sprint(c.Context) != "map[limit:10 n:12]" {
					return fmt.Sprintf("caveat %+v", c)
				}
				return ""
			}}}},
		{name: "conditional, with the missing context", q: "doc:d1#view@user:cat", perm: ConditionalPermission,
			want: []want{{ReasonCaveatMissing, func(n *ExplainNode) string {
				if fmt.Sprint(n.MissingContext) != "[n]" || n.Caveat == nil || fmt.Sprint(n.Caveat.Missing) != "[n]" {
					return fmt.Sprintf("missing %v, caveat %+v", n.MissingContext, n.Caveat)
				}
				return ""
			}}}},
		{name: "expired, with when", q: "doc:d1#view@user:old", perm: NoPermission, nearest: "doc:d1#viewer@user:old",
			want: []want{{ReasonExpired, func(n *ExplainNode) string {
				if n.Relationship == nil || !n.Relationship.Expiration.Equal(testNow.Add(-time.Hour)) {
					return fmt.Sprint("relationship ", n.Relationship)
				}
				return ""
			}}}},
		{name: "arrow to a subject without the target", q: "doc:d2#view@user:eve", perm: NoPermission, nearest: "doc:d2#viewer@user:eve",
			want: []want{{ReasonNoTarget, func(n *ExplainNode) string {
				if n.Relationship == nil || n.Relationship.String() != "folder:f1#parent@group:eng" {
					return fmt.Sprint("relationship ", n.Relationship)
				}
				return ""
			}}}},
		{name: "grant through an arrow", q: "doc:d2#view@user:dan", perm: HasPermission},
		{name: "cycle", q: "doc:d3#view@user:eve", perm: NoPermission, nearest: "doc:d3#viewer@user:eve", want: []want{{ReasonCycle, nil}}},
		{name: "intersection denied by one side", q: "doc:d1#approved_view@user:cat", ctx: map[string]any{"n": 1}, perm: NoPermission, nearest: "doc:d1#approved@user:cat",
			want: []want{{ReasonMissing, func(n *ExplainNode) string {
				if n.Wanted == nil || n.Wanted.String() != "doc:d1#approved@user:cat" {
					return "wanted " + fmt.Sprint(n.Wanted)
				}
				return ""
			}}}},
		{name: "no one relationship grants an intersection missing two", q: "doc:d1#approved_view@user:eve", perm: NoPermission,
			want: []want{{ReasonMissing, nil}}},
		{name: "subject type not allowed", q: "doc:d1#view@folder:f0", perm: NoPermission, want: []want{{ReasonNotAllowed, nil}}},
		{name: "nil", q: "doc:d1#nothing@user:ann", perm: NoPermission},
		{name: "self", q: "user:ann#me@user:ann", perm: HasPermission},
		{name: "not self", q: "user:ann#me@user:bob", perm: NoPermission, want: []want{{ReasonNotSelf, nil}}},
		{name: "the subject set itself", q: "group:eng#member@group:eng#member", perm: HasPermission, want: []want{{ReasonSubjectItself, nil}}},
		{name: "depth limit, with the path", q: "folder:x3#view@user:deep", maxDepth: 4, wantErr: true,
			want: []want{{ReasonDepthLimit, func(n *ExplainNode) string {
				if got := strings.Join(n.Path, " "); got != "folder:x3#view folder:x2#view folder:x1#view folder:x0#view folder:x0#viewer" {
					return "path " + got
				}
				return ""
			}}}},
		{name: "within the depth limit", q: "folder:x3#view@user:deep", maxDepth: 5, perm: HasPermission},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustParse(t, c.q)[0]
			req := CheckRequest{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}
			p := Params{Reader: rd, Now: testNow, Context: c.ctx}
			e := New(s, Options{MaxDepth: c.maxDepth})
			x, err := e.Explain(ctx, p, req)
			if c.wantErr {
				if !errors.Is(err, ErrMaxDepth) || x == nil {
					t.Fatalf("Explain = %v, %v; want a depth failure with its explanation", x, err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if x.Permissionship != c.perm {
				t.Fatalf("answer %v, want %v:\n%s", x.Permissionship, c.perm, dumpExplain(x.Root, ""))
			}
			for _, w := range c.want {
				// Some step with the reason must pass the check.
				var msgs []string
				for _, n := range findReasons(x.Root, w.reason) {
					msg := ""
					if w.check != nil {
						msg = w.check(n)
					}
					if msg == "" {
						msgs = nil
						break
					}
					msgs = append(msgs, msg)
				}
				if msgs != nil || findReason(x.Root, w.reason) == nil {
					t.Errorf("no right %q step (%v) in\n%s", w.reason, msgs, dumpExplain(x.Root, ""))
				}
			}
			if !c.wantErr && c.perm == NoPermission {
				got := ""
				if x.Nearest != nil {
					got = x.Nearest.String()
				}
				if got != c.nearest {
					t.Errorf("nearest grant %q, want %q", got, c.nearest)
				}
			} else if x.Nearest != nil {
				t.Errorf("nearest grant %v on %v", x.Nearest, x.Permissionship)
			}
			if msg := checkExplanation(ctx, t, s, rels, x, p, req, c.maxDepth); !c.wantErr && msg != "" {
				t.Error(msg)
			}
		})
	}
}

func findReason(n *ExplainNode, r ExplainReason) *ExplainNode {
	if n.Reason == r {
		return n
	}
	for _, c := range n.Children {
		if f := findReason(c, r); f != nil {
			return f
		}
	}
	return nil
}

func findReasons(n *ExplainNode, r ExplainReason) []*ExplainNode {
	var out []*ExplainNode
	if n.Reason == r {
		out = append(out, n)
	}
	for _, c := range n.Children {
		out = append(out, findReasons(c, r)...)
	}
	return out
}

func hasRelationship(n *ExplainNode, rel string) bool {
	if n.Relationship != nil && n.Relationship.String() == rel {
		return true
	}
	for _, c := range n.Children {
		if hasRelationship(c, rel) {
			return true
		}
	}
	return false
}

// TestExplainTruncated: past the size limit, denied branches are shown
// without their children (Truncated), while a witness stays whole and
// still proves its grant.
func TestExplainTruncated(t *testing.T) {
	ctx := context.Background()
	s := mustCompile(t, explainSchema)
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf("doc:wide#viewer@group:g%02d#member", i), fmt.Sprintf("group:g%02d#member@user:u%02d", i, i))
	}
	lines = append(lines, "doc:wide#banned@group:g39#member")
	rels := mustParse(t, lines...)
	rd := load(t, rels)
	e := New(s, Options{})
	e.explainNodes = 10
	for _, c := range []struct {
		who       string
		perm      Permissionship
		truncated bool
	}{
		{"user:nobody", NoPermission, true},
		{"user:u05", HasPermission, false}, // the subtraction's denial stays whole inside the witness
	} {
		r := mustParse(t, "doc:wide#view@"+c.who)[0]
		req := CheckRequest{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}
		p := Params{Reader: rd, Now: testNow}
		x, err := e.Explain(ctx, p, req)
		if err != nil || x.Permissionship != c.perm {
			t.Fatalf("%s: %v, %v", c.who, x, err)
		}
		nodes, truncated := countNodes(x.Root)
		if truncated != c.truncated || (c.truncated && nodes > 2*e.explainNodes) {
			t.Errorf("%s: %d nodes, truncated %v; want truncated %v:\n%s", c.who, nodes, truncated, c.truncated, dumpExplain(x.Root, ""))
		}
		if msg := checkExplanation(ctx, t, s, rels, x, p, req, 0); msg != "" {
			t.Errorf("%s: %s", c.who, msg)
		}
	}
}

func countNodes(n *ExplainNode) (int, bool) {
	count, truncated := 1, n.Truncated
	for _, c := range n.Children {
		k, tr := countNodes(c)
		count += k
		truncated = truncated || tr
	}
	return count, truncated
}
