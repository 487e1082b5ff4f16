package eval

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// loadNested loads rels with the nested-group index of s's relations
// (self-nesting relations and recursive arrows' tuplesets) computed by
// brute force (breadth-first from every object) and marked
// complete: the rows the engine maintains (engine/nested.go, tested there
// against the same brute force).
func loadNested(t testing.TB, s *schema.Schema, rels []tuple.Relationship) store.Reader {
	t.Helper()
	return load(t, loadNestedRels(s, rels))
}

// loadNestedRels returns rels with the rows of loadNested.
func loadNestedRels(s *schema.Schema, rels []tuple.Relationship) []tuple.Relationship {
	out := slices.Clone(rels)
	for _, rel := range NestedRelations(s) {
		typ := rel.Definition.Name
		sub := NestedSubjectRelation(rel)
		adj := map[string][]string{}
		for _, r := range rels {
			if r.Resource.Type == typ && r.Relation == rel.Name && r.Subject.Type == typ && r.Subject.Relation == sub {
				adj[r.Resource.ID] = append(adj[r.Resource.ID], r.Subject.ID)
			}
		}
		for _, x := range slices.Sorted(maps.Keys(adj)) {
			dist := map[string]int{x: 0}
			queue := []string{x}
			for len(queue) > 0 {
				u := queue[0]
				queue = queue[1:]
				for _, v := range adj[u] {
					if _, ok := dist[v]; !ok {
						dist[v] = dist[u] + 1
						queue = append(queue, v)
					}
				}
			}
			for y, d := range dist {
				if y != x {
					out = append(out, NestedRow(rel, x, y, d))
				}
			}
		}
		out = append(out, NestedMarker(rel), NestedGeneration(rel, uint64(rel.Index)+1))
	}
	return out
}

// testClosures is a ClosureSource holding the closure of every indexed
// relation of one reader, loaded up front.
type testClosures map[*schema.Relation]*ClosureIndex

// newTestClosures loads the closures r holds of s's indexed relations at
// the generation r's marker rows give.
func newTestClosures(t testing.TB, s *schema.Schema, r store.Reader) testClosures {
	t.Helper()
	out := testClosures{}
	for _, rel := range NestedRelations(s) {
		m, err := ReadNestedMarker(context.Background(), r, rel)
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := LoadClosureIndex(context.Background(), r, rel, m.Gen, 0)
		if err != nil {
			t.Fatal(err)
		}
		out[rel] = c
	}
	return out
}

func (tc testClosures) Closure(rel *schema.Relation, gen uint64, _ store.Revision) *ClosureIndex {
	if c := tc[rel]; c != nil && c.Gen() == gen {
		return c
	}
	return nil
}

func TestNestedRelations(t *testing.T) {
	s := mustCompile(t, `
caveat c(on bool) { on }
definition user {}
definition group {
	relation member: user | user:* | user with c | group#member
	relation admin: user | group#member
	relation owner: user
	permission view = member
}
definition department {
	relation member: user with expiration | department#member with c
	relation parent: department
}
`)
	var got []string
	for _, r := range NestedRelations(s) {
		got = append(got, r.Definition.Name+"#"+r.Name)
	}
	if want := []string{"group#member"}; !slices.Equal(got, want) {
		t.Errorf("NestedRelations = %v, want %v", got, want)
	}
}

// TestNestedCheck checks a chain of groups nested deeper than the
// walk's default reverse budget would like, a cycle, and the depth limit,
// with the index and without it: the same answers and errors, and with
// the index a few reads at any depth.
func TestNestedCheck(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
	relation member: user | group#member
}
`)
	var rels []tuple.Relationship
	add := func(r string) {
		rel, err := tuple.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	for i := 1; i <= 45; i++ { // g45 ⊃ g44 ⊃ … ⊃ g0 ∋ user:deep
		add(fmt.Sprintf("group:g%d#member@group:g%d#member", i, i-1))
	}
	add("group:g0#member@user:deep")
	add("group:c1#member@group:c2#member") // a cycle c1 -> c2 -> c3 -> c1
	add("group:c2#member@group:c3#member")
	add("group:c3#member@group:c1#member")
	add("group:c3#member@user:cy")
	ctx := context.Background()
	walk := New(s, Options{Concurrency: 1, MaxDepth: 40})
	index := New(s, Options{Concurrency: 1, MaxDepth: 40, NestedIndex: true})
	rd := loadNested(t, s, rels)
	counted := &countingReader{Reader: rd}
	cases := []struct{ resource, subject string }{
		{"g10", "user:deep"}, {"g39", "user:deep"}, {"g40", "user:deep"}, {"g45", "user:deep"},
		{"g45", "group:g5#member"}, {"g5", "group:g45#member"}, {"g45", "user:nobody"},
		{"c1", "user:cy"}, {"c2", "user:cy"}, {"c1", "group:c3#member"}, {"c1", "user:deep"},
	}
	for _, c := range cases {
		sub, err := tuple.Parse("group:x#member@" + c.subject)
		if err != nil {
			t.Fatal(err)
		}
		req := CheckRequest{Resource: tuple.ObjectRef{Type: "group", ID: c.resource}, Permission: "member", Subject: sub.Subject}
		a, errA := walk.Check(ctx, Params{Reader: rd, Now: testNow}, req)
		counted.n.Store(0)
		b, errB := index.Check(ctx, Params{Reader: counted, Now: testNow}, req)
		if (errA == nil) != (errB == nil) || a.Permissionship != b.Permissionship || a.Depth != b.Depth {
			t.Errorf("group:%s#member@%s: walk %v depth %d (%v), index %v depth %d (%v)", c.resource, c.subject, a.Permissionship, a.Depth, errA, b.Permissionship, b.Depth, errB)
		}
		if n := counted.n.Load(); errB == nil && n > 3 {
			t.Errorf("group:%s#member@%s: the index read %d relationships, want at most 3", c.resource, c.subject, n)
		}
	}
}
