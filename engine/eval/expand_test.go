package eval

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// render prints a tree compactly: kind[object#relation: subjects](children).
func render(t *Tree) string {
	var b strings.Builder
	var walk func(t *Tree)
	walk = func(t *Tree) {
		fmt.Fprintf(&b, "%s[%s#%s", t.Kind, t.Object, t.Relation)
		if t.Truncated {
			b.WriteString(" ...")
		}
		for i, s := range t.Subjects {
			if i == 0 {
				b.WriteString(":")
			}
			b.WriteString(" " + s.Subject.String())
			if s.Caveat != nil {
				b.WriteString("[" + s.Caveat.Name + "]")
			}
		}
		b.WriteString("]")
		if t.Caveat != nil {
			b.WriteString("<" + t.Caveat.Name + ">") // the edge from the parent
		}
		if len(t.Children) > 0 {
			b.WriteString("(")
			for i, c := range t.Children {
				if i > 0 {
					b.WriteString(", ")
				}
				walk(c)
			}
			b.WriteString(")")
		}
	}
	walk(t)
	return b.String()
}

func TestExpand(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, constructsData...))
	tests := []struct {
		name  string
		obj   string
		perm  string
		depth int
		want  string
	}{
		{"relation with cycle", "group:eng", "member", 0,
			"leaf[group:eng#member: group:backend#member user:anne](leaf[group:backend#member: group:eng#member user:bob](leaf[group:eng#member ...]))"},
		{"one level", "group:eng", "member", 1,
			"leaf[group:eng#member: group:backend#member user:anne]"},
		{"exclusion", "group:all", "allowed", 0,
			"exclusion[group:all#allowed](leaf[group:all#member: user:*], leaf[group:all#banned: user:eve])"},
		{"computed only", "doc:1", "edit", 0,
			"union[doc:1#edit](leaf[doc:1#editor: user:jack])"},
		{"arrow", "folder:sub", "view", 2,
			"union[folder:sub#view](leaf[folder:sub#viewer], leaf[folder:sub#owner], union[folder:sub#view: folder:root](union[folder:root#view](leaf[folder:root#viewer ...], leaf[folder:root#owner ...], union[folder:root#view])))"},
		{"caveat shown", "doc:3", "viewer", 1,
			"leaf[doc:3#viewer: user:carl[flag]]"},
		{"expired hidden", "doc:4", "viewer", 0,
			"leaf[doc:4#viewer]"},
	}
	e := New(s, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree, err := e.Expand(context.Background(), Params{Reader: rd, Now: testNow}, ExpandRequest{Resource: mustObject(t, tt.obj), Permission: tt.perm, Depth: tt.depth})
			if err != nil {
				t.Fatal(err)
			}
			if got := render(tree); got != tt.want {
				t.Fatalf("Expand =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// treeValue evaluates an expansion for one subject with Check's meaning:
// a leaf holds sub when a stored subject names it (or its type's wildcard)
// under a caveat that holds, or a subject set's expansion holds it; a node
// reached through a relationship counts under that relationship's caveat;
// an arrow-all needs every object it followed; a truncated node (a cycle)
// counts as no, as Check takes a node on its own path.
func treeValue(t *testing.T, re *refEval, tr *Tree, sub tuple.SubjectRef) refVal {
	t.Helper()
	cv := func(c *tuple.Caveat) refVal {
		v, err := re.caveat(tuple.Relationship{Caveat: c})
		if err != nil {
			t.Fatalf("caveat %v: %v", c, err)
		}
		return v
	}
	edge := func(c *Tree) refVal { return refAnd(cv(c.Caveat), treeValue(t, re, c, sub)) }
	if sub.Type == tr.Object.Type && sub.ID == tr.Object.ID && sub.Relation == tr.Relation {
		return refVal{perm: HasPermission} // a subject set contains itself
	}
	if tr.Truncated {
		return refVal{perm: NoPermission}
	}
	var parts []refVal
	switch tr.Kind {
	case Leaf:
		for _, s := range tr.Subjects {
			if s.Subject == sub || (s.Subject.ID == tuple.Wildcard && sub.Relation == "" && s.Subject.Type == sub.Type) {
				parts = append(parts, cv(s.Caveat))
			}
		}
		fallthrough
	case Union:
		for _, c := range tr.Children {
			parts = append(parts, edge(c))
		}
		return refOr(parts...)
	case Intersection:
		if len(tr.Children) == 0 {
			return refVal{perm: NoPermission}
		}
		for _, c := range tr.Children {
			parts = append(parts, edge(c))
		}
		return refAnd(parts...)
	case Exclusion:
		return refAnd(edge(tr.Children[0]), refNot(edge(tr.Children[1])))
	}
	t.Fatalf("tree kind %v", tr.Kind)
	return refVal{}
}

// TestExpandAgreesWithCheck holds Expand to Check on random caveated
// graphs (those of TestDifferential): on every node, the expansion
// evaluated for a subject under the request's context gives Check's answer.
func TestExpandAgreesWithCheck(t *testing.T) {
	cs, err := schema.Compile("caveats.zed", diffCaveats)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := max(diffCases()/10, 1)
	compared, skipped := 0, 0
	defer func() {
		// The budget must leave most expansions in the comparison.
		t.Logf("%d expansions compared, %d over budget", compared, skipped)
		if skipped*10 > compared {
			t.Errorf("%d of %d expansions over budget", skipped, compared+skipped)
		}
	}()
	for i := range cases {
		seed := uint64(i)
		rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		s := genSchema(rng, cs.Caveats, "expand-"+strconv.Itoa(i))
		rels := genTuples(rng, s, testNow)
		reqCtx := diffContexts[rng.IntN(len(diffContexts))]
		rd := load(t, rels)
		e := New(s, Options{Concurrency: 1})
		var subjects []tuple.SubjectRef
		for _, u := range append(slices.Clone(diffUsers), tuple.Wildcard) {
			subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: u})
		}
		var allRels []*schema.Relation
		for _, name := range slices.Sorted(maps.Keys(s.Definitions)) {
			allRels = append(allRels, s.Definitions[name].Ordered...)
		}
		for k, r := range allRels {
			subjects = append(subjects, tuple.SubjectRef{Type: r.Definition.Name, ID: diffIDs[k%len(diffIDs)], Relation: r.Name})
		}
		for k, name := range slices.Sorted(maps.Keys(s.Definitions)) {
			if name != "user" { // plain objects, for self
				subjects = append(subjects, tuple.SubjectRef{Type: name, ID: diffIDs[k%len(diffIDs)]})
			}
		}
		loose := looseMissing(allRels)
		for _, now := range []time.Time{testNow, testNow.Add(2 * time.Hour)} {
			re := newRefEval(s, nil, now, reqCtx, nil)
			p := Params{Reader: rd, Now: now, Context: reqCtx}
			for _, r := range allRels {
				if r.Definition.Name == "user" {
					continue
				}
				for _, id := range diffIDs {
					obj := tuple.ObjectRef{Type: r.Definition.Name, ID: id}
					// Expansions repeat shared subtrees, so some grow
					// exponentially; those over budget are left out.
					bp := p
					bp.Reader = &budgetReader{Reader: rd, left: expandBudget}
					tree, err := e.Expand(ctx, bp, ExpandRequest{Resource: obj, Permission: r.Name})
					if errors.Is(err, errExpandBudget) {
						skipped++
						continue
					}
					if err != nil {
						t.Fatalf("seed %d: Expand(%s#%s): %v", seed, obj, r.Name, err)
					}
					compared++
					for _, sub := range subjects {
						got := treeValue(t, re, tree, sub)
						want, err := e.Check(ctx, p, CheckRequest{Resource: obj, Permission: r.Name, Subject: sub})
						if err != nil {
							t.Fatalf("seed %d: Check: %v", seed, err)
						}
						if got.perm != want.Permissionship || !sameMissing(want.MissingContext, got.missing, loose) {
							t.Fatalf("seed %d now %s ctx %v: Expand(%s#%s) evaluates to %v %v for %s, Check says %v %v\nschema:\n%s\nrelationships:\n%s\ntree: %s",
								seed, now.Format(time.Kitchen), reqCtx, obj, r.Name, got.perm, got.missing, sub, want.Permissionship, want.MissingContext,
								describeSchema(s), describeTuples(rels), render(tree))
						}
					}
				}
			}
		}
	}
}

// expandBudget is the number of store reads one expansion of
// TestExpandAgreesWithCheck may make.
const expandBudget = 400

var errExpandBudget = errors.New("test: expansion over budget")

// budgetReader fails every query after the first left ones.
type budgetReader struct {
	store.Reader
	left int
}

func (r *budgetReader) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if r.left--; r.left < 0 {
		return func(yield func(tuple.Relationship, error) bool) { yield(tuple.Relationship{}, errExpandBudget) }
	}
	return r.Reader.QueryRelationships(ctx, f, opts)
}
