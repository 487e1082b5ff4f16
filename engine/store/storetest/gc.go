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

// testGCExpired checks that GC removes expired relationships once their
// expiry is older than the window, and nothing else: the current version
// of a key, written at or below the horizon, whose expiration is at or
// before the cutoff (now - window). Reads that evaluate expiry at or after
// the cutoff answer the same before and after every run, at every
// readable revision; reads with a zero Now (which show expired
// relationships) show that the rows are gone; change sets still in the
// window are unaltered, and the removal adds none.
func (s *suite) testGCExpired(t *testing.T) {
	ctx := context.Background()
	const window = time.Hour
	st, clock := s.open(t, Config{GCWindow: window})
	gc, ok := st.(store.GarbageCollector)
	if !ok {
		t.Skipf("%s store does not implement store.GarbageCollector", st.Kind())
	}
	t0 := startTime()
	at := func(text string, exp time.Time) tuple.Relationship {
		r := MustParse(t, text)[0]
		r.Expiration = exp.UTC()
		return r
	}
	var (
		short    = at("doc:short#viewer@user:1", t0.Add(10*time.Minute))          // expires while current
		edge     = at("doc:edge#viewer@group:g#member", t0.Add(10*time.Minute+1)) // a nanosecond later
		plain    = at("doc:plain#viewer@user:1", time.Time{})                     // never expires
		long     = at("doc:long#viewer@user:1", t0.Add(100*time.Hour))            // expires much later
		renewed1 = at("doc:renewed#viewer@user:1", t0.Add(5*time.Minute))         // replaced at 3 by renewed3
		renewed3 = at("doc:renewed#viewer@user:1", t0.Add(100*time.Hour))
		revoked  = at("doc:revoked#viewer@user:1", t0.Add(5*time.Minute)) // deleted at 2
		late     = at("doc:late#viewer@user:1", t0.Add(2*time.Minute))    // written at 3, already expired
		tick     = at("doc:tick#viewer@user:2", time.Time{})              // written at 4
	)
	models := []model{newModel()}
	times := []time.Time{t0}
	step := func(d time.Duration, fn func(ctx context.Context, tx store.Tx) error, next func(m model)) {
		t.Helper()
		times = append(times, clock.Advance(d))
		MustUpdate(t, st, fn)
		m := models[len(models)-1].clone()
		next(m)
		models = append(models, m)
	}
	step(time.Minute, func(ctx context.Context, tx store.Tx) error { // 1 at t0+1m
		return touchAll(ctx, tx, short, edge, plain, long, renewed1, revoked)
	}, func(m model) { m.touch(short, edge, plain, long, renewed1, revoked) })
	step(19*time.Minute, func(ctx context.Context, tx store.Tx) error { // 2 at t0+20m
		return tx.Delete(ctx, revoked.Key())
	}, func(m model) { m.delete(revoked.Key()) })
	step(10*time.Minute, func(ctx context.Context, tx store.Tx) error { // 3 at t0+30m
		return touchAll(ctx, tx, renewed3, late)
	}, func(m model) { m.touch(renewed3, late) })
	step(10*time.Minute, func(ctx context.Context, tx store.Tx) error { // 4 at t0+40m
		return touchAll(ctx, tx, tick)
	}, func(m model) { m.touch(tick) })
	head := MustHead(t, st)
	history := watchN(t, st, 0, int(head))

	gone := map[tuple.Key]bool{} // removed from every readable revision
	var totalExpired int
	runGC := func(what string, now time.Time, wantHorizon store.Revision, wantGone ...tuple.Relationship) {
		t.Helper()
		stats, err := gc.GC(ctx, now)
		if err != nil {
			t.Fatalf("%s: GC: %v", what, err)
		}
		if stats.Horizon != wantHorizon {
			t.Errorf("%s: horizon %d, want %d", what, stats.Horizon, wantHorizon)
		}
		if stats.Expired != len(wantGone) {
			t.Errorf("%s: GC removed %d expired relationships, want %d (%v)", what, stats.Expired, len(wantGone), wantGone)
		}
		if stats.Removed < stats.Expired {
			t.Errorf("%s: Removed %d < Expired %d", what, stats.Removed, stats.Expired)
		}
		totalExpired += len(wantGone)
		for _, r := range wantGone {
			gone[r.Key()] = true
		}
		cutoff := now.Add(-window)
		for rev := wantHorizon; rev <= head; rev++ {
			r := MustSnapshot(t, st, rev)
			name := fmt.Sprintf("%s: revision %d", what, rev)
			// Expiry evaluated at or after the cutoff: the same answers.
			for _, qnow := range []time.Time{cutoff, now, times[rev].Add(window)} {
				if qnow.Before(cutoff) {
					continue
				}
				opts := store.QueryOptions{Now: qnow}
				got, err := Collect(r.QueryRelationships(ctx, tuple.Filter{}, opts))
				checkRels(t, fmt.Sprintf("%s, now %v: forward", name, qnow), got, err, models[rev].forward(tuple.Filter{}, opts))
				rf := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}
				got, err = Collect(r.ReverseQueryRelationships(ctx, rf, opts))
				checkRels(t, fmt.Sprintf("%s, now %v: reverse", name, qnow), got, err, models[rev].reverse(rf, opts))
			}
			// A zero Now shows what is stored: the removed ones are gone.
			m := models[rev].clone()
			for k := range gone {
				m.delete(k)
			}
			checkState(t, name+", zero now", r, m)
		}
		// The change sets in the window are unaltered; none was added.
		if got := watchN(t, st, wantHorizon, int(head-wantHorizon)); len(got) == int(head-wantHorizon) {
			for i, cs := range got {
				checkChangeSet(t, cs, history[int(wantHorizon)+i])
			}
		}
		if head := MustHead(t, st); head != store.Revision(len(models)-1) {
			t.Errorf("%s: head %d, want %d: GC must not commit a revision", what, head, len(models)-1)
		}
		if rep, ok := st.(store.GCReporter); ok {
			if got := rep.GCTotals().Expired; got != uint64(totalExpired) {
				t.Errorf("%s: GCTotals().Expired = %d, want %d", what, got, totalExpired)
			}
		}
	}

	runGC("revision 1 still inside the window", times[1].Add(window-1), 0)
	// Cutoff t0+10m: short expired exactly at the cutoff; edge a nanosecond
	// after it; renewed1 and revoked expired but are no longer current.
	runGC("short expired at the cutoff", t0.Add(10*time.Minute+window), 1, short)
	runGC("edge expired a nanosecond later", t0.Add(10*time.Minute+window+1), 1, edge)
	// Cutoff t0+20m: revision 2 is the horizon, revoked's tombstone goes as
	// any deletion does, not as an expiry.
	runGC("the revocation leaves the window", times[2].Add(window), 2)
	// late expired before it was written: it goes only once revision 3,
	// which wrote it, leaves the window.
	runGC("just before the write of late leaves the window", times[3].Add(window-1), 2)
	runGC("the write of late leaves the window", times[4].Add(window), 4, late)
	runGC("again", times[4].Add(window), 4)
	runGC("long and renewed expire", t0.Add(100*time.Hour+window), 4, long, renewed3)

	// A removed relationship can be created again; the new version is
	// an ordinary write.
	rev := MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error { return tx.Create(ctx, short) })
	m := newModel(plain, tick, short)
	checkState(t, "short created again", MustSnapshot(t, st, rev), m)
	if got := watchN(t, st, rev-1, 1); len(got) == 1 {
		checkChangeSet(t, got[0], store.ChangeSet{Revision: rev, Caller: "storetest", Time: clock.Now(),
			Changes: []store.Change{change(store.OpCreate, short)}})
	}
}
