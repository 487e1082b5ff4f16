package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// guard bounds how long the suite waits for something that should happen
// at once. It only turns a hang into a failure; nothing waits for it to
// pass.
const guard = 10 * time.Second

func (s *suite) testWatch(t *testing.T) {
	t.Run("history", s.testWatchHistory)
	t.Run("live", s.testWatchLive)
}

// watchN reads n change sets after after, failing on any error.
func watchN(t testing.TB, st store.Store, after store.Revision, n int) []store.ChangeSet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	var out []store.ChangeSet
	if n == 0 {
		return out
	}
	for cs, err := range st.Watch(ctx, after) {
		if err != nil {
			t.Fatalf("watch after %d: %v (after %d change sets)", after, err, len(out))
		}
		out = append(out, cs)
		if len(out) == n {
			break
		}
	}
	return out
}

// checkChangeSet compares a change set with the expected one. Changes are
// compared as a multiset; a deletion is compared by key only.
func checkChangeSet(t testing.TB, got, want store.ChangeSet) {
	t.Helper()
	what := fmt.Sprintf("change set %d", want.Revision)
	if got.Revision != want.Revision {
		t.Errorf("%s: revision %d", what, got.Revision)
	}
	if got.Caller != want.Caller {
		t.Errorf("%s: caller %q, want %q", what, got.Caller, want.Caller)
	}
	if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
		t.Errorf("%s: time %v, want %v in UTC", what, got.Time, want.Time.UTC())
	}
	if got.SchemaChanged != want.SchemaChanged {
		t.Errorf("%s: SchemaChanged %v, want %v", what, got.SchemaChanged, want.SchemaChanged)
	}
	order := func(a, b store.Change) int {
		return cmp.Or(CompareForward(a.Relationship.Key(), b.Relationship.Key()), cmp.Compare(a.Op, b.Op))
	}
	g, w := slices.Clone(got.Changes), slices.Clone(want.Changes)
	slices.SortFunc(g, order)
	slices.SortFunc(w, order)
	if len(g) != len(w) {
		t.Errorf("%s: %d changes %v, want %d %v", what, len(g), g, len(w), w)
		return
	}
	for i := range g {
		if g[i].Op != w[i].Op || g[i].Relationship.Key() != w[i].Relationship.Key() {
			t.Errorf("%s: change %s %s, want %s %s", what, g[i].Op, g[i].Relationship.Key(), w[i].Op, w[i].Relationship.Key())
			continue
		}
		if g[i].Op != store.OpDelete {
			if msg := diffRelationship(g[i].Relationship, w[i].Relationship); msg != "" {
				t.Errorf("%s: %s %s: %s", what, g[i].Op, g[i].Relationship.Key(), msg)
			}
		}
	}
}

func change(op store.Op, r tuple.Relationship) store.Change {
	return store.Change{Op: op, Relationship: r}
}

func (s *suite) testWatchHistory(t *testing.T) {
	ctx := context.Background()
	st, clock := s.open(t, Config{})
	rels := MustParse(t, "doc:1#viewer@user:a", "doc:1#viewer@user:b", "doc:2#viewer@group:eng#member", "folder:1#viewer@user:a")
	a, b, c, d := rels[0], rels[1], rels[2], rels[3]
	c.Caveat = &tuple.Caveat{Name: "weekday", Context: map[string]any{"tz": "UTC"}}
	c.Expiration = startTime().Add(time.Hour)

	var want []store.ChangeSet
	write := func(caller string, fn func(ctx context.Context, tx store.Tx) error, cs store.ChangeSet) {
		t.Helper()
		now := clock.Advance(time.Second + time.Nanosecond)
		rev, err := st.Update(ctx, store.WriteMeta{Caller: caller}, fn)
		if err != nil {
			t.Fatalf("update by %s: %v", caller, err)
		}
		cs.Revision, cs.Caller, cs.Time = rev, caller, now
		want = append(want, cs)
	}
	write("alice", func(ctx context.Context, tx store.Tx) error {
		if err := tx.Touch(ctx, a); err != nil {
			return err
		}
		if err := tx.Create(ctx, b); err != nil {
			return err
		}
		return tx.WriteSchema(ctx, "definition user {}")
	}, store.ChangeSet{Changes: []store.Change{change(store.OpTouch, a), change(store.OpCreate, b)}, SchemaChanged: true})
	write("bob", func(ctx context.Context, tx store.Tx) error {
		if err := tx.Delete(ctx, a.Key()); err != nil {
			return err
		}
		return touchAll(ctx, tx, c, d)
	}, store.ChangeSet{Changes: []store.Change{change(store.OpDelete, a), change(store.OpTouch, c), change(store.OpTouch, d)}})
	write("carol", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.DeleteMatching(ctx, tuple.Filter{ResourceType: "doc"}, 0)
		return err
	}, store.ChangeSet{Changes: []store.Change{change(store.OpDelete, b), change(store.OpDelete, c)}})
	write("dave", func(ctx context.Context, tx store.Tx) error {
		return tx.WriteSchema(ctx, "definition user {}\ndefinition doc {}")
	}, store.ChangeSet{SchemaChanged: true})
	write("", func(ctx context.Context, tx store.Tx) error {
		return tx.Touch(ctx, a)
	}, store.ChangeSet{Changes: []store.Change{change(store.OpTouch, a)}})

	for after := range len(want) {
		got := watchN(t, st, store.Revision(after), len(want)-after)
		for i, cs := range got {
			checkChangeSet(t, cs, want[after+i])
		}
	}

	// A context that is already cancelled ends the sequence with its error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	var errs []error
	for _, err := range st.Watch(cctx, 0) {
		errs = append(errs, err)
		if len(errs) > len(want)+1 {
			break
		}
	}
	if len(errs) == 0 || !errors.Is(errs[len(errs)-1], context.Canceled) {
		t.Errorf("watch with a cancelled context yielded errors %v, want to end with context.Canceled", errs)
	}
}

// watchItem is one pair yielded by Watch.
type watchItem struct {
	cs  store.ChangeSet
	err error
}

// startWatch runs a Watch loop in a goroutine that forwards every pair
// into the returned channel and closes it when the sequence ends.
func startWatch(ctx context.Context, st store.Store, after store.Revision) <-chan watchItem {
	ch := make(chan watchItem)
	go func() {
		defer close(ch)
		for cs, err := range st.Watch(ctx, after) {
			select {
			case ch <- watchItem{cs, err}:
			case <-time.After(guard):
				return // the test stopped listening; do not leak
			}
		}
	}()
	return ch
}

// receive returns the next item from ch, failing the test after guard.
func receive(t testing.TB, ch <-chan watchItem) (watchItem, bool) {
	t.Helper()
	select {
	case it, ok := <-ch:
		return it, ok
	case <-time.After(guard):
		t.Fatalf("watch: nothing received within %v", guard)
		return watchItem{}, false
	}
}

func (s *suite) testWatchLive(t *testing.T) {
	st, clock := s.open(t, Config{})
	MustTouch(t, st, MustParse(t, "doc:0#viewer@user:old")...)
	head := MustHead(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchers := []<-chan watchItem{startWatch(ctx, st, head), startWatch(ctx, st, head)}

	for i := range 3 {
		rel := MustParse(t, fmt.Sprintf("doc:%d#viewer@user:u%d", i, i))[0]
		now := clock.Advance(time.Minute)
		rev, err := st.Update(ctx, store.WriteMeta{Caller: "live"}, func(ctx context.Context, tx store.Tx) error {
			return tx.Touch(ctx, rel)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := store.ChangeSet{Revision: rev, Time: now, Caller: "live", Changes: []store.Change{change(store.OpTouch, rel)}}
		for w, ch := range watchers {
			it, ok := receive(t, ch)
			if !ok || it.err != nil {
				t.Fatalf("watcher %d: sequence ended (%v) before revision %d", w, it.err, rev)
			}
			checkChangeSet(t, it.cs, want)
		}
	}

	cancel()
	for w, ch := range watchers {
		it, ok := receive(t, ch)
		if !ok || !errors.Is(it.err, context.Canceled) {
			t.Errorf("watcher %d after cancel: got (%+v, open %v), want context.Canceled", w, it, ok)
		}
		if it, ok := receive(t, ch); ok {
			t.Errorf("watcher %d: sequence went on after its error: %+v", w, it)
		}
	}
}
