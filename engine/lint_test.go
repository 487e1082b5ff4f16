package engine_test

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/schema"
)

// TestLintUnreachableIsSound is differential: a permission that
// schema.Lint reports as never granted is denied to every subject on
// random data (brute force over every resource and user), for random
// schemas mixing nil, relations that hold only wildcards, intersections
// and exclusions. (Lint may miss unreachable permissions; it must never
// flag a reachable one.)
func TestLintUnreachableIsSound(t *testing.T) {
	const nPerms, nDocs, nUsers = 4, 4, 3
	flagged := 0
	for seed := int64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewSource(seed))
		var b strings.Builder
		b.WriteString("definition user {}\ndefinition folder { relation v: user }\ndefinition doc {\n\trelation r1: user\n\trelation r2: user\n\trelation empty: folder:*\n\trelation parent: doc\n")
		var gen func(i, depth int) string
		gen = func(i, depth int) string {
			if depth == 0 || rng.Intn(3) == 0 {
				leaves := []string{"r1", "r2", "nil", "nil", "empty", fmt.Sprintf("parent->p%d", rng.Intn(nPerms))}
				if i > 0 {
					leaves = append(leaves, fmt.Sprintf("p%d", rng.Intn(i)))
				}
				return leaves[rng.Intn(len(leaves))]
			}
			return "(" + gen(i, depth-1) + []string{" + ", " & ", " - "}[rng.Intn(3)] + gen(i, depth-1) + ")"
		}
		for i := 0; i < nPerms; i++ {
			fmt.Fprintf(&b, "\tpermission p%d = %s\n", i, gen(i, 2))
		}
		b.WriteString("}\n")
		src := b.String()
		s, err := schema.Compile("t.zed", src)
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, src)
		}
		ws, err := schema.Lint(s, nil, schema.LintOptions{Disable: []string{schema.LintUnusedRelation, schema.LintWildcardArrow}})
		if err != nil {
			t.Fatal(err)
		}
		eng := openEngine(t, src, engine.Options{CacheBytes: -1})
		var rels []string
		for i := 0; i < 20; i++ {
			d := rng.Intn(nDocs)
			switch rng.Intn(4) {
			case 0:
				rels = append(rels, fmt.Sprintf("doc:d%d#parent@doc:d%d", d, rng.Intn(nDocs)))
			case 1:
				rels = append(rels, fmt.Sprintf("doc:d%d#empty@folder:*", d))
			default:
				rels = append(rels, fmt.Sprintf("doc:d%d#r%d@user:u%d", d, 1+rng.Intn(2), rng.Intn(nUsers)))
			}
		}
		if err := writeRels(t, eng, store.OpTouch, dedupe(rels)...); err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			var perm string
			if _, err := fmt.Sscanf(w.Msg, "permission %q", &perm); err != nil {
				t.Fatalf("warning %q: %v", w.Msg, err)
			}
			flagged++
			for d := 0; d < nDocs; d++ {
				for u := 0; u < nUsers; u++ {
					q := fmt.Sprintf("doc:d%d#%s@user:u%d", d, perm, u)
					if got := checkOf(t, eng, q); got != engine.NoPermission {
						t.Errorf("seed %d: lint says %s is never granted, but check %s = %v\n%s", seed, perm, q, got, src)
					}
				}
			}
		}
	}
	if flagged == 0 {
		t.Fatal("no permission was flagged: the test checked nothing")
	}
}
