package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func (s *suite) testGC(t *testing.T) {
	ctx := context.Background()
	const window = time.Hour
	st, clock := s.open(t, Config{GCWindow: window})
	gc, ok := st.(store.GarbageCollector)
	if !ok {
		t.Skipf("%s store does not implement store.GarbageCollector", st.Kind())
	}
	rels := MustParse(t,
		"doc:keep#viewer@user:1",         // written at 1, never changed
		"doc:gone#viewer@user:1",         // deleted at 2
		"doc:changed#viewer@user:1",      // replaced at 2 and 4
		"doc:late#viewer@user:1",         // written at 3, deleted at 4
		"doc:new#viewer@user:1",          // written at 4
		"doc:back#viewer@group:g#member", // written at 1, deleted at 2, written again at 3
	)
	keep, gone, changed, late, fresh, back := rels[0], rels[1], rels[2], rels[3], rels[4], rels[5]
	changed2, changed4 := changed, changed
	changed2.Caveat = &tuple.Caveat{Name: "v2"}
	changed4.Caveat = &tuple.Caveat{Name: "v4"}

	models := []model{newModel()}
	times := []time.Time{startTime()}
	schemas := []struct {
		text string
		rev  store.Revision
	}{{"", 0}}
	step := func(d time.Duration, schema string, fn func(ctx context.Context, tx store.Tx) error, next func(m model)) {
		t.Helper()
		now := clock.Advance(d)
		if schema != "" {
			inner := fn
			fn = func(ctx context.Context, tx store.Tx) error {
				if err := inner(ctx, tx); err != nil {
					return err
				}
				return tx.WriteSchema(ctx, schema)
			}
		}
		rev := MustUpdate(t, st, fn)
		m := models[len(models)-1].clone()
		next(m)
		models = append(models, m)
		times = append(times, now)
		sc := schemas[len(schemas)-1]
		if schema != "" {
			sc.text, sc.rev = schema, rev
		}
		schemas = append(schemas, sc)
	}
	step(time.Minute, "schema one", func(ctx context.Context, tx store.Tx) error {
		return touchAll(ctx, tx, keep, gone, changed, back)
	}, func(m model) { m.touch(keep, gone, changed, back) })
	step(time.Minute, "", func(ctx context.Context, tx store.Tx) error {
		if err := tx.Delete(ctx, gone.Key()); err != nil {
			return err
		}
		if err := tx.Delete(ctx, back.Key()); err != nil {
			return err
		}
		return tx.Touch(ctx, changed2)
	}, func(m model) { m.delete(gone.Key(), back.Key()); m.touch(changed2) })
	step(time.Minute, "", func(ctx context.Context, tx store.Tx) error {
		return touchAll(ctx, tx, late, back)
	}, func(m model) { m.touch(late, back) })
	step(10*time.Minute, "schema two", func(ctx context.Context, tx store.Tx) error {
		if err := tx.Delete(ctx, late.Key()); err != nil {
			return err
		}
		return touchAll(ctx, tx, changed4, fresh)
	}, func(m model) { m.delete(late.Key()); m.touch(changed4, fresh) })
	head := MustHead(t, st)
	early := MustSnapshot(t, st, 1) // opened before GC

	check := func(what string, wantHorizon store.Revision) {
		t.Helper()
		for rev := store.Revision(0); rev <= head; rev++ {
			r, err := st.Snapshot(ctx, rev)
			if rev < wantHorizon {
				var ce *store.CompactedError
				if !errors.Is(err, store.ErrRevisionCompacted) || !errors.As(err, &ce) {
					t.Errorf("%s: Snapshot(%d) below horizon %d: err = %v, want *CompactedError", what, rev, wantHorizon, err)
				} else if ce.Requested != rev || ce.Horizon != wantHorizon {
					t.Errorf("%s: CompactedError %+v, want Requested %d Horizon %d", what, ce, rev, wantHorizon)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: Snapshot(%d) with horizon %d: %v", what, rev, wantHorizon, err)
				continue
			}
			checkState(t, what+": "+revName(int(rev)), r, models[rev])
			text, written, err := r.ReadSchema(ctx)
			if w := schemas[rev]; err != nil || text != w.text || written != w.rev {
				t.Errorf("%s: ReadSchema at %d = (%q, %d, %v), want (%q, %d)", what, rev, text, written, err, w.text, w.rev)
			}
		}
		if got := MustHead(t, st); got != head {
			t.Errorf("%s: head = %d, want %d", what, got, head)
		}
		// A reader opened before GC answers correctly or reports compaction.
		got, err := Collect(early.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}))
		if err != nil {
			if !errors.Is(err, store.ErrRevisionCompacted) {
				t.Errorf("%s: early reader: %v, want the right answer or ErrRevisionCompacted", what, err)
			}
		} else {
			checkRels(t, what+": early reader", got, nil, models[1].all())
		}
	}
	runGC := func(what string, now time.Time, wantHorizon store.Revision) {
		t.Helper()
		stats, err := gc.GC(ctx, now)
		if err != nil {
			t.Fatalf("%s: GC: %v", what, err)
		}
		if stats.Horizon != wantHorizon {
			t.Errorf("%s: GC horizon = %d, want %d", what, stats.Horizon, wantHorizon)
		}
		check(what, wantHorizon)
	}

	runGC("inside the window", times[1].Add(window/2), 0)
	runGC("just before revision 2 leaves the window", times[2].Add(window-time.Nanosecond), 1)
	runGC("revision 3 exactly at the cutoff", times[3].Add(window), 3)
	runGC("same time again", times[3].Add(window), 3)
	runGC("an earlier time does not lower the horizon", times[1].Add(window), 3)

	// Watch from below the horizon fails; from the horizon on it works.
	for cs, err := range st.Watch(ctx, 2) {
		if !errors.Is(err, store.ErrRevisionCompacted) {
			t.Errorf("Watch after 2 with horizon 3: (%+v, %v), want ErrRevisionCompacted", cs, err)
		}
		break
	}
	if got := watchN(t, st, 3, 1); got[0].Revision != 4 {
		t.Errorf("Watch after the horizon yielded revision %d, want 4", got[0].Revision)
	}

	runGC("everything outside the window", times[4].Add(10*window), head)

	// Writing after GC continues the revision sequence and sees the
	// surviving state.
	rev := MustTouch(t, st, gone)
	if rev != head+1 {
		t.Errorf("first write after GC committed %d, want %d", rev, head+1)
	}
	m := models[head].clone()
	m.touch(gone)
	checkState(t, "after GC and a new write", MustSnapshot(t, st, rev), m)
	checkState(t, "head before the new write", MustSnapshot(t, st, head), models[head])
	if _, err := gc.GC(ctx, clock.Now()); err != nil {
		t.Errorf("GC with nothing to do: %v", err)
	}
}
