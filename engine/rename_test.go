package engine_test

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

const renameV1 = `definition user {}
definition group { relation member: user }
definition doc {
	relation admin: user | group#member
	relation viewer: user
	permission manage = admin
	permission view = viewer + manage
}`

const renameV2 = `definition user {}
definition group { relation member: user }
definition doc {
	@renamed_from(admin)
	relation owner: user | group#member
	relation viewer: user
	permission manage = owner
	permission view = viewer + manage
}`

// openEngine returns an engine over a fresh memstore with schema written.
func openEngine(t testing.TB, schemaText string, opts engine.Options) *engine.Engine {
	t.Helper()
	clk := newClock()
	st := memstore.New(memstore.Options{Now: clk.Now, GCWindow: time.Hour})
	t.Cleanup(func() { st.Close() })
	opts.Now = clk.Now
	eng, err := engine.Open(t.Context(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if _, _, err := eng.WriteSchema(t.Context(), "test", schemaText); err != nil {
		t.Fatal(err)
	}
	return eng
}

func writeRels(t testing.TB, eng *engine.Engine, op store.Op, rels ...string) error {
	t.Helper()
	ups := make([]engine.Update, len(rels))
	for i, s := range rels {
		ups[i] = engine.Update{Op: op, Relationship: mustParse(t, s)}
	}
	_, err := eng.WriteRelationships(t.Context(), engine.WriteRequest{Caller: "test", Updates: ups})
	return err
}

func checkOf(t testing.TB, eng *engine.Engine, q string) eval.Permissionship {
	t.Helper()
	r := mustParse(t, q)
	resp, err := eng.Check(t.Context(), engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
	if err != nil {
		t.Fatalf("check %s: %v", q, err)
	}
	return resp.Permissionship
}

func lookupResources(t testing.TB, eng *engine.Engine, typ, perm string, sub tuple.SubjectRef) []string {
	t.Helper()
	seq, _, err := eng.LookupResources(t.Context(), engine.LookupResourcesRequest{Consistency: engine.FullyConsistent(),
		LookupResourcesRequest: eval.LookupResourcesRequest{ResourceType: typ, Permission: perm, Subject: sub}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for r, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.ResourceID)
	}
	return out
}

func lookupSubjects(t testing.TB, eng *engine.Engine, res tuple.ObjectRef, perm, subType string) []string {
	t.Helper()
	seq, _, err := eng.LookupSubjects(t.Context(), engine.LookupSubjectsRequest{Consistency: engine.FullyConsistent(),
		LookupSubjectsRequest: eval.LookupSubjectsRequest{Resource: res, Permission: perm, SubjectType: subType}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for r, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.SubjectID)
	}
	return out
}

// TestRenamedFrom walks a rename through its life: the schema renames a
// relation without touching data, old relationships are read under the
// new name by every query, writes under the old name are refused while
// deletes are accepted, and the alias can be dropped only once no data is
// left under the old name.
func TestRenamedFrom(t *testing.T) {
	ctx := t.Context()
	eng := openEngine(t, renameV1, engine.Options{})
	if err := writeRels(t, eng, store.OpTouch, "doc:1#admin@user:anne", "doc:2#admin@group:g#member", "group:g#member@user:bob", "doc:4#admin@user:dan"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", renameV2); err != nil {
		t.Fatalf("renaming with @renamed_from refused: %v", err)
	}
	if err := writeRels(t, eng, store.OpTouch, "doc:4#owner@user:dan"); err != nil {
		t.Fatal(err) // the same relationship under both names
	}
	for _, tc := range []struct {
		q    string
		want eval.Permissionship
	}{
		{"doc:1#manage@user:anne", eval.HasPermission},
		{"doc:1#owner@user:anne", eval.HasPermission},
		{"doc:1#view@user:anne", eval.HasPermission},
		{"doc:2#manage@user:bob", eval.HasPermission},
		{"doc:2#manage@user:anne", eval.NoPermission},
		{"doc:4#manage@user:dan", eval.HasPermission},
	} {
		if got := checkOf(t, eng, tc.q); got != tc.want {
			t.Errorf("check %s = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := lookupResources(t, eng, "doc", "manage", tuple.SubjectRef{Type: "user", ID: "bob"}); !slices.Equal(got, []string{"2"}) {
		t.Errorf("LookupResources manage bob = %v, want [2]", got)
	}
	if got := lookupSubjects(t, eng, tuple.ObjectRef{Type: "doc", ID: "4"}, "manage", "user"); !slices.Equal(got, []string{"dan"}) {
		t.Errorf("LookupSubjects doc:4 manage = %v, want [dan] once", got)
	}
	tree, _, err := eng.Expand(ctx, engine.ExpandRequest{Consistency: engine.FullyConsistent(), ExpandRequest: eval.ExpandRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "owner"}})
	if err != nil || !strings.Contains(fmt.Sprint(tree), "anne") {
		t.Errorf("Expand doc:1#owner = %v, %v; want anne in it", tree, err)
	}

	err = writeRels(t, eng, store.OpTouch, "doc:5#admin@user:eve")
	if !errors.Is(err, engine.ErrUnknownRelation) || !strings.Contains(err.Error(), "renamed to owner") {
		t.Errorf("write under the old name: %v, want ErrUnknownRelation saying it was renamed to owner", err)
	}

	// Dropping the alias while data is left under the old name is refused.
	const v3 = `definition user {}
definition group { relation member: user }
definition doc {
	relation owner: user | group#member
	relation viewer: user
	permission manage = owner
	permission view = viewer + manage
}`
	if _, _, err := eng.WriteSchema(ctx, "test", v3); !errors.Is(err, engine.ErrUnsafeSchemaChange) || !strings.Contains(err.Error(), "doc#admin") {
		t.Fatalf("dropping the alias with data left: %v, want ErrUnsafeSchemaChange naming doc#admin", err)
	}
	// Migrate: rewrite under the new name, delete under the old.
	if err := writeRels(t, eng, store.OpTouch, "doc:1#owner@user:anne", "doc:2#owner@group:g#member"); err != nil {
		t.Fatal(err)
	}
	if err := writeRels(t, eng, store.OpDelete, "doc:1#admin@user:anne", "doc:2#admin@group:g#member", "doc:4#admin@user:dan"); err != nil {
		t.Fatalf("delete under the old name: %v", err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", v3); err != nil {
		t.Fatalf("dropping the alias after the migration: %v", err)
	}
	if got := checkOf(t, eng, "doc:2#manage@user:bob"); got != eval.HasPermission {
		t.Errorf("after the migration: doc:2#manage@user:bob = %v", got)
	}
}

// TestRenamedFromRefusesOrphans: a rename whose new relation does not
// accept some stored subject type is refused like any orphaning change.
func TestRenamedFromRefusesOrphans(t *testing.T) {
	eng := openEngine(t, renameV1, engine.Options{})
	if err := writeRels(t, eng, store.OpTouch, "doc:2#admin@group:g#member"); err != nil {
		t.Fatal(err)
	}
	narrowed := strings.Replace(renameV2, "relation owner: user | group#member", "relation owner: user", 1)
	_, _, err := eng.WriteSchema(t.Context(), "test", narrowed)
	if !errors.Is(err, engine.ErrUnsafeSchemaChange) || !strings.Contains(err.Error(), "doc#owner") {
		t.Errorf("WriteSchema = %v, want ErrUnsafeSchemaChange naming doc#owner", err)
	}
}

// TestRenamedFromMatchesMigratedData is differential: on random data
// written under both names, every check and lookup of an engine reading
// through @renamed_from equals that of an engine whose data was migrated
// (every old-name relationship rewritten under the new name).
func TestRenamedFromMatchesMigratedData(t *testing.T) {
	const v1 = `definition user {}
definition group { relation member: user | group#member }
definition doc {
	relation admin: user | group#member | user:*
	relation parent: doc
	relation banned: user
	permission manage = admin - banned
	permission view = manage + parent->view
}`
	const both = `definition user {}
definition group { relation member: user | group#member }
definition doc {
	relation admin: user | group#member | user:*
	relation owner: user | group#member | user:*
	relation parent: doc
	relation banned: user
	permission manage = admin - banned
	permission view = manage + parent->view
}`
	const renamed = `definition user {}
definition group { relation member: user | group#member }
definition doc {
	@renamed_from(admin)
	relation owner: user | group#member | user:*
	relation parent: doc
	relation banned: user
	permission manage = owner - banned
	permission view = manage + parent->view
}`
	for seed := int64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewSource(seed))
		users := []string{"u0", "u1", "u2", "u3"}
		var rels []string
		seen := map[string]bool{}
		add := func(s string) {
			if !seen[s] {
				seen[s] = true
				rels = append(rels, s)
			}
		}
		for i := 0; i < 40; i++ {
			d := fmt.Sprintf("doc:d%d", rng.Intn(6))
			rel := []string{"admin", "owner"}[rng.Intn(2)]
			switch rng.Intn(6) {
			case 0:
				add(fmt.Sprintf("%s#%s@group:g%d#member", d, rel, rng.Intn(3)))
			case 1:
				add(fmt.Sprintf("group:g%d#member@user:%s", rng.Intn(3), users[rng.Intn(len(users))]))
			case 2:
				add(fmt.Sprintf("%s#parent@doc:d%d", d, rng.Intn(6)))
			case 3:
				add(fmt.Sprintf("%s#banned@user:%s", d, users[rng.Intn(len(users))]))
			case 4:
				if rng.Intn(4) == 0 {
					add(d + "#" + rel + "@user:*")
				}
			default:
				add(fmt.Sprintf("%s#%s@user:%s", d, rel, users[rng.Intn(len(users))]))
			}
		}
		aliased := openEngine(t, both, engine.Options{CacheBytes: -1})
		if err := writeRels(t, aliased, store.OpTouch, rels...); err != nil {
			t.Fatal(err)
		}
		if _, _, err := aliased.WriteSchema(t.Context(), "test", renamed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		migrated := openEngine(t, v1, engine.Options{CacheBytes: -1})
		var moved []string
		for _, r := range rels {
			moved = append(moved, strings.Replace(r, "#admin@", "#owner@", 1))
		}
		if _, _, err := migrated.WriteSchema(t.Context(), "test", both); err != nil {
			t.Fatal(err)
		}
		if err := writeRels(t, migrated, store.OpTouch, dedupe(moved)...); err != nil {
			t.Fatal(err)
		}
		if _, _, err := migrated.WriteSchema(t.Context(), "test", strings.Replace(renamed, "@renamed_from(admin)\n", "", 1)); err != nil {
			t.Fatal(err)
		}
		for _, perm := range []string{"owner", "manage", "view"} {
			for _, u := range users {
				sub := tuple.SubjectRef{Type: "user", ID: u}
				if a, m := lookupResources(t, aliased, "doc", perm, sub), lookupResources(t, migrated, "doc", perm, sub); !slices.Equal(a, m) {
					t.Errorf("seed %d: LookupResources %s %s: aliased %v, migrated %v", seed, perm, u, a, m)
				}
				for d := 0; d < 6; d++ {
					q := fmt.Sprintf("doc:d%d#%s@user:%s", d, perm, u)
					if a, m := checkOf(t, aliased, q), checkOf(t, migrated, q); a != m {
						t.Errorf("seed %d: check %s: aliased %v, migrated %v", seed, q, a, m)
					}
				}
			}
			for d := 0; d < 6; d++ {
				res := tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%d", d)}
				if a, m := lookupSubjects(t, aliased, res, perm, "user"), lookupSubjects(t, migrated, res, perm, "user"); !slices.Equal(a, m) {
					t.Errorf("seed %d: LookupSubjects %s#%s: aliased %v, migrated %v", seed, res, perm, a, m)
				}
			}
		}
	}
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
