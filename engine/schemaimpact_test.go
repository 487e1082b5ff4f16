package engine_test

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
)

// impactSchema builds a schema with relations r1 (which allows the user
// wildcard), r2 (which also does when wideR2), parent on doc and the
// given permissions (name = expression, in order).
func impactSchema(perms []string, wideR2 bool) string {
	var b strings.Builder
	r2 := "user"
	if wideR2 {
		r2 = "user | user:*"
	}
	fmt.Fprintf(&b, "definition user {}\ndefinition group { relation member: user | group#member }\ndefinition doc {\n\trelation r1: user | user:* | group#member\n\trelation r2: %s\n\trelation parent: doc\n", r2)
	for i, p := range perms {
		fmt.Fprintf(&b, "\tpermission p%d = %s\n", i, p)
	}
	b.WriteString("}\n")
	return b.String()
}

// randomExpr returns an expression for permission i: relations, earlier
// permissions, arrows to any permission, joined by + & -.
func randomExpr(rng *rand.Rand, i, n, depth int) string {
	if depth == 0 || rng.Intn(3) == 0 {
		leaves := []string{"r1", "r2", fmt.Sprintf("parent->p%d", rng.Intn(n))}
		if i > 0 {
			leaves = append(leaves, fmt.Sprintf("p%d", rng.Intn(i)))
		}
		return leaves[rng.Intn(len(leaves))]
	}
	op := []string{" + ", " & ", " - "}[rng.Intn(3)]
	return "(" + randomExpr(rng, i, n, depth-1) + op + randomExpr(rng, i, n, depth-1) + ")"
}

// TestDryRunSchemaMatchesBruteForce is differential: for random schema
// changes on random data (wildcards included), the flips the dry run
// reports are exactly the (resource, permission, subject) checks whose
// answers differ between an engine under the old schema and one under
// the new, over every resource, permission and user, plus a user the data
// never names (whom only wildcards reach). A wildcard flip stands for
// every user but its excluded ones.
func TestDryRunSchemaMatchesBruteForce(t *testing.T) {
	const nPerms, nDocs, nUsers = 3, 6, 4
	wildcardFlips := 0
	for seed := int64(1); seed <= 16; seed++ {
		rng := rand.New(rand.NewSource(seed))
		oldPerms := make([]string, nPerms)
		newPerms := make([]string, nPerms)
		for i := range oldPerms {
			oldPerms[i] = randomExpr(rng, i, nPerms, 2)
			newPerms[i] = oldPerms[i]
			if rng.Intn(2) == 0 {
				newPerms[i] = randomExpr(rng, i, nPerms, 2)
			}
		}
		// Adding a subject type changes r2's meaning and flips nothing.
		oldText, newText := impactSchema(oldPerms, false), impactSchema(newPerms, rng.Intn(2) == 0)
		var rels []string
		seen := map[string]bool{}
		for len(rels) < 25 {
			var s string
			d := rng.Intn(nDocs)
			switch rng.Intn(6) {
			case 5:
				s = fmt.Sprintf("doc:d%d#r1@user:*", d)
			case 0:
				s = fmt.Sprintf("doc:d%d#parent@doc:d%d", d, rng.Intn(nDocs))
			case 1:
				s = fmt.Sprintf("doc:d%d#r1@group:g%d#member", d, rng.Intn(2))
			case 2:
				s = fmt.Sprintf("group:g%d#member@user:u%d", rng.Intn(2), rng.Intn(nUsers))
			case 3:
				s = fmt.Sprintf("doc:d%d#r2@user:u%d", d, rng.Intn(nUsers))
			default:
				s = fmt.Sprintf("doc:d%d#r1@user:u%d", d, rng.Intn(nUsers))
			}
			if !seen[s] {
				seen[s] = true
				rels = append(rels, s)
			}
		}
		before := openEngine(t, oldText, engine.Options{CacheBytes: -1})
		after := openEngine(t, oldText, engine.Options{CacheBytes: -1})
		for _, eng := range []*engine.Engine{before, after} {
			if err := writeRels(t, eng, store.OpTouch, rels...); err != nil {
				t.Fatal(err)
			}
		}
		dry, err := before.DryRunSchema(t.Context(), newText, engine.SchemaImpactOptions{MaxSamples: 100_000})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if _, _, err := after.WriteSchema(t.Context(), "test", newText); err != nil {
			t.Fatal(err)
		}
		// Brute force: every check, under both schemas.
		var want []string
		flipped := map[string]bool{}
		names := []string{"parent", "r1", "r2"}
		for i := 0; i < nPerms; i++ {
			names = append(names, fmt.Sprintf("p%d", i))
		}
		users := []string{"unnamed"}
		for u := 0; u < nUsers; u++ {
			users = append(users, fmt.Sprintf("u%d", u))
		}
		for _, perm := range names {
			for d := 0; d < nDocs; d++ {
				for _, u := range users {
					q := fmt.Sprintf("doc:d%d#%s@user:%s", d, perm, u)
					a, b := checkOf(t, before, q), checkOf(t, after, q)
					if a == b {
						continue
					}
					want = append(want, q)
					flipped[perm] = true
				}
			}
		}
		// The samples hold every flip (MaxSamples is above their number):
		// expand each wildcard flip to the users it stands for, and count
		// flips as the dry run does, a wildcard once.
		var got []string
		counts := map[string][3]int{}
		for _, f := range dry.Impact.Samples {
			c := counts[f.Permission]
			switch {
			case f.Before == engine.NoPermission:
				c[0]++
			case f.After == engine.NoPermission:
				c[1]++
			default:
				c[2]++
			}
			counts[f.Permission] = c
			if f.Subject.ID != "*" {
				got = append(got, fmt.Sprintf("%s#%s@%s", f.Resource, f.Permission, f.Subject))
				continue
			}
			wildcardFlips++
			for _, u := range users {
				if !slices.Contains(f.ExcludedIDs, u) {
					got = append(got, fmt.Sprintf("%s#%s@user:%s", f.Resource, f.Permission, u))
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("seed %d: %s\n=>\n%s\ndry run flips %q\nbrute force  %q", seed, oldText, newText, got, want)
		}
		for _, pi := range dry.Impact.Permissions {
			c := counts[pi.Permission]
			if pi.Granted != c[0] || pi.Revoked != c[1] || pi.Conditional != c[2] || pi.Truncated {
				t.Errorf("seed %d: %s#%s granted %d revoked %d conditional %d (truncated %t), its samples %v", seed, pi.ResourceType, pi.Permission, pi.Granted, pi.Revoked, pi.Conditional, pi.Truncated, c)
			}
			delete(flipped, pi.Permission)
		}
		for perm := range flipped {
			t.Errorf("seed %d: %s flips but the dry run did not evaluate it", seed, perm)
		}
		if dry.Impact.Truncated {
			t.Errorf("seed %d: truncated", seed)
		}
	}
	if wildcardFlips == 0 {
		t.Fatal("no wildcard flip in any seed: the wildcard half checked nothing")
	}
}

// TestDryRunSchema covers what the random test does not: nothing is
// written, a refusal is the refusal WriteSchema would give, a rename
// through @renamed_from flips nothing, bounds truncate, and an unchanged
// schema evaluates nothing.
func TestDryRunSchema(t *testing.T) {
	ctx := t.Context()
	eng := openEngine(t, renameV1, engine.Options{})
	if err := writeRels(t, eng, store.OpTouch, "doc:1#admin@user:anne", "doc:2#viewer@user:bob", "doc:3#viewer@user:carl", "doc:3#admin@group:g#member", "group:g#member@user:dora"); err != nil {
		t.Fatal(err)
	}
	head := func() string {
		r, err := eng.ReadSchema(ctx, engine.FullyConsistent())
		if err != nil {
			t.Fatal(err)
		}
		return r.Zookie + r.Text
	}
	start := head()

	dry, err := eng.DryRunSchema(ctx, renameV2, engine.SchemaImpactOptions{})
	if err != nil {
		t.Fatalf("rename: %v", err)
	}
	for _, pi := range dry.Impact.Permissions {
		if pi.Granted+pi.Revoked+pi.Conditional != 0 {
			t.Errorf("rename flips %+v", pi)
		}
	}

	viewOnlyViewers := strings.Replace(renameV1, "permission view = viewer + manage", "permission view = viewer", 1)
	dry, err = eng.DryRunSchema(ctx, viewOnlyViewers, engine.SchemaImpactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var flips []string
	for _, f := range dry.Impact.Samples {
		flips = append(flips, fmt.Sprintf("%s#%s@%s %v->%v", f.Resource, f.Permission, f.Subject, f.Before, f.After))
	}
	want := []string{"doc:1#view@user:anne HAS_PERMISSION->NO_PERMISSION", "doc:3#view@user:dora HAS_PERMISSION->NO_PERMISSION"}
	if !slices.Equal(flips, want) {
		t.Errorf("flips %q, want %q", flips, want)
	}
	if len(dry.Impact.Permissions) != 1 || dry.Impact.Permissions[0].Permission != "view" || dry.Impact.Permissions[0].Revoked != 2 || dry.Impact.Permissions[0].Resources != 3 {
		t.Errorf("impact %+v, want view with 2 revoked over 3 resources", dry.Impact.Permissions)
	}
	if len(dry.Changes) != 1 || dry.Changes[0].Kind.String() != "permission changed" {
		t.Errorf("changes %v", dry.Changes)
	}

	dry, err = eng.DryRunSchema(ctx, viewOnlyViewers, engine.SchemaImpactOptions{MaxResources: 2, MaxSamples: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.Impact.Truncated || dry.Impact.Resources != 2 || len(dry.Impact.Samples) != 1 || !dry.Impact.Permissions[0].Truncated {
		t.Errorf("bounded run: %+v", dry.Impact)
	}

	dry, err = eng.DryRunSchema(ctx, renameV1, engine.SchemaImpactOptions{})
	if err != nil || len(dry.Changes) != 0 || len(dry.Impact.Permissions) != 0 || dry.Impact.Resources != 0 {
		t.Errorf("unchanged schema: %+v, %v", dry, err)
	}

	dropAdmin := strings.Replace(strings.Replace(renameV1, "relation admin: user | group#member\n", "", 1), "permission manage = admin", "permission manage = nil", 1)
	if _, err := eng.DryRunSchema(ctx, dropAdmin, engine.SchemaImpactOptions{}); !errors.Is(err, engine.ErrUnsafeSchemaChange) {
		t.Errorf("orphaning change: %v, want ErrUnsafeSchemaChange", err)
	}
	if _, err := eng.DryRunSchema(ctx, "definition doc { relation x: nope }", engine.SchemaImpactOptions{}); !errors.Is(err, engine.ErrInvalidSchema) {
		t.Errorf("invalid schema: %v, want ErrInvalidSchema", err)
	}
	if head() != start {
		t.Error("a dry run wrote something")
	}
}
