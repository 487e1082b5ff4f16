package txbuf

import (
	"context"
	"errors"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

var errDone = errors.New("test: transaction already finished")

func view(c store.Change) (store.Op, tuple.Key, tuple.Relationship) {
	return c.Op, c.Relationship.Key(), c.Relationship
}

func newBuf(maxOps int) *Buffer[store.Change] {
	return New(Config[store.Change]{Prefix: "test", MaxOps: maxOps, Done: errDone, View: view})
}

func rel(t *testing.T, s string) tuple.Relationship {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rels is a Querier over a fixed, sorted list of relationships.
type rels struct {
	list    []tuple.Relationship
	err     error
	queries []store.QueryOptions
}

func (q *rels) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	q.queries = append(q.queries, opts)
	return func(yield func(tuple.Relationship, error) bool) {
		if q.err != nil {
			yield(tuple.Relationship{}, q.err)
			return
		}
		n := 0
		for _, r := range q.list {
			if !f.Matches(r) {
				continue
			}
			if opts.Limit > 0 && n == opts.Limit {
				return
			}
			n++
			if !yield(r, nil) {
				return
			}
		}
	}
}

func TestCount(t *testing.T) {
	b := newBuf(2)
	for i := range 2 {
		if err := b.Count(); err != nil {
			t.Fatalf("operation %d: %v", i+1, err)
		}
	}
	err := b.Count()
	if !errors.Is(err, store.ErrBatchTooLarge) {
		t.Fatalf("third operation: %v, want ErrBatchTooLarge", err)
	}
	if want := "test: more than 2 operations: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want prefix %q", err, want)
	}
}

func TestFailIsStickyAndFirstWins(t *testing.T) {
	b := newBuf(10)
	if err := b.Check(); err != nil {
		t.Fatalf("fresh buffer: %v", err)
	}
	if err := b.Fail(nil); err != nil || b.Check() != nil {
		t.Fatalf("Fail(nil) = %v, Check = %v; want nil, nil", err, b.Check())
	}
	first, second := errors.New("first"), errors.New("second")
	if err := b.Fail(first); err != first {
		t.Fatalf("Fail returned %v, want its argument", err)
	}
	if err := b.Fail(second); err != second {
		t.Fatalf("Fail returned %v, want its argument", err)
	}
	if err := b.Check(); err != first {
		t.Errorf("Check = %v, want the first failure", err)
	}
	if err := b.Finish(context.Background(), nil); err != first {
		t.Errorf("Finish = %v, want the sticky failure", err)
	}
}

func TestFinish(t *testing.T) {
	fnErr := errors.New("fn")
	b := newBuf(10)
	b.Fail(errors.New("sticky"))
	if err := b.Finish(context.Background(), fnErr); err != fnErr {
		t.Errorf("Finish = %v, want fn's error first", err)
	}
	if err := b.Check(); err != errDone {
		t.Errorf("Check after Finish = %v, want Done", err)
	}
	late := errors.New("late")
	if err := b.Fail(late); err != late {
		t.Errorf("Fail after Finish returned %v, want its argument", err)
	}
	if b.err == late {
		t.Error("Fail after Finish replaced the sticky error")
	}
	if err := b.WriteSchema("x"); err != errDone || b.Schema() != nil {
		t.Errorf("WriteSchema after Finish = %v, schema %v; want Done, nil", err, b.Schema())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newBuf(10).Finish(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Finish with a canceled context = %v, want context.Canceled", err)
	}
	if err := newBuf(10).Finish(context.Background(), nil); err != nil {
		t.Errorf("Finish = %v, want nil", err)
	}
}

func TestRecordLastWriteWinsInFirstWriteOrder(t *testing.T) {
	b := newBuf(10)
	a, c := rel(t, "doc:a#viewer@user:tom"), rel(t, "doc:c#viewer@user:tom")
	b.Record(c.Key(), store.Change{Op: store.OpTouch, Relationship: c})
	b.Record(a.Key(), store.Change{Op: store.OpCreate, Relationship: a})
	b.Record(c.Key(), store.Change{Op: store.OpDelete, Relationship: c})
	want := []store.Change{{Op: store.OpDelete, Relationship: c}, {Op: store.OpCreate, Relationship: a}}
	got := b.Changes()
	if len(got) != len(want) {
		t.Fatalf("Changes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Op != want[i].Op || got[i].Relationship.Key() != want[i].Relationship.Key() {
			t.Errorf("change %d = %v, want %v", i, got[i], want[i])
		}
	}
	if p, ok := b.Pending(c.Key()); !ok || p.Op != store.OpDelete {
		t.Errorf("Pending(c) = %v, %v; want the deletion", p, ok)
	}
	if _, ok := b.Pending(rel(t, "doc:b#viewer@user:tom").Key()); ok {
		t.Error("Pending of an unwritten key reports a change")
	}
	if err := b.WriteSchema("definition user {}"); err != nil || b.Schema() == nil || *b.Schema() != "definition user {}" {
		t.Errorf("WriteSchema = %v, Schema = %v", err, b.Schema())
	}
}

func TestGet(t *testing.T) {
	tom := rel(t, "doc:a#viewer@user:tom")
	group := rel(t, "doc:a#viewer@group:eng#member")
	q := &rels{list: []tuple.Relationship{group, tom}}
	for _, r := range []tuple.Relationship{tom, group} {
		got, found, err := Get(context.Background(), q, r.Key())
		if err != nil || !found || got.Key() != r.Key() {
			t.Errorf("Get(%v) = %v, %v, %v", r.Key(), got, found, err)
		}
	}
	if _, found, err := Get(context.Background(), q, rel(t, "doc:a#viewer@user:ann").Key()); found || err != nil {
		t.Errorf("Get of an absent key = %v, %v; want false, nil", found, err)
	}
	for _, o := range q.queries {
		if o.Limit != 1 {
			t.Errorf("Get queried with limit %d, want 1", o.Limit)
		}
	}
	boom := errors.New("boom")
	if _, found, err := Get(context.Background(), &rels{err: boom}, tom.Key()); found || err != boom {
		t.Errorf("Get with a failing reader = %v, %v; want false, boom", found, err)
	}
}

func TestExists(t *testing.T) {
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	live, expired := rel(t, "doc:a#viewer@user:tom"), rel(t, "doc:b#viewer@user:tom")
	expired.Expiration = now.Add(-time.Second)
	absent := rel(t, "doc:c#viewer@user:tom")
	q := &rels{list: []tuple.Relationship{live, expired}}
	b := newBuf(10)
	for _, tc := range []struct {
		k    tuple.Key
		want bool
	}{{live.Key(), true}, {expired.Key(), false}, {absent.Key(), false}} {
		if got, err := b.Exists(context.Background(), q, tc.k, clock); err != nil || got != tc.want {
			t.Errorf("Exists(%v) = %v, %v; want %v", tc.k, got, err, tc.want)
		}
	}
	// Pending changes decide, without reading.
	b.Record(live.Key(), store.Change{Op: store.OpDelete, Relationship: live})
	b.Record(absent.Key(), store.Change{Op: store.OpTouch, Relationship: absent})
	q.queries = nil
	if got, _ := b.Exists(context.Background(), q, live.Key(), clock); got {
		t.Error("a key deleted in the transaction exists")
	}
	if got, _ := b.Exists(context.Background(), q, absent.Key(), clock); !got {
		t.Error("a key written in the transaction does not exist")
	}
	if len(q.queries) != 0 {
		t.Errorf("Exists read %d times for pending keys", len(q.queries))
	}
}

func keysOf(t *testing.T, ss ...string) []tuple.Key {
	var ks []tuple.Key
	for _, s := range ss {
		ks = append(ks, rel(t, s).Key())
	}
	return ks
}

func compareKeys(a, b tuple.Key) int { return strings.Compare(a.String(), b.String()) }

func TestMatching(t *testing.T) {
	stored := []tuple.Relationship{
		rel(t, "doc:a#viewer@user:tom"),
		rel(t, "doc:b#viewer@user:tom"),
		rel(t, "doc:c#viewer@user:tom"),
		rel(t, "folder:x#viewer@user:tom"),
	}
	f := tuple.Filter{ResourceType: "doc"}
	newTx := func() (*Buffer[store.Change], *rels) {
		b := newBuf(100)
		// b is deleted, d is written, folder:y does not match.
		b.Record(stored[1].Key(), store.Change{Op: store.OpDelete, Relationship: stored[1]})
		d, y := rel(t, "doc:d#viewer@user:tom"), rel(t, "folder:y#viewer@user:tom")
		b.Record(d.Key(), store.Change{Op: store.OpTouch, Relationship: d})
		b.Record(y.Key(), store.Change{Op: store.OpTouch, Relationship: y})
		// a is rewritten: it must be listed once.
		b.Record(stored[0].Key(), store.Change{Op: store.OpTouch, Relationship: stored[0]})
		return b, &rels{list: stored}
	}

	b, q := newTx()
	got, err := b.Matching(context.Background(), q, f, 0, compareKeys)
	if err != nil {
		t.Fatal(err)
	}
	if want := keysOf(t, "doc:a#viewer@user:tom", "doc:c#viewer@user:tom", "doc:d#viewer@user:tom"); !slices.Equal(got, want) {
		t.Errorf("Matching without limit = %v, want %v", got, want)
	}
	if q.queries[0].Limit != 0 {
		t.Errorf("no limit queried with limit %d", q.queries[0].Limit)
	}

	b, q = newTx()
	got, err = b.Matching(context.Background(), q, f, 2, compareKeys)
	if err != nil {
		t.Fatal(err)
	}
	if want := keysOf(t, "doc:a#viewer@user:tom", "doc:c#viewer@user:tom"); !slices.Equal(got, want) {
		t.Errorf("Matching with limit 2 = %v, want %v", got, want)
	}
	// Each pending change can hide one stored match.
	if want := 2 + len(b.Changes()); q.queries[0].Limit != want {
		t.Errorf("limit 2 queried with limit %d, want %d", q.queries[0].Limit, want)
	}
	if len(b.Changes()) != 4 {
		t.Errorf("Matching recorded changes: %v", b.Changes())
	}

	boom := errors.New("boom")
	b, _ = newTx()
	if _, err := b.Matching(context.Background(), &rels{err: boom}, f, 0, compareKeys); err != boom {
		t.Errorf("Matching with a failing reader = %v, want boom", err)
	}
}
