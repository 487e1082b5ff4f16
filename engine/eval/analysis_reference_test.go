package eval

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/schema"
)

// referenceAnalysis is the analysis as first written: fixpoints over
// every relation until nothing changes and an n-by-n table per closure.
// Quadratic (and worse) in the schema's size, it is obviously right, and
// the linear analysis must agree with it.
type referenceAnalysis struct {
	contains             []map[kind]bool
	caveated, pure       []bool
	reverseCheck         []bool
	relevant, influenced [][]bool
}

func analyzeReference(s *schema.Schema) referenceAnalysis {
	n := s.NumRelations
	rels := make([]*schema.Relation, n)
	for _, d := range s.Definitions {
		for _, r := range d.Ordered {
			rels[r.Index] = r
		}
	}
	ra := referenceAnalysis{contains: make([]map[kind]bool, n), caveated: make([]bool, n), pure: make([]bool, n),
		reverseCheck: make([]bool, n), relevant: make([][]bool, n), influenced: make([][]bool, n)}
	for i, r := range rels {
		ra.contains[i] = map[kind]bool{{r.Definition.Name, r.Name}: true}
		for _, as := range r.Allowed {
			if as.Caveat != nil {
				ra.caveated[i] = true
			}
			switch {
			case as.Wildcard, as.Relation == "":
				ra.contains[i][kind{as.Type, ""}] = true
			default:
				ra.contains[i][kind{as.Type, as.Relation}] = true
			}
		}
		if hasSelf(r.Rewrite) {
			ra.contains[i][kind{r.Definition.Name, ""}] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for i, r := range rels {
			for _, ref := range positiveReferences(r) {
				for k := range ra.contains[ref.Index] {
					if !ra.contains[i][k] {
						ra.contains[i][k] = true
						changed = true
					}
				}
			}
			if !ra.caveated[i] {
				for _, ref := range allReferences(r) {
					if ra.caveated[ref.Index] {
						ra.caveated[i] = true
						changed = true
					}
				}
			}
		}
	}
	closure := func(i int, refs func(*schema.Relation) []*schema.Relation) []bool {
		in := make([]bool, n)
		in[i] = true
		for changed := true; changed; {
			changed = false
			for j, r := range rels {
				if !in[j] {
					continue
				}
				for _, ref := range refs(r) {
					if !in[ref.Index] {
						in[ref.Index] = true
						changed = true
					}
				}
			}
		}
		return in
	}
	for i := range rels {
		ra.relevant[i] = closure(i, positiveReferences)
		ra.influenced[i] = closure(i, allReferences)
	}
	for i := range rels {
		if ra.caveated[i] {
			continue
		}
		ra.pure[i] = true
		for j, in := range ra.relevant[i] {
			if in && !monotone(rels[j].Rewrite) {
				ra.pure[i] = false
			}
		}
	}
	for i, r := range rels {
		if !ra.pure[i] || r.Rewrite != nil {
			continue
		}
		for _, as := range r.Allowed {
			if as.Target != nil && ra.relevant[as.Target.Index][i] {
				ra.reverseCheck[i] = true
			}
		}
	}
	return ra
}

// TestAnalysisMatchesReference compares the linear analysis with the
// reference on random schemas (nested, cyclic, caveated) and the
// enterprise schema: every subject kind each relation can contain, the
// caveated, pure and reverse-check flags, and both closures.
func TestAnalysisMatchesReference(t *testing.T) {
	cs, err := schema.Compile("caveats", diffCaveats)
	if err != nil {
		t.Fatal(err)
	}
	schemas := []*schema.Schema{}
	src, err := os.ReadFile("testdata/enterprise.zed")
	if err != nil {
		t.Fatal(err)
	}
	ent, err := schema.Compile("enterprise.zed", string(src))
	if err != nil {
		t.Fatal(err)
	}
	schemas = append(schemas, ent)
	for i := range 300 {
		rng := rand.New(rand.NewPCG(uint64(i), 0x51ed))
		schemas = append(schemas, genSchema(rng, cs.Caveats, "analysis-"+strconv.Itoa(i)))
	}
	for si, s := range schemas {
		want := analyzeReference(s)
		got := analyze(s)
		kinds := map[kind]bool{}
		for _, c := range want.contains {
			for k := range c {
				kinds[k] = true
			}
		}
		kinds[kind{"nosuchtype", ""}] = true
		for i, r := range got.rels {
			name := r.Definition.Name + "#" + r.Name
			for k := range kinds {
				if g, w := got.canContain(r, k.typ, k.rel), want.contains[i][k]; g != w {
					t.Errorf("schema %d: canContain(%s, %v) = %v, want %v", si, name, k, g, w)
				}
			}
			if got.caveated[i] != want.caveated[i] || got.pure[i] != want.pure[i] || got.reverseCheck[i] != want.reverseCheck[i] {
				t.Errorf("schema %d: %s caveated/pure/reverseCheck = %v/%v/%v, want %v/%v/%v", si, name,
					got.caveated[i], got.pure[i], got.reverseCheck[i], want.caveated[i], want.pure[i], want.reverseCheck[i])
			}
			rel, inf := got.relevant.of(i), got.influenced.of(i)
			for j := range got.rels {
				if rel.has(j) != want.relevant[i][j] || inf.has(j) != want.influenced[i][j] {
					t.Errorf("schema %d: closures of %s at %d differ", si, name, j)
				}
			}
			e := &Evaluator{s: s, an: got}
			var wantKinds []SubjectKind
			for k := range want.contains[i] {
				wantKinds = append(wantKinds, SubjectKind{Type: k.typ, Relation: k.rel})
			}
			gotKinds := e.SubjectKinds(r.Definition.Name, r.Name)
			if !sameKinds(gotKinds, wantKinds) {
				t.Errorf("schema %d: SubjectKinds(%s) = %v, want %v", si, name, gotKinds, wantKinds)
			}
		}
		if t.Failed() {
			t.Fatalf("schema %d differs:\n%s", si, describeSchema(s))
		}
	}
}

func sameKinds(a, b []SubjectKind) bool {
	if len(a) != len(b) {
		return false
	}
	for _, k := range b {
		if !slices.Contains(a, k) {
			return false
		}
	}
	return true
}

// TestComponents checks the iterative strongly-connected-components walk
// on small graphs against reachability both ways.
func TestComponents(t *testing.T) {
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		n := 1 + rng.IntN(12)
		edges := make([][]int32, n)
		for range rng.IntN(3 * n) {
			x, y := rng.IntN(n), rng.IntN(n)
			edges[x] = append(edges[x], int32(y))
		}
		comp := schema.Components(edges)
		c := newClosures(edges)
		for x := range n {
			for y := range n {
				same := c.of(x).has(y) && c.of(y).has(x)
				if (comp[x] == comp[y]) != same {
					t.Fatalf("seed %d: %d and %d: same component %v, mutually reachable %v (edges %v)", seed, x, y, comp[x] == comp[y], same, edges)
				}
			}
		}
	}
}

// TestKindSetsBeyondCopiedKinds asks about more subject kinds than the
// lock-free map holds, so that the later ones are kept in the overflow
// map: answers are the same either way.
func TestKindSetsBeyondCopiedKinds(t *testing.T) {
	n := maxCopiedKinds + 200
	var b strings.Builder
	b.WriteString("definition user {}\ndefinition d0 { relation m: user }\n")
	for k := 1; k < n; k++ {
		fmt.Fprintf(&b, "definition d%d { relation m: user | d%d#m }\n", k, k-1)
	}
	s, err := schema.Compile("kinds", b.String())
	if err != nil {
		t.Fatal(err)
	}
	a := analyze(s)
	m := func(k int) *schema.Relation { return s.Definitions["d"+strconv.Itoa(k)].Relations["m"] }
	for round := range 2 { // the second round reads what the first kept
		for k := 0; k < n-1; k++ {
			typ := "d" + strconv.Itoa(k)
			if !a.canContain(m(k+1), typ, "m") || !a.canContain(m(n-1), typ, "m") {
				t.Fatalf("round %d: d%d#m is not found in the relations above it", round, k)
			}
			if k > 0 && a.canContain(m(0), typ, "m") {
				t.Fatalf("round %d: d%d#m found in d0#m", round, k)
			}
		}
	}
	if got := len(*a.contains.m.Load()); got != maxCopiedKinds {
		t.Fatalf("lock-free map holds %d kinds, want %d", got, maxCopiedKinds)
	}
	if len(a.contains.more) == 0 {
		t.Fatal("no kind reached the overflow map")
	}
}
