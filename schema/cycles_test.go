package schema

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// referenceCycles is findCycles as first written: a shortest-cycle search
// from every permission over the whole definition. Quadratic, obviously
// right; the component-bounded search must report the same.
func referenceCycles(def *Definition) []string {
	edges := map[*Relation][]*Relation{}
	for _, r := range def.Ordered {
		if r.Rewrite != nil {
			edges[r] = computedPermissions(r.Rewrite, nil)
		}
	}
	all := map[*Relation]int{} // one component: no restriction
	reported := map[*Relation]bool{}
	var out []string
	for _, r := range def.Ordered {
		if !r.IsPermission || reported[r] {
			continue
		}
		path := cyclePath(r, edges, all)
		if path == nil {
			continue
		}
		names := []string{}
		for _, p := range path {
			reported[p] = true
			names = append(names, p.Name)
		}
		out = append(out, fmt.Sprintf("permission %q refers to itself (%s)", r.Name, strings.Join(append(names, r.Name), " -> ")))
	}
	return out
}

// TestCyclesMatchReference writes random definitions whose permissions
// name each other (cycles of every length, self-references, chains) and
// compares the cycles reported with the reference search's.
func TestCyclesMatchReference(t *testing.T) {
	cyclic := 0
	for seed := range 300 {
		rng := rand.New(rand.NewPCG(uint64(seed), 3))
		n := 1 + rng.IntN(12)
		var b strings.Builder
		b.WriteString("definition user {}\ndefinition doc {\n  relation r: user\n")
		for i := range n {
			fmt.Fprintf(&b, "  permission p%d = r", i)
			for range rng.IntN(3) {
				fmt.Fprintf(&b, " %s p%d", [...]string{"+", "&", "-"}[rng.IntN(3)], rng.IntN(n))
			}
			b.WriteString("\n")
		}
		b.WriteString("}\n")
		src := b.String()
		// The reference runs on the compiled definition, rebuilt without
		// the cycle check's verdict: compile, and read the rewrites.
		_, err := Compile("cycles", src)
		var got []string
		var el ErrorList
		if errors.As(err, &el) {
			for _, e := range el {
				if m := e.Msg; strings.Contains(m, "refers to itself") {
					got = append(got, strings.TrimSuffix(m, "; a permission cannot be defined in terms of itself"))
				}
			}
		} else if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		s := parseAndCheckIgnoringCycles(t, src)
		want := referenceCycles(s.Definitions["doc"])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: cycles %q, want %q\n%s", seed, got, want, src)
		}
		if len(want) > 0 {
			cyclic++
		}
	}
	if cyclic < 100 {
		t.Fatalf("only %d of 300 definitions had cycles: the test compares too little", cyclic)
	}
}

// parseAndCheckIgnoringCycles compiles src up to the cycle check, so the
// reference sees the definitions the cycle check saw.
func parseAndCheckIgnoringCycles(t *testing.T, src string) *Schema {
	t.Helper()
	f, err := Parse("cycles", src)
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{files: []*File{f}, s: &Schema{Definitions: map[string]*Definition{}, Caveats: map[string]*Caveat{}, Source: src},
		defs: map[string]*DefinitionDecl{}, partials: map[string]*PartialDecl{}, uses: map[string]bool{}}
	c.collect()
	c.resolveRelations()
	c.resolveAnnotations()
	c.resolvePermissions()
	return c.s
}

// typedChain is a chain of n definitions under "use typechecking", each
// permission annotated: every annotation is checked by a walk down the
// chain.
func typedChain(n int) string {
	var b strings.Builder
	b.WriteString("use typechecking\ndefinition user {}\ndefinition d0 {\n  relation viewer: user\n  permission view: user = viewer\n}\n")
	for k := 1; k < n; k++ {
		fmt.Fprintf(&b, "definition d%d {\n  relation prev: d%d\n  relation viewer: user | d%d#view\n  permission view: user = viewer + prev->view\n}\n", k, k-1, k-1)
	}
	return b.String()
}

// TestTypecheckChain: checking the annotations of a long chain walks
// without recursion, and a schema whose annotations would take more than
// maxTypecheckSteps to check is refused with an error that says so.
func TestTypecheckChain(t *testing.T) {
	defer func(n int) { typecheckSteps = n }(typecheckSteps)
	typecheckSteps = 1_000_000 // a chain of n costs about 3.5 n² steps
	if _, err := Compile("chain", typedChain(300)); err != nil {
		t.Fatalf("300 annotated definitions: %v", err)
	}
	_, err := Compile("chain", typedChain(1_000))
	if err == nil || !strings.Contains(err.Error(), "type annotations take more than") {
		t.Fatalf("1,000 annotated definitions: %v, want the step limit", err)
	}
}

// partialChain is n partials, each including the one before `copies`
// times, and a definition including the last: copies 2 expands to 2^n
// members from a few hundred bytes.
func partialChain(n, copies int) string {
	var b strings.Builder
	b.WriteString("use partial\ndefinition user {}\npartial p0 { relation r: user }\n")
	for k := 1; k <= n; k++ {
		fmt.Fprintf(&b, "partial p%d {%s }\n", k, strings.Repeat(fmt.Sprintf(" ...p%d", k-1), copies))
	}
	fmt.Fprintf(&b, "definition doc { ...p%d }\n", n)
	return b.String()
}

// TestPartialExpansionBounded: partials that multiply, or nest too deep,
// are refused with an error instead of expanding without bound.
func TestPartialExpansionBounded(t *testing.T) {
	for _, tc := range []struct {
		name        string
		n, copies   int
		want        string
		wantMaxErrs int
	}{
		{"doubling 40 times", 40, 2, "members once partials are expanded", maxCheckErrors + 1},
		{"nested 150 deep", 150, 1, "partials nested more than 100 deep", 1},
		{"nested 50 deep", 50, 1, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile("partials", partialChain(tc.n, tc.copies))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var el ErrorList
			if !errors.As(err, &el) || !strings.Contains(err.Error(), tc.want) || len(el) > tc.wantMaxErrs {
				t.Fatalf("Compile: %d errors, %.300v; want at most %d with %q", len(el), err, tc.wantMaxErrs, tc.want)
			}
		})
	}
}
