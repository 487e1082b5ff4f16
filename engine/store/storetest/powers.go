package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// testPowers checks the evaluator's read powers, which every backend
// implements: store.PointReader answers as the query naming the whole
// key, and store.BatchReader as QueryRelationships and
// ReverseQueryRelationships, appended after what the slice holds; both
// at every revision of a history of overwrites, caveats, expirations
// and deletions, on answers longer than a backend's page, and with a
// compacted revision failing as the queries do.
func (s *suite) testPowers(t *testing.T) {
	ctx := context.Background()
	const window = time.Hour
	st, clock := s.open(t, Config{GCWindow: window})
	r0 := MustSnapshot(t, st, 0)
	pr, ok := r0.(store.PointReader)
	if !ok {
		t.Fatalf("%s reader does not implement store.PointReader", st.Kind())
	}
	br, ok := r0.(store.BatchReader)
	if !ok {
		t.Fatalf("%s reader does not implement store.BatchReader", st.Kind())
	}
	if _, found, err := pr.ReadRelationship(ctx, MustParse(t, "doc:a#viewer@user:1")[0].Key(), time.Time{}); found || err != nil {
		t.Errorf("ReadRelationship at revision 0 = found %v, %v", found, err)
	}
	if got, err := br.AppendRelationships(ctx, nil, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}); len(got) != 0 || err != nil {
		t.Errorf("AppendRelationships at revision 0 = %v, %v", got, err)
	}

	exp := startTime().Add(30 * time.Minute)
	rels := MustParse(t,
		"doc:a#viewer@user:1",
		"doc:a#viewer@group:eng#member",
		"doc:a#viewer@user:*",
		"doc:a#editor@user:1",
		"doc:b#viewer@user:1",
		"folder:x#parent@doc:a",
	)
	a, set, wild, editor, b, parent := rels[0], rels[1], rels[2], rels[3], rels[4], rels[5]
	aCaveat := a
	aCaveat.Caveat = &tuple.Caveat{Name: "weekday", Context: map[string]any{"tz": "UTC"}}
	bExp := b
	bExp.Expiration = exp
	steps := []struct {
		name string
		fn   func(ctx context.Context, tx store.Tx) error
		next func(m model)
	}{
		{"touch all", func(ctx context.Context, tx store.Tx) error { return touchAll(ctx, tx, rels...) }, func(m model) { m.touch(rels...) }},
		{"caveat a, expire b", func(ctx context.Context, tx store.Tx) error { return touchAll(ctx, tx, aCaveat, bExp) },
			func(m model) { m.touch(aCaveat, bExp) }},
		{"delete the subject set and the editor", func(ctx context.Context, tx store.Tx) error {
			if err := tx.Delete(ctx, set.Key()); err != nil {
				return err
			}
			return tx.Delete(ctx, editor.Key())
		}, func(m model) { m.delete(set.Key(), editor.Key()) }},
		{"plain a again", func(ctx context.Context, tx store.Tx) error { return touchAll(ctx, tx, a) }, func(m model) { m.touch(a) }},
	}
	models := []model{newModel()}
	readers := []store.Reader{r0}
	for _, stp := range steps {
		clock.Advance(time.Minute)
		MustUpdate(t, st, stp.fn)
		m := models[len(models)-1].clone()
		stp.next(m)
		models = append(models, m)
		readers = append(readers, MustSnapshot(t, st, store.Revision(len(models)-1)))
	}
	nows := []time.Time{{}, startTime(), exp, exp.Add(time.Nanosecond)}
	filters := []tuple.Filter{
		{ResourceType: "doc"},
		{ResourceType: "doc", ResourceID: "a", Relation: "viewer"},
		{ResourceType: "doc", ResourceID: "a", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user"}},
		{ResourceType: "doc", ResourceID: "a", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user", ID: "1", Relation: tuple.Ellipsis}},
		{ResourceType: "doc", ResourceID: "a", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "group", Relation: "member"}},
		{Relation: "viewer"},
	}
	reverse := []tuple.ReverseFilter{
		{Subject: tuple.SubjectFilter{Type: "user", ID: "1"}},
		{Subject: tuple.SubjectFilter{Type: "user", ID: "1", Relation: tuple.Ellipsis}, ResourceType: "doc", Relation: "viewer"},
		{Subject: tuple.SubjectFilter{Type: "doc", ID: "a"}, ResourceType: "folder"},
	}
	pre := MustParse(t, "doc:pre#viewer@user:pre")
	for j, r := range readers {
		m := models[j]
		pr, br := r.(store.PointReader), r.(store.BatchReader)
		for _, now := range nows {
			what := fmt.Sprintf("%s, now %v", revName(j), now)
			for _, rel := range rels {
				got, found, err := pr.ReadRelationship(ctx, rel.Key(), now)
				var gotRels, want []tuple.Relationship
				if found {
					gotRels = append(gotRels, got)
				}
				if w, ok := m[rel.Key()]; ok && (now.IsZero() || !w.ExpiredAt(now)) {
					want = append(want, w)
				}
				checkRels(t, fmt.Sprintf("%s: ReadRelationship(%s)", what, rel.Key()), gotRels, err, want)
			}
			for _, f := range filters {
				for _, opts := range []store.QueryOptions{{Now: now}, {Now: now, Limit: 1}, {Now: now, After: ptr(a.Key())}, {Now: now, Limit: 2, After: ptr(wild.Key())}} {
					got, err := br.AppendRelationships(ctx, pre[:1:1], f, opts)
					checkRels(t, fmt.Sprintf("%s: AppendRelationships(%s, %+v)", what, describeFilter(f), opts), got, err, append(pre[:1:1], m.forward(f, opts)...))
				}
			}
			for _, f := range reverse {
				for _, opts := range []store.QueryOptions{{Now: now}, {Now: now, Limit: 1}, {Now: now, After: ptr(parent.Key())}} {
					got, err := br.AppendReverseRelationships(ctx, nil, f, opts)
					checkRels(t, fmt.Sprintf("%s: AppendReverseRelationships(%+v, %+v)", what, f, opts), got, err, m.reverse(f, opts))
				}
			}
		}
	}

	// Answers longer than any backend's page come whole, in order.
	const many = 1234
	var bulk []tuple.Relationship
	for i := range many {
		bulk = append(bulk, tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "wide"}, Relation: "viewer",
			Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%05d", i)}},
			tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%05d", i)}, Relation: "viewer",
				Subject: tuple.SubjectRef{Type: "user", ID: "fan"}})
	}
	m := models[len(models)-1].clone()
	for i := 0; i < len(bulk); i += 500 {
		part := bulk[i:min(i+500, len(bulk))]
		clock.Advance(time.Minute)
		MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error { return touchAll(ctx, tx, part...) })
		m.touch(part...)
	}
	head, err := st.HeadRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := MustSnapshot(t, st, head)
	br = r.(store.BatchReader)
	f := tuple.Filter{ResourceType: "doc", ResourceID: "wide", Relation: "viewer"}
	got, err := br.AppendRelationships(ctx, nil, f, store.QueryOptions{})
	checkRels(t, "AppendRelationships of a wide resource", got, err, m.forward(f, store.QueryOptions{}))
	got, err = br.AppendRelationships(ctx, nil, f, store.QueryOptions{Limit: many - 1})
	checkRels(t, "AppendRelationships of a wide resource, limited", got, err, m.forward(f, store.QueryOptions{Limit: many - 1}))
	rf := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user", ID: "fan", Relation: tuple.Ellipsis}, ResourceType: "doc", Relation: "viewer"}
	got, err = br.AppendReverseRelationships(ctx, nil, rf, store.QueryOptions{})
	checkRels(t, "AppendReverseRelationships of a wide subject", got, err, m.reverse(rf, store.QueryOptions{}))

	// After GC past the first revisions, reading them fails as the
	// queries do, or answers right.
	gc, ok := st.(store.GarbageCollector)
	if !ok {
		return
	}
	clock.Advance(2 * window)
	if _, err := gc.GC(ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}
	old := readers[1]
	if _, _, err := old.(store.PointReader).ReadRelationship(ctx, a.Key(), time.Time{}); err != nil && !errors.Is(err, store.ErrRevisionCompacted) {
		t.Errorf("ReadRelationship at a compacted revision: %v, want ErrRevisionCompacted or the answer", err)
	}
	if _, err := old.(store.BatchReader).AppendRelationships(ctx, nil, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}); err != nil && !errors.Is(err, store.ErrRevisionCompacted) {
		t.Errorf("AppendRelationships at a compacted revision: %v, want ErrRevisionCompacted or the answer", err)
	}
}

func ptr[T any](v T) *T { return &v }
