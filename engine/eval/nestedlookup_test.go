package eval

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// nestedLookupSchema nests groups (with every kind of leaf: plain,
// wildcard, caveated and expiring users) and reaches them through a
// permission, a subject set of another type and an arrow.
const nestedLookupSchema = `
caveat flag(on bool) { on }
definition user {}
definition group {
	relation member: user | user:* | user with flag | user with expiration | group#member
	relation owner: user
	permission view = member + owner
}
definition doc {
	relation viewer: user | group#member
	relation parent: group
	permission view = viewer + parent->view
}
`

// genNestedGraph returns random nested groups g0..g{n-1} (chains, cycles,
// shortcuts), their leaves and documents over them.
func genNestedGraph(rng *rand.Rand, n int) []tuple.Relationship {
	var out []tuple.Relationship
	seen := map[tuple.Key]bool{}
	add := func(r tuple.Relationship) {
		if !seen[r.Key()] {
			seen[r.Key()] = true
			out = append(out, r)
		}
	}
	g := func(i int) string { return "g" + strconv.Itoa(i) }
	member := func(from int, sub tuple.SubjectRef) tuple.Relationship {
		return tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: g(from)}, Relation: "member", Subject: sub}
	}
	for i := 1; i < n; i++ { // a chain g{n-1} ⊃ … ⊃ g0 in stretches
		if rng.IntN(4) != 0 {
			add(member(i, tuple.SubjectRef{Type: "group", ID: g(i - 1), Relation: "member"}))
		}
	}
	for range n { // shortcuts and cycles
		add(member(rng.IntN(n), tuple.SubjectRef{Type: "group", ID: g(rng.IntN(n)), Relation: "member"}))
	}
	for _, u := range diffUsers {
		for range 3 {
			r := member(rng.IntN(n), tuple.SubjectRef{Type: "user", ID: u})
			switch rng.IntN(4) {
			case 0:
				r.Caveat = &tuple.Caveat{Name: "flag"}
			case 1:
				r.Expiration = testNow.Add(time.Hour)
			}
			add(r)
		}
		add(tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: g(rng.IntN(n))}, Relation: "owner", Subject: tuple.SubjectRef{Type: "user", ID: u}})
	}
	if rng.IntN(2) == 0 {
		add(member(rng.IntN(n), tuple.SubjectRef{Type: "user", ID: tuple.Wildcard}))
	}
	for _, d := range diffIDs {
		add(tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: d}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "group", ID: g(rng.IntN(n)), Relation: "member"}})
		add(tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: d}, Relation: "parent", Subject: tuple.SubjectRef{Type: "group", ID: g(rng.IntN(n))}})
	}
	return out
}

// nestedWalkCase is one schema and data set for TestNestedWalksDifferential.
type nestedWalkCase struct {
	name     string
	s        *schema.Schema
	rels     []tuple.Relationship
	universe map[string][]string
}

func nestedWalkCases(t *testing.T) []nestedWalkCase {
	cs, err := schema.Compile("caveats.zed", diffCaveats)
	if err != nil {
		t.Fatal(err)
	}
	schemas, graphs := 120, 20
	if raceEnabled {
		schemas, graphs = 20, 4
	}
	var out []nestedWalkCase
	for i := range schemas {
		rng := rand.New(rand.NewPCG(uint64(i), 0x6e57))
		s := genSchema(rng, cs.Caveats, "nwalk-"+strconv.Itoa(i))
		if len(NestedRelations(s)) == 0 {
			continue
		}
		universe, _ := diffWorld(s)
		out = append(out, nestedWalkCase{"random schema " + strconv.Itoa(i), s, genTuples(rng, s, testNow), universe})
	}
	s := mustCompile(t, nestedLookupSchema)
	for i := range graphs {
		rng := rand.New(rand.NewPCG(uint64(i), 0x6e58))
		n := 5 + rng.IntN(40)
		var groups []string
		for j := range n {
			groups = append(groups, "g"+strconv.Itoa(j))
		}
		universe := map[string][]string{"user": diffUsers, "group": groups, "doc": diffIDs}
		out = append(out, nestedWalkCase{"nested graph " + strconv.Itoa(i), s, genNestedGraph(rng, n), universe})
	}
	return out
}

// TestNestedWalksDifferential runs the lookups' two walks with the index
// and without it over random schemas and random nested groups, and
// demands the same nodes at the same depths (forwardWalk: every subject
// met, at its depth) and heights (the reverse walk: every node reached,
// exact or not, and the height of the exact ones): the depth limit and
// the confirming Checks then treat both alike. The lookups themselves
// must give the same answers and fail on the same requests, at depth
// limits small enough to be hit.
func TestNestedWalksDifferential(t *testing.T) {
	ctx := context.Background()
	reads, tooLarge := uint64(0), 0
	for _, c := range nestedWalkCases(t) {
		rd := loadNested(t, c.s, c.rels)
		_, allRels := diffWorld(c.s)
		for _, now := range []time.Time{testNow, testNow.Add(2 * time.Hour)} {
			p := Params{Reader: rd, Now: now}
			off, on := New(c.s, Options{Concurrency: 1}), New(c.s, Options{Concurrency: 1, NestedIndex: true})
			rqOff, err := off.newRequest(p)
			if err != nil {
				t.Fatal(err)
			}
			rqOn, err := on.newRequest(p)
			if err != nil {
				t.Fatal(err)
			}
			// The forward walk of every relation on every object, for
			// users and for subject sets of every relation.
			kinds := []tuple.SubjectRef{{Type: "user"}}
			for _, r := range allRels {
				kinds = append(kinds, tuple.SubjectRef{Type: r.Definition.Name, Relation: r.Name})
			}
			for _, r := range allRels {
				for _, id := range c.universe[r.Definition.Name] {
					for _, k := range kinds {
						a, errA := rqOff.forwardWalk(ctx, r, id, k.Type, k.Relation, 0)
						b, errB := rqOn.forwardWalk(ctx, r, id, k.Type, k.Relation, 0)
						if errA != nil || errB != nil || !maps.Equal(a, b) {
							t.Fatalf("%s now %s: forwardWalk(%s:%s#%s, %s#%s): walk %v (%v), index %v (%v)\n%s\n%s",
								c.name, now.Format(time.Kitchen), r.Definition.Name, id, r.Name, k.Type, k.Relation, a, errA, b, errB, describeSchema(c.s), describeTuples(c.rels))
						}
					}
				}
			}
			// The reverse walk from every user and subject set up to
			// every relation.
			subjects := []tuple.SubjectRef{{Type: "user", ID: tuple.Wildcard}}
			for _, u := range diffUsers {
				subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: u})
			}
			for _, r := range allRels {
				for _, id := range c.universe[r.Definition.Name][:2] {
					subjects = append(subjects, tuple.SubjectRef{Type: r.Definition.Name, ID: id, Relation: r.Name})
				}
			}
			for _, goal := range allRels {
				for _, sub := range subjects {
					wa, wb := newReverseWalk(rqOff, goal), newReverseWalk(rqOn, goal)
					errA, errB := wa.run(ctx, sub), wb.run(ctx, sub)
					if errA != nil || errB != nil {
						t.Fatalf("%s: reverse walk to %s#%s from %s: %v, %v", c.name, goal.Definition.Name, goal.Name, sub, errA, errB)
					}
					for i := range wa.vals {
						if !sameReverse(wa.vals[i], wb.vals[i]) {
							t.Fatalf("%s now %s: reverse walk to %s#%s from %s: at relation %d walk %v, index %v\n%s\n%s",
								c.name, now.Format(time.Kitchen), goal.Definition.Name, goal.Name, sub, i, wa.vals[i], wb.vals[i], describeSchema(c.s), describeTuples(c.rels))
						}
					}
				}
			}
			rqOff.done()
			rqOn.done()
			reads += on.nestedLookups.Load()
		}
		// The lookups, at depth limits that cut the nesting, and with a
		// bound on the nodes of a walk that some lookups pass.
		for _, limit := range []struct{ depth, nodes int }{{2, 0}, {5, 0}, {50, 0}, {50, 12}} {
			off := New(c.s, Options{Concurrency: 1, MaxDepth: limit.depth, MaxLookupNodes: limit.nodes})
			on := New(c.s, Options{Concurrency: 1, MaxDepth: limit.depth, MaxLookupNodes: limit.nodes, NestedIndex: true})
			p := Params{Reader: rd, Now: testNow, Context: map[string]any{"on": true}}
			for _, r := range allRels {
				for _, sub := range subjects(c) {
					req := LookupResourcesRequest{ResourceType: r.Definition.Name, Permission: r.Name, Subject: sub}
					a, errA := drain(off.LookupResources(ctx, p, req))
					b, errB := drain(on.LookupResources(ctx, p, req))
					if errors.Is(errA, ErrLookupTooLarge) {
						tooLarge++
					}
					if !sameLookup(a, b, errA, errB) {
						t.Fatalf("%s limit %v: LookupResources(%s#%s@%s): walk %v (%v), index %v (%v)\n%s\n%s", c.name, limit, r.Definition.Name, r.Name, sub, a, errA, b, errB, describeSchema(c.s), describeTuples(c.rels))
					}
				}
				for _, id := range c.universe[r.Definition.Name] {
					for _, k := range []tuple.SubjectRef{{Type: "user"}, {Type: r.Definition.Name, Relation: r.Name}} {
						req := LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: r.Definition.Name, ID: id}, Permission: r.Name, SubjectType: k.Type, SubjectRelation: k.Relation}
						a, errA := drain(off.LookupSubjects(ctx, p, req))
						b, errB := drain(on.LookupSubjects(ctx, p, req))
						if errors.Is(errA, ErrLookupTooLarge) {
							tooLarge++
						}
						if !sameLookup(a, b, errA, errB) {
							t.Fatalf("%s limit %v: LookupSubjects(%s:%s#%s, %s#%s): walk %v (%v), index %v (%v)\n%s\n%s", c.name, limit, r.Definition.Name, id, r.Name, k.Type, k.Relation, a, errA, b, errB, describeSchema(c.s), describeTuples(c.rels))
						}
					}
				}
			}
		}
	}
	if reads == 0 || tooLarge == 0 {
		t.Errorf("%d walks read the nested-group index, %d lookups were too large: the cases exercise too little", reads, tooLarge)
	}
}

// subjects returns the subjects TestNestedWalksDifferential looks up
// resources for: users and one subject set of every relation.
func subjects(c nestedWalkCase) []tuple.SubjectRef {
	out := []tuple.SubjectRef{}
	for _, u := range diffUsers {
		out = append(out, tuple.SubjectRef{Type: "user", ID: u})
	}
	_, allRels := diffWorld(c.s)
	for i, r := range allRels {
		ids := c.universe[r.Definition.Name]
		out = append(out, tuple.SubjectRef{Type: r.Definition.Name, ID: ids[i%len(ids)], Relation: r.Name})
	}
	return out
}

// sameLookup reports whether two lookups answered alike: the same
// results, or both the max depth error, or both the lookup-too-large one.
func sameLookup[T any](a, b []T, errA, errB error) bool {
	if errA != nil || errB != nil {
		return errors.Is(errA, ErrMaxDepth) && errors.Is(errB, ErrMaxDepth) ||
			errors.Is(errA, ErrLookupTooLarge) && errors.Is(errB, ErrLookupTooLarge)
	}
	return reflect.DeepEqual(a, b)
}

// sameReverse compares what two reverse walks know of one relation: the
// same nodes, exact alike, and exact ones at the same height (an inexact
// node's height is never read).
func sameReverse(a, b map[string]revVal) bool {
	if len(a) != len(b) {
		return false
	}
	for id, va := range a {
		vb, ok := b[id]
		if !ok || va.exact != vb.exact || (va.exact && va.h != vb.h) {
			return false
		}
	}
	return true
}

// TestNestedLookupReads pins down the point of the index for lookups: on
// a chain of groups nested 40 deep (past the reverse budget), both
// lookups give the walk's answers, including the depth limit's, with a
// number of reads that does not grow with the depth.
func TestNestedLookupReads(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
	relation member: user | group#member
}
`)
	var lines []string
	for i := 1; i <= 40; i++ { // g40 ⊃ g39 ⊃ … ⊃ g0 ∋ user:deep
		lines = append(lines, fmt.Sprintf("group:g%d#member@group:g%d#member", i, i-1))
		lines = append(lines, fmt.Sprintf("group:g%d#member@user:u%d", i, i))
	}
	lines = append(lines, "group:g0#member@user:deep", "group:g0#member@user:u0")
	rd := loadNested(t, s, mustParse(t, lines...))
	ctx := context.Background()
	for _, limit := range []int{10, 50} {
		walk := New(s, Options{Concurrency: 1, MaxDepth: limit})
		index := New(s, Options{Concurrency: 1, MaxDepth: limit, NestedIndex: true})
		counted := &relCounter{Reader: rd}
		subReq := LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "group", ID: "g40"}, Permission: "member", SubjectType: "user"}
		a, errA := drain(walk.LookupSubjects(ctx, Params{Reader: rd, Now: testNow}, subReq))
		counted.n.Store(0)
		b, errB := drain(index.LookupSubjects(ctx, Params{Reader: counted, Now: testNow}, subReq))
		if !sameLookup(a, b, errA, errB) || (limit == 50 && (errB != nil || len(b) != 42)) {
			t.Errorf("limit %d: LookupSubjects(group:g40#member): walk %d (%v), index %d (%v)", limit, len(a), errA, len(b), errB)
		}
		// The closure rows (40), the users of 41 groups (42), the
		// root's edge and the marker with its generation row: the walk
		// reads the users and edges of every group (82).
		if n := counted.n.Load(); errB == nil && n > 40+42+3 {
			t.Errorf("limit %d: LookupSubjects read %d relationships", limit, n)
		}
		resReq := LookupResourcesRequest{ResourceType: "group", Permission: "member", Subject: tuple.SubjectRef{Type: "user", ID: "deep"}}
		calls := &callCounter{Reader: rd, reverse: new(atomic.Int64)}
		a2, errA := drain(walk.LookupResources(ctx, Params{Reader: calls, Now: testNow}, resReq))
		walkCalls := calls.reverse.Load()
		calls.reverse.Store(0)
		counted.n.Store(0)
		b2, errB := drain(index.LookupResources(ctx, Params{Reader: &callCounter{Reader: counted, reverse: calls.reverse}, Now: testNow}, resReq))
		if !sameLookup(a2, b2, errA, errB) || (limit == 50 && (errB != nil || len(b2) != 41)) {
			t.Errorf("limit %d: LookupResources(group#member@user:deep): walk %d (%v), index %d (%v)", limit, len(a2), errA, len(b2), errB)
		}
		// The seed, its 40 ancestors' closure rows (one reverse read),
		// the marker and its generation row; no Check, within the
		// limit. (The walk reads as many rows, in 41 reverse reads, one
		// per level.)
		if n := counted.n.Load(); limit == 50 && n > 1+40+2 {
			t.Errorf("limit %d: LookupResources read %d relationships", limit, n)
		}
		// In two reverse reads (the user's groups, the closure rows
		// naming g0), where the walk reads one per level.
		t.Logf("limit %d: LookupResources made %d reverse reads, the walk %d", limit, calls.reverse.Load(), walkCalls)
		if n := calls.reverse.Load(); limit == 50 && (n != 2 || walkCalls < 40) {
			t.Errorf("limit %d: LookupResources made %d reverse reads, the walk %d", limit, n, walkCalls)
		}
	}
}

// callCounter counts the reverse reads made through it.
type callCounter struct {
	store.Reader
	reverse *atomic.Int64
}

func (c *callCounter) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	c.reverse.Add(1)
	return c.Reader.ReverseQueryRelationships(ctx, f, opts)
}

// TestNestedLookupShortcut: a closure read that reaches a group by a
// long path first must not hide a shorter one found next (the reverse
// walk's reach takes the shorter height), or the lookup would leave the
// group to Check.
func TestNestedLookupShortcut(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
	relation member: user | group#member
}
`)
	// user:u is in a and b; a ⊂ c1 ⊂ c2 ⊂ c3 ⊂ top and b ⊂ top.
	rels := mustParse(t,
		"group:a#member@user:u", "group:b#member@user:u",
		"group:c1#member@group:a#member", "group:c2#member@group:c1#member", "group:c3#member@group:c2#member",
		"group:top#member@group:c3#member", "group:top#member@group:b#member")
	rd := loadNested(t, s, rels)
	e := New(s, Options{Concurrency: 1, NestedIndex: true})
	rq, err := e.newRequest(Params{Reader: rd, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	defer rq.done()
	member := s.Definitions["group"].Relations["member"]
	w := newReverseWalk(rq, member)
	if err := w.run(context.Background(), tuple.SubjectRef{Type: "user", ID: "u"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]revVal{"a": {true, 1}, "b": {true, 1}, "c1": {true, 2}, "c2": {true, 3}, "c3": {true, 4}, "top": {true, 2}}
	if got := w.vals[member.Index]; !maps.Equal(got, want) {
		t.Errorf("reverse walk = %v, want %v", got, want)
	}
	if e.nestedLookups.Load() == 0 {
		t.Error("the walk did not read the index")
	}
}
