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

var errAbort = errors.New("storetest: deliberate abort")

func (s *suite) testRevisions(t *testing.T) {
	ctx := context.Background()
	st, _ := s.open(t, Config{MaxBatchOps: 3})
	rels := MustParse(t, "doc:1#viewer@user:anne", "doc:1#viewer@user:bob", "doc:2#owner@user:anne")

	if got := MustHead(t, st); got != 0 {
		t.Fatalf("head of an empty store = %d, want 0", got)
	}
	r0 := MustSnapshot(t, st, 0)
	if r0.Revision() != 0 {
		t.Errorf("Snapshot(0).Revision() = %d, want 0", r0.Revision())
	}
	checkState(t, "empty store at 0", r0, newModel())
	if text, rev, err := r0.ReadSchema(ctx); err != nil || text != "" || rev != 0 {
		t.Errorf("ReadSchema on an empty store = (%q, %d, %v), want (\"\", 0, nil)", text, rev, err)
	}

	// Each successful Update commits head+1, even when it writes nothing.
	want := store.Revision(0)
	for i, fn := range []func(ctx context.Context, tx store.Tx) error{
		func(ctx context.Context, tx store.Tx) error { return tx.Touch(ctx, rels[0]) },
		func(ctx context.Context, tx store.Tx) error { return nil },
		func(ctx context.Context, tx store.Tx) error { return tx.Delete(ctx, rels[2].Key()) },
	} {
		want++
		if got := MustUpdate(t, st, fn); got != want {
			t.Errorf("update %d committed revision %d, want %d", i, got, want)
		}
		if got := MustHead(t, st); got != want {
			t.Errorf("after update %d head = %d, want %d", i, got, want)
		}
	}
	m := newModel(rels[0])

	// A failed Update writes nothing and uses no revision.
	failures := []struct {
		name  string
		fn    func(ctx context.Context, tx store.Tx) error
		check func(error) bool
	}{
		{"fn error", func(ctx context.Context, tx store.Tx) error {
			if err := tx.Touch(ctx, rels[1]); err != nil {
				return err
			}
			if err := tx.WriteSchema(ctx, "definition user {}"); err != nil {
				return err
			}
			return errAbort
		}, func(err error) bool { return errors.Is(err, errAbort) }},
		{"already exists", func(ctx context.Context, tx store.Tx) error {
			if err := tx.Touch(ctx, rels[1]); err != nil {
				return err
			}
			return tx.Create(ctx, rels[0])
		}, func(err error) bool { return errors.Is(err, store.ErrAlreadyExists) }},
		{"too many operations", func(ctx context.Context, tx store.Tx) error {
			for _, r := range append(rels, rels[0]) {
				_ = tx.Touch(ctx, r) // the transaction fails even though fn ignores the error
			}
			return nil
		}, func(err error) bool { return errors.Is(err, store.ErrBatchTooLarge) }},
		{"invalid relationship", func(ctx context.Context, tx store.Tx) error {
			if err := tx.Touch(ctx, rels[1]); err != nil {
				return err
			}
			return tx.Touch(ctx, tuple.Relationship{Resource: tuple.ObjectRef{Type: "Doc", ID: "1"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "x"}})
		}, func(err error) bool { return errors.Is(err, tuple.ErrInvalid) }},
		{"invalid key to delete", func(ctx context.Context, tx store.Tx) error {
			if err := tx.Touch(ctx, rels[1]); err != nil {
				return err
			}
			return tx.Delete(ctx, tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: ""}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "x"}})
		}, func(err error) bool { return errors.Is(err, tuple.ErrInvalid) }},
	}
	for _, tc := range failures {
		rev, err := st.Update(ctx, store.WriteMeta{}, tc.fn)
		if err == nil || !tc.check(err) {
			t.Errorf("%s: Update = (%d, %v), want the matching error", tc.name, rev, err)
		}
		if got := MustHead(t, st); got != want {
			t.Errorf("%s: head = %d after a failed Update, want %d", tc.name, got, want)
		}
	}
	checkState(t, "after failed updates", MustSnapshot(t, st, want), m)
	if text, _, err := MustSnapshot(t, st, want).ReadSchema(ctx); err != nil || text != "" {
		t.Errorf("a failed Update wrote schema %q (err %v)", text, err)
	}
	want++
	if got := MustTouch(t, st, rels[1]); got != want {
		t.Errorf("Update after failures committed %d, want %d", got, want)
	}

	// Future revisions.
	for _, rev := range []store.Revision{want + 1, want + 100} {
		_, err := st.Snapshot(ctx, rev)
		var fe *store.FutureError
		if !errors.Is(err, store.ErrRevisionFuture) || !errors.As(err, &fe) {
			t.Errorf("Snapshot(%d) with head %d: err = %v, want *FutureError", rev, want, err)
			continue
		}
		if fe.Requested != rev || fe.Head != want {
			t.Errorf("FutureError = %+v, want Requested %d Head %d", fe, rev, want)
		}
	}

	// A cancelled context fails Update without committing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Update(cctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
		return tx.Touch(ctx, rels[2])
	}); err == nil {
		t.Errorf("Update with a cancelled context succeeded")
	}
	if got := MustHead(t, st); got != want {
		t.Errorf("head = %d after a cancelled Update, want %d", got, want)
	}
}

func (s *suite) testMVCC(t *testing.T) {
	ctx := context.Background()
	st, clock := s.open(t, Config{})
	exp := startTime().Add(48 * time.Hour)
	rels := MustParse(t,
		"doc:a#viewer@user:1",
		"doc:b#viewer@group:eng#member",
		"doc:c#owner@user:2",
		"folder:x#parent@doc:a",
		"doc:a#viewer@user:*",
	)
	a, b, c, d, e := rels[0], rels[1], rels[2], rels[3], rels[4]
	aCaveat := a
	aCaveat.Caveat = &tuple.Caveat{Name: "weekday", Context: map[string]any{"tz": "UTC"}}
	aExp := a
	aExp.Expiration = exp

	type step struct {
		name string
		fn   func(ctx context.Context, tx store.Tx) error
		next func(m model)
	}
	steps := []step{
		{"touch a b c", func(ctx context.Context, tx store.Tx) error {
			return touchAll(ctx, tx, a, b, c)
		}, func(m model) { m.touch(a, b, c) }},
		{"overwrite a with a caveat, add d", func(ctx context.Context, tx store.Tx) error {
			return touchAll(ctx, tx, aCaveat, d)
		}, func(m model) { m.touch(aCaveat, d) }},
		{"delete b", func(ctx context.Context, tx store.Tx) error {
			return tx.Delete(ctx, b.Key())
		}, func(m model) { m.delete(b.Key()) }},
		{"overwrite a with an expiration, create e", func(ctx context.Context, tx store.Tx) error {
			if err := tx.Touch(ctx, aExp); err != nil {
				return err
			}
			return tx.Create(ctx, e)
		}, func(m model) { m.touch(aExp, e) }},
		{"delete matching doc:c", func(ctx context.Context, tx store.Tx) error {
			_, err := tx.DeleteMatching(ctx, tuple.Filter{ResourceType: "doc", ResourceID: "c"}, 0)
			return err
		}, func(m model) { m.delete(c.Key()) }},
		{"recreate b, overwrite a plain", func(ctx context.Context, tx store.Tx) error {
			return touchAll(ctx, tx, b, a)
		}, func(m model) { m.touch(b, a) }},
		{"delete everything", func(ctx context.Context, tx store.Tx) error {
			for _, r := range []tuple.Relationship{a, b, d, e} {
				if err := tx.Delete(ctx, r.Key()); err != nil {
					return err
				}
			}
			return nil
		}, func(m model) { m.delete(a.Key(), b.Key(), d.Key(), e.Key()) }},
	}

	models := []model{newModel()}
	readers := []store.Reader{MustSnapshot(t, st, 0)}
	for i, stp := range steps {
		clock.Advance(time.Minute)
		rev := MustUpdate(t, st, stp.fn)
		if rev != store.Revision(i+1) {
			t.Fatalf("%s: committed %d, want %d", stp.name, rev, i+1)
		}
		m := models[i].clone()
		stp.next(m)
		models = append(models, m)
		readers = append(readers, MustSnapshot(t, st, rev))
		// Every earlier reader, and a fresh one, still sees its own revision.
		for j, r := range readers {
			checkState(t, revName(j)+" (after "+stp.name+")", r, models[j])
		}
	}
	for j := range models {
		checkState(t, "fresh reader at "+revName(j), MustSnapshot(t, st, store.Revision(j)), models[j])
	}

	// Point reads at each revision agree with the model too.
	for j, m := range models {
		r := readers[j]
		for _, rel := range []tuple.Relationship{a, b, c, d, e} {
			f := tuple.Filter{ResourceType: rel.Resource.Type, ResourceID: rel.Resource.ID, Relation: rel.Relation,
				Subject: &tuple.SubjectFilter{Type: rel.Subject.Type, ID: rel.Subject.ID, Relation: ellipsisIfPlain(rel.Subject.Relation)}}
			got, err := Collect(r.QueryRelationships(ctx, f, store.QueryOptions{}))
			checkRels(t, "point read of "+rel.Key().String()+" at "+revName(j), got, err, m.forward(f, store.QueryOptions{}))
		}
	}
}

func revName(j int) string { return fmt.Sprintf("revision %d", j) }

func ellipsisIfPlain(rel string) string {
	if rel == "" {
		return tuple.Ellipsis
	}
	return rel
}

func touchAll(ctx context.Context, tx store.Tx, rels ...tuple.Relationship) error {
	for _, r := range rels {
		if err := tx.Touch(ctx, r); err != nil {
			return err
		}
	}
	return nil
}
