package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// diffSchema has every construct a change can reach a permission
// through: nested subject sets, arrows over a folder tree, exclusion,
// intersection, a wildcard, a caveat and expiring relationships.
const diffSchema = `
use expiration

caveat ok(flag bool) {
  flag
}

definition user {}

definition group {
  relation member: user | group#member | user with expiration
}

definition folder {
  relation parent: folder
  relation viewer: user | group#member
  permission view = viewer + parent->view
}

definition doc {
  relation folder: folder
  relation viewer: user | user:* | group#member | user with ok
  relation editor: user | group#member
  relation banned: user | group#member
  relation reviewer: user
  permission edit = editor - banned
  permission view = (viewer + edit + folder->view) - banned
  permission review = reviewer & view
}
`

// diffWorld generates random relationships over a small universe.
type diffWorld struct {
	rng    *rand.Rand
	users  []string
	groups int
	docs   int
	dirs   int
}

func (w *diffWorld) user() string { return w.users[w.rng.IntN(len(w.users))] }

// rel returns a random relationship the schema accepts; group and folder
// nesting only point to lower numbers, so the data has no cycles.
func (w *diffWorld) rel(now time.Time) string {
	r := w.rng
	g := r.IntN(w.groups)
	d := r.IntN(w.docs)
	f := r.IntN(w.dirs)
	switch r.IntN(12) {
	case 0:
		if r.IntN(2) == 0 {
			exp := now.Add(time.Duration(1+r.IntN(4)) * time.Minute)
			return fmt.Sprintf("group:g%d#member@user:%s[expiration:%s]", g, w.user(), exp.Format(time.RFC3339))
		}
		return fmt.Sprintf("group:g%d#member@user:%s", g, w.user())
	case 1:
		if g == 0 {
			return fmt.Sprintf("group:g0#member@user:%s", w.user())
		}
		return fmt.Sprintf("group:g%d#member@group:g%d#member", g, r.IntN(g))
	case 2:
		exp := now.Add(time.Duration(1+r.IntN(4)) * time.Minute)
		return fmt.Sprintf("group:g%d#member@user:%s[expiration:%s]", g, w.user(), exp.Format(time.RFC3339))
	case 3:
		if f == 0 {
			return fmt.Sprintf("folder:f0#viewer@user:%s", w.user())
		}
		return fmt.Sprintf("folder:f%d#parent@folder:f%d", f, r.IntN(f))
	case 4:
		return fmt.Sprintf("folder:f%d#viewer@group:g%d#member", f, g)
	case 5:
		return fmt.Sprintf("doc:d%d#folder@folder:f%d", d, f)
	case 6:
		if r.IntN(4) == 0 {
			return fmt.Sprintf("doc:d%d#viewer@user:*", d)
		}
		return fmt.Sprintf("doc:d%d#viewer@user:%s", d, w.user())
	case 7:
		return fmt.Sprintf("doc:d%d#viewer@user:%s[ok]", d, w.user())
	case 8:
		return fmt.Sprintf("doc:d%d#editor@group:g%d#member", d, g)
	case 9:
		return fmt.Sprintf("doc:d%d#banned@user:%s", d, w.user())
	case 10:
		return fmt.Sprintf("doc:d%d#banned@group:g%d#member", d, g)
	}
	return fmt.Sprintf("doc:d%d#reviewer@user:%s", d, w.user())
}

type diffFixture struct {
	*fixture
	world   *diffWorld
	live    []string // relationships written, some since deleted
	zookies []string
}

func newDiffFixture(t testing.TB, seed uint64) *diffFixture {
	return newDiffFixtureWith(t, seed, engine.Options{})
}

// newDiffFixtureWith is newDiffFixture with engine options (the clock is
// the fixture's).
func newDiffFixtureWith(t testing.TB, seed uint64, opts engine.Options) *diffFixture {
	clk := newClock()
	st := memstore.New(memstore.Options{Now: clk.Now, GCWindow: time.Hour})
	t.Cleanup(func() { st.Close() })
	opts.Now = clk.Now
	eng, err := engine.Open(t.Context(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	f := &fixture{t: t, ctx: t.Context(), st: st, eng: eng, clk: clk}
	if _, _, err := eng.WriteSchema(f.ctx, "test", diffSchema); err != nil {
		t.Fatal(err)
	}
	w := &diffWorld{rng: rand.New(rand.NewPCG(seed, 19)), users: []string{"u0", "u1", "u2", "u3", "u4"}, groups: 4, docs: 5, dirs: 3}
	return &diffFixture{fixture: f, world: w}
}

// step writes one random batch: new relationships, deletions of written
// ones, and sometimes a clock advance that expires grants.
func (f *diffFixture) step() {
	f.t.Helper()
	r := f.world.rng
	if r.IntN(5) == 0 {
		f.clk.Advance(time.Duration(1+r.IntN(3)) * time.Minute)
	}
	var ups []engine.Update
	seen := map[tuple.Key]bool{}
	add := func(op store.Op, s string) {
		rel := mustParse(f.t, s)
		if !seen[rel.Key()] {
			seen[rel.Key()] = true
			ups = append(ups, engine.Update{Op: op, Relationship: rel})
		}
	}
	for range 1 + r.IntN(4) {
		if len(f.live) > 0 && r.IntN(3) == 0 {
			add(store.OpDelete, f.live[r.IntN(len(f.live))])
			continue
		}
		s := f.world.rel(f.clk.Now())
		f.live = append(f.live, s)
		add(store.OpTouch, s)
	}
	z, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Caller: "test", Updates: ups})
	if err != nil {
		f.t.Fatal(err)
	}
	f.zookies = append(f.zookies, z)
}

type resultKey struct{ res, sub string }

type flip struct{ before, after engine.Permissionship }

// bruteDiff checks every (resource, subject) of the universe at both
// zookies; "nobody" is a user no relationship names, who holds only what
// the wildcard gives.
func (f *diffFixture) bruteDiff(from, to string, sc engine.PermissionScope) map[resultKey]flip {
	f.t.Helper()
	var ids []string
	n, prefix := f.world.docs, "d"
	if sc.ResourceType == "folder" {
		n, prefix = f.world.dirs, "f"
	}
	for i := range n {
		ids = append(ids, fmt.Sprintf("%s%d", prefix, i))
	}
	subs := append(slices.Clone(f.world.users), "nobody")
	if sc.SubjectID != "" {
		subs = []string{sc.SubjectID}
	}
	out := map[resultKey]flip{}
	for _, id := range ids {
		if sc.ResourceID != "" && id != sc.ResourceID {
			continue
		}
		for _, u := range subs {
			q := engine.CheckQuery{Resource: tuple.ObjectRef{Type: sc.ResourceType, ID: id}, Permission: sc.Permission, Subject: tuple.SubjectRef{Type: "user", ID: u}}
			a := f.check(from, q)
			b := f.check(to, q)
			if a != b {
				out[resultKey{id, u}] = flip{a, b}
			}
		}
	}
	return out
}

func (f *diffFixture) check(z string, q engine.CheckQuery) engine.Permissionship {
	f.t.Helper()
	r, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: q})
	if err != nil {
		f.t.Fatal(err)
	}
	return r.Permissionship
}

// expand turns diff entries into per-subject flips over the universe the
// brute force checks: a wildcard entry holds for every user it does not
// exclude and that has no entry of its own.
func (f *diffFixture) expand(changes []engine.PermissionChange, sc engine.PermissionScope) map[resultKey]flip {
	out := map[resultKey]flip{}
	subs := append(slices.Clone(f.world.users), "nobody")
	if sc.SubjectID != "" {
		subs = []string{sc.SubjectID}
	}
	for _, c := range changes {
		if c.Subject.ID != tuple.Wildcard {
			out[resultKey{c.Resource.ID, c.Subject.ID}] = flip{c.Before, c.After}
		}
	}
	for _, c := range changes {
		if c.Subject.ID != tuple.Wildcard {
			continue
		}
		for _, u := range subs {
			k := resultKey{c.Resource.ID, u}
			if _, own := out[k]; !own && !slices.Contains(c.ExcludedIDs, u) {
				out[k] = flip{c.Before, c.After}
			}
		}
	}
	return out
}

func (f *diffFixture) diff(from, to string, sc engine.PermissionScope) (*engine.Diff, []engine.PermissionChange) {
	f.t.Helper()
	d, err := f.eng.DiffPermissions(f.ctx, engine.DiffRequest{From: from, To: to, Scope: sc})
	if err != nil {
		f.t.Fatalf("diff %s#%s: %v", sc.ResourceType, sc.Permission, err)
	}
	var out []engine.PermissionChange
	for c, err := range d.Changes {
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, c)
	}
	return d, out
}

// TestDiffPermissionsMatchesBruteForce compares DiffPermissions over
// random zookie ranges of random write histories with a check of every
// (resource, subject) at both zookies.
func TestDiffPermissionsMatchesBruteForce(t *testing.T) {
	scopes := []engine.PermissionScope{
		{ResourceType: "doc", Permission: "view"},
		{ResourceType: "doc", Permission: "review"},
		{ResourceType: "doc", Permission: "edit"},
		{ResourceType: "folder", Permission: "view"},
		{ResourceType: "doc", Permission: "view", SubjectType: "user", SubjectID: "u1"},
		{ResourceType: "doc", Permission: "view", ResourceID: "d2"},
	}
	compared, nonEmpty := 0, 0
	for seed := range uint64(6) {
		f := newDiffFixture(t, seed)
		for range 25 {
			f.step()
		}
		for range 8 {
			i := f.world.rng.IntN(len(f.zookies))
			j := i + f.world.rng.IntN(len(f.zookies)-i)
			for _, sc := range scopes {
				want := f.bruteDiff(f.zookies[i], f.zookies[j], sc)
				d, changes := f.diff(f.zookies[i], f.zookies[j], sc)
				got := f.expand(changes, sc)
				compared++
				if len(want) > 0 {
					nonEmpty++
				}
				if d.Candidates > f.world.docs+f.world.dirs {
					t.Errorf("seed %d: %d candidates, more than the resources", seed, d.Candidates)
				}
				for k, w := range want {
					if got[k] != w {
						t.Errorf("seed %d, %s#%s %d..%d: %v changed %v -> %v, diff says %v", seed, sc.ResourceType, sc.Permission, i, j, k, w.before, w.after, got[k])
					}
				}
				for k, g := range got {
					if _, ok := want[k]; !ok {
						t.Errorf("seed %d, %s#%s %d..%d: diff reports %v %v -> %v, unchanged", seed, sc.ResourceType, sc.Permission, i, j, k, g.before, g.after)
					}
				}
			}
		}
	}
	// The test must compare something that changed, or it proves nothing.
	if nonEmpty < compared/4 {
		t.Fatalf("only %d of %d compared diffs were non-empty", nonEmpty, compared)
	}
}

// TestDiffPermissionsErrors covers the refusals, each with its sentinel.
func TestDiffPermissionsErrors(t *testing.T) {
	f := newDiffFixture(t, 1)
	f.step()
	z1 := f.zookies[0]
	f.step()
	z2 := f.zookies[1]
	view := engine.PermissionScope{ResourceType: "doc", Permission: "view"}
	zSchema, _, err := f.eng.WriteSchema(f.ctx, "test", diffSchema+"\ndefinition extra {}\n")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		from, to string
		scope    engine.PermissionScope
		want     error
	}{
		{"reversed", z2, z1, view, engine.ErrInvalidRequest},
		{"missing from", "", z2, view, engine.ErrInvalidRequest},
		{"bad zookie", "nonsense", z2, view, engine.ErrInvalidZookie},
		{"no permission", z1, z2, engine.PermissionScope{ResourceType: "doc"}, engine.ErrInvalidRequest},
		{"unknown type", z1, z2, engine.PermissionScope{ResourceType: "nope", Permission: "view"}, engine.ErrUnknownDefinition},
		{"unknown permission", z1, z2, engine.PermissionScope{ResourceType: "doc", Permission: "nope"}, engine.ErrUnknownRelation},
		{"unknown subject type", z1, z2, engine.PermissionScope{ResourceType: "doc", Permission: "view", SubjectType: "robot"}, engine.ErrUnknownDefinition},
		{"subject id without type", z1, z2, engine.PermissionScope{ResourceType: "doc", Permission: "view", SubjectID: "u1"}, engine.ErrInvalidRequest},
		{"schema written between", z1, zSchema, view, engine.ErrSchemaChanged},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.eng.DiffPermissions(f.ctx, engine.DiffRequest{From: tc.from, To: tc.to, Scope: tc.scope})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Outside the GC window: the window is an hour; collect at two hours.
	f.clk.Advance(2 * time.Hour)
	f.step()
	if _, err := f.st.GC(f.ctx, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = f.eng.DiffPermissions(f.ctx, engine.DiffRequest{From: z1, To: f.zookies[len(f.zookies)-1], Scope: view})
	if !errors.Is(err, engine.ErrSnapshotExpired) {
		t.Fatalf("diff from a collected zookie: got %v, want ErrSnapshotExpired", err)
	}
}
