package storetest

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// testStats checks the planner's counts (store.StatsKeeper): after
// RefreshStatistics they count exactly the live relationships at head
// (replaced ones once, deleted and expired ones not) by resource kind and
// subject kind, with their distinct objects, and the store's readers
// (store.StatsReader) return counts too.
func (s *suite) testStats(t *testing.T) {
	ctx := context.Background()
	st, clock := s.open(t, Config{})
	sk, ok := st.(store.StatsKeeper)
	if !ok {
		t.Skipf("%s store does not implement store.StatsKeeper", st.Kind())
	}
	rels := MustParse(t,
		"doc:1#viewer@user:a", "doc:1#viewer@user:b", "doc:2#viewer@user:a",
		"doc:1#viewer@group:g#member", "doc:2#viewer@group:h#member",
		"doc:1#parent@folder:f", "group:g#member@user:c", "doc:3#viewer@user:*",
		"doc:4#viewer@user:gone", "doc:5#viewer@user:expired")
	rels[len(rels)-1].Expiration = clock.Now().Add(time.Minute)
	MustTouch(t, st, rels...)
	MustTouch(t, st, rels[0]) // replaced: counted once
	MustDelete(t, st, rels[len(rels)-2].Key())
	clock.Advance(2 * time.Minute) // the last one expires
	head := MustHead(t, st)

	got, err := sk.RefreshStatistics(ctx)
	if err != nil {
		t.Fatalf("RefreshStatistics: %v", err)
	}
	want := &store.Statistics{
		Revision: head,
		Total:    8,
		Resources: map[store.RelationKind]store.Count{
			{Type: "doc", Relation: "viewer"}:   {Relationships: 6, Objects: 3},
			{Type: "doc", Relation: "parent"}:   {Relationships: 1, Objects: 1},
			{Type: "group", Relation: "member"}: {Relationships: 1, Objects: 1},
		},
		Subjects: map[store.RelationKind]store.Count{
			{Type: "user", Relation: tuple.Ellipsis}:   {Relationships: 5, Objects: 4}, // a, b, c, *
			{Type: "group", Relation: "member"}:        {Relationships: 2, Objects: 2},
			{Type: "folder", Relation: tuple.Ellipsis}: {Relationships: 1, Objects: 1},
		},
	}
	if got.Revision != want.Revision || got.Total != want.Total ||
		!maps.Equal(got.Resources, want.Resources) || !maps.Equal(got.Subjects, want.Subjects) {
		t.Errorf("RefreshStatistics =\n%+v\nwant\n%+v", *got, *want)
	}
	if c := got.Resource("doc", "viewer"); c.Fanout() != 2 {
		t.Errorf("doc#viewer fan-out = %v, want 2", c.Fanout())
	}
	if c := got.Subject("user", ""); c.Relationships != 5 {
		t.Errorf(`Subject("user", "") = %+v, want the plain subjects' count`, c)
	}
	if sk.Statistics() == nil {
		t.Error("Statistics() = nil after RefreshStatistics")
	}
	sr, ok := MustSnapshot(t, st, head).(store.StatsReader)
	if !ok {
		t.Fatalf("%s reader does not implement store.StatsReader", st.Kind())
	}
	if sr.Statistics() == nil {
		t.Error("reader's Statistics() = nil after RefreshStatistics")
	}
}
