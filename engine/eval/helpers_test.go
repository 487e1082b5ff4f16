package eval

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// testNow is the clock of every test: relationships expire relative to it.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func mustCompile(t testing.TB, src string) *schema.Schema {
	t.Helper()
	s, err := schema.Compile("test.zed", src)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

func mustParse(t testing.TB, lines ...string) []tuple.Relationship {
	t.Helper()
	out := make([]tuple.Relationship, 0, len(lines))
	for _, l := range lines {
		r, err := tuple.Parse(l)
		if err != nil {
			t.Fatalf("parse %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// load writes rels into a fresh memstore through its bulk loader and
// returns a reader at the resulting revision.
func load(t testing.TB, rels []tuple.Relationship) store.Reader {
	t.Helper()
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	rev, _, err := st.Import(ctx, store.WriteMeta{Caller: "test"}, func(yield func(tuple.Relationship, error) bool) {
		for _, r := range rels {
			if !yield(r, nil) {
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	rd, err := st.Snapshot(ctx, rev)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return rd
}

func mustSubject(t testing.TB, s string) tuple.SubjectRef {
	t.Helper()
	sub, err := tuple.ParseSubject(s)
	if err != nil {
		t.Fatalf("subject %q: %v", s, err)
	}
	return sub
}

func mustObject(t testing.TB, s string) tuple.ObjectRef {
	t.Helper()
	o, err := tuple.ParseObject(s)
	if err != nil {
		t.Fatalf("object %q: %v", s, err)
	}
	return o
}

// collect drains a lookup sequence.
func collect[T any](t testing.TB, seq func(func(T, error) bool)) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatalf("lookup: %v", err)
		}
		out = append(out, v)
	}
	return out
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }
