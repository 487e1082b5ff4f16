package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// model is the suite's own oracle: the relationships stored at one
// revision, queried by brute force.
type model map[tuple.Key]tuple.Relationship

func newModel(rels ...tuple.Relationship) model {
	m := model{}
	m.touch(rels...)
	return m
}

func (m model) clone() model { return maps.Clone(m) }

func (m model) touch(rels ...tuple.Relationship) {
	for _, r := range rels {
		m[r.Key()] = r
	}
}

func (m model) delete(keys ...tuple.Key) {
	for _, k := range keys {
		delete(m, k)
	}
}

// query answers a query by scanning everything, sorting by order and
// applying opts.
func (m model) query(match func(tuple.Relationship) bool, order func(a, b tuple.Key) int, opts store.QueryOptions) []tuple.Relationship {
	var out []tuple.Relationship
	for _, r := range m {
		if !match(r) {
			continue
		}
		if !opts.Now.IsZero() && r.ExpiredAt(opts.Now) {
			continue
		}
		if opts.After != nil && order(r.Key(), *opts.After) <= 0 {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b tuple.Relationship) int { return order(a.Key(), b.Key()) })
	if opts.Limit > 0 && len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	return out
}

func (m model) forward(f tuple.Filter, opts store.QueryOptions) []tuple.Relationship {
	return m.query(f.Matches, CompareForward, opts)
}

func (m model) reverse(f tuple.ReverseFilter, opts store.QueryOptions) []tuple.Relationship {
	return m.query(f.Matches, CompareReverse, opts)
}

// all returns every relationship in forward order.
func (m model) all() []tuple.Relationship { return m.forward(tuple.Filter{}, store.QueryOptions{}) }

// subjectTypes lists the subject types present, for reverse scans of
// everything.
func (m model) subjectTypes() []string {
	seen := map[string]bool{}
	for k := range m {
		seen[k.Subject.Type] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// checkRels fails the test unless got equals want in order (compared in
// tuple text form, which covers caveat context and expiration).
func checkRels(t testing.TB, what string, got []tuple.Relationship, err error, want []tuple.Relationship) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: unexpected error: %v", what, err)
		return
	}
	if g, w := Format(got), Format(want); g != w {
		t.Errorf("%s:\ngot %d relationships:\n%swant %d:\n%s", what, len(got), g, len(want), w)
	}
}

// checkState compares everything r can see, forward and reverse, with m.
func checkState(t testing.TB, what string, r store.Reader, m model) {
	t.Helper()
	ctx := context.Background()
	got, err := Collect(r.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}))
	checkRels(t, what+": forward scan", got, err, m.all())
	types := m.subjectTypes()
	for _, typ := range types {
		f := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: typ}}
		got, err := Collect(r.ReverseQueryRelationships(ctx, f, store.QueryOptions{}))
		checkRels(t, fmt.Sprintf("%s: reverse scan of %s", what, typ), got, err, m.reverse(f, store.QueryOptions{}))
	}
}
