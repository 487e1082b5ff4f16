package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// queryData returns a deterministic set of relationships chosen to stress
// the index order: type names that are prefixes of each other, IDs that
// sort differently as numbers and as bytes, upper and lower case, plain
// subjects next to usersets of the same object, wildcards, and types with
// several "/" prefixes next to the types they extend ("tenant" and
// "tenant/doc" and "tenant/doc/page").
func queryData() []tuple.Relationship {
	resources := []tuple.ObjectRef{
		{Type: "doc", ID: "1"}, {Type: "doc", ID: "10"}, {Type: "doc", ID: "2"},
		{Type: "doc", ID: "A"}, {Type: "doc", ID: "a"}, {Type: "doc", ID: "a-b"}, {Type: "doc", ID: "a.b"},
		{Type: "docs", ID: "1"}, {Type: "doc_x", ID: "1"}, {Type: "folder", ID: "x/y"}, {Type: "tenant/doc", ID: "1"},
		{Type: "tenant", ID: "doc"}, {Type: "tenant/doc/page", ID: "1"}, {Type: "tenant/doc_x", ID: "1"},
	}
	relations := []string{"editor", "owner", "viewer"}
	subjects := []tuple.SubjectRef{
		{Type: "user", ID: "1"}, {Type: "user", ID: "10"}, {Type: "user", ID: "2"}, {Type: "user", ID: "*"},
		{Type: "users", ID: "1"},
		{Type: "group", ID: "eng"}, {Type: "group", ID: "eng", Relation: "admin"}, {Type: "group", ID: "eng", Relation: "member"},
		{Type: "group", ID: "eng2", Relation: "member"}, {Type: "doc", ID: "1"},
		{Type: "org/team/user", ID: "1"}, {Type: "org/team", ID: "user"}, {Type: "org/team/group", ID: "eng", Relation: "member"},
	}
	var out []tuple.Relationship
	n := 0
	for i, res := range resources {
		for j, rel := range relations {
			for k, sub := range subjects {
				n++
				if (i*7+j*5+k*3)%4 == 0 {
					continue // leave gaps so that not every combination exists
				}
				out = append(out, tuple.Relationship{Resource: res, Relation: rel, Subject: sub})
			}
		}
	}
	return out
}

// forwardFilters lists every combination of filled and empty Filter
// fields, with SubjectFilter relations any, plain-only and named, plus
// values that match nothing.
func forwardFilters() []tuple.Filter {
	subjects := []*tuple.SubjectFilter{
		nil,
		{Type: "user"},
		{Type: "user", ID: "1"},
		{Type: "user", ID: "*"},
		{Type: "user", Relation: tuple.Ellipsis},
		{Type: "group"},
		{Type: "group", Relation: tuple.Ellipsis},
		{Type: "group", Relation: "member"},
		{Type: "group", ID: "eng"},
		{Type: "group", ID: "eng", Relation: tuple.Ellipsis},
		{Type: "group", ID: "eng", Relation: "member"},
		{Type: "group", ID: "eng", Relation: "nope"},
		{Type: "nope"},
		{Type: "org/team/user"},
		{Type: "org/team"},
		{Type: "org/team/group", Relation: "member"},
	}
	var out []tuple.Filter
	for _, rt := range []string{"", "doc", "doc_x", "nope", "tenant", "tenant/doc", "tenant/doc/page"} {
		for _, id := range []string{"", "1", "a"} {
			for _, rel := range []string{"", "viewer"} {
				for _, sub := range subjects {
					out = append(out, tuple.Filter{ResourceType: rt, ResourceID: id, Relation: rel, Subject: sub})
				}
			}
		}
	}
	return out
}

func reverseFilters() []tuple.ReverseFilter {
	subjects := []tuple.SubjectFilter{
		{Type: "user"},
		{Type: "user", ID: "1"},
		{Type: "user", ID: "*"},
		{Type: "user", Relation: tuple.Ellipsis},
		{Type: "group"},
		{Type: "group", Relation: tuple.Ellipsis},
		{Type: "group", Relation: "member"},
		{Type: "group", ID: "eng"},
		{Type: "group", ID: "eng", Relation: tuple.Ellipsis},
		{Type: "group", ID: "eng", Relation: "member"},
		{Type: "doc", ID: "1"},
		{Type: "nope"},
		{Type: "org/team/user", ID: "1"},
		{Type: "org/team", ID: "user"},
		{Type: "org/team/group", Relation: "member"},
	}
	var out []tuple.ReverseFilter
	for _, sub := range subjects {
		for _, rt := range []string{"", "doc", "docs", "nope", "tenant/doc", "tenant/doc/page"} {
			for _, rel := range []string{"", "viewer"} {
				out = append(out, tuple.ReverseFilter{Subject: sub, ResourceType: rt, Relation: rel})
			}
		}
	}
	return out
}

func describeFilter(f tuple.Filter) string {
	s := fmt.Sprintf("Filter{%q %q %q", f.ResourceType, f.ResourceID, f.Relation)
	if f.Subject != nil {
		s += fmt.Sprintf(" subject %+v", *f.Subject)
	}
	return s + "}"
}

// querier runs one kind of query; the suite checks forward and reverse
// queries with the same code.
type querier struct {
	name  string
	order func(a, b tuple.Key) int
	run   func(r store.Reader, opts store.QueryOptions) ([]tuple.Relationship, error)
	want  func(m model, opts store.QueryOptions) []tuple.Relationship
}

func queriers() []querier {
	ctx := context.Background()
	var qs []querier
	for _, f := range forwardFilters() {
		qs = append(qs, querier{
			name:  describeFilter(f),
			order: CompareForward,
			run: func(r store.Reader, opts store.QueryOptions) ([]tuple.Relationship, error) {
				return Collect(r.QueryRelationships(ctx, f, opts))
			},
			want: func(m model, opts store.QueryOptions) []tuple.Relationship { return m.forward(f, opts) },
		})
	}
	for _, f := range reverseFilters() {
		qs = append(qs, querier{
			name:  fmt.Sprintf("ReverseFilter%+v", f),
			order: CompareReverse,
			run: func(r store.Reader, opts store.QueryOptions) ([]tuple.Relationship, error) {
				return Collect(r.ReverseQueryRelationships(ctx, f, opts))
			},
			want: func(m model, opts store.QueryOptions) []tuple.Relationship { return m.reverse(f, opts) },
		})
	}
	return qs
}

func (s *suite) testQueries(t *testing.T) {
	t.Run("filters", s.testFilters)
	t.Run("pagination", s.testPagination)
	t.Run("cursor-positions", s.testCursorPositions)
	t.Run("pagination-during-writes", s.testPaginationDuringWrites)
	t.Run("expiration", s.testExpiration)
	t.Run("round-trip", s.testRoundTrip)
	t.Run("nested", s.testNested)
}

// loadQueryData stores queryData in a few transactions and returns the
// model and a reader at the resulting head.
func loadQueryData(t *testing.T, st store.Store) (model, store.Reader) {
	data := queryData()
	var rev store.Revision
	for len(data) > 0 {
		n := min(len(data), 100)
		rev = MustTouch(t, st, data[:n]...)
		data = data[n:]
	}
	return newModel(queryData()...), MustSnapshot(t, st, rev)
}

func (s *suite) testFilters(t *testing.T) {
	st, _ := s.open(t, Config{})
	m, r := loadQueryData(t, st)
	nonEmpty := 0
	for _, q := range queriers() {
		want := q.want(m, store.QueryOptions{})
		if len(want) > 0 {
			nonEmpty++
		}
		got, err := q.run(r, store.QueryOptions{})
		checkRels(t, q.name, got, err, want)
		for _, limit := range []int{1, 3} {
			opts := store.QueryOptions{Limit: limit}
			got, err := q.run(r, opts)
			checkRels(t, fmt.Sprintf("%s limit %d", q.name, limit), got, err, q.want(m, opts))
		}
	}
	if nonEmpty < 100 {
		t.Fatalf("storetest: only %d queries have results; the data set is too sparse", nonEmpty)
	}
}

// testPagination pages through every query with several page sizes and
// demands every relationship exactly once, in order.
func (s *suite) testPagination(t *testing.T) {
	st, _ := s.open(t, Config{})
	m, r := loadQueryData(t, st)
	for _, q := range queriers() {
		want := q.want(m, store.QueryOptions{})
		for _, k := range []int{1, 4, 50} {
			if k == 1 && len(want) > 40 {
				continue // keeps the suite fast; larger pages cover these
			}
			var got []tuple.Relationship
			opts := store.QueryOptions{Limit: k}
			for pages := 0; ; pages++ {
				page, err := q.run(r, opts)
				if err != nil {
					t.Fatalf("%s page %d: %v", q.name, pages, err)
				}
				if len(page) > k {
					t.Fatalf("%s: page of %d relationships with limit %d", q.name, len(page), k)
				}
				got = append(got, page...)
				if len(page) < k || pages > len(want)+1 {
					break
				}
				last := page[len(page)-1].Key()
				opts.After = &last
			}
			checkRels(t, fmt.Sprintf("%s paged by %d", q.name, k), got, nil, want)
		}
	}
}

// testCursorPositions resumes after keys that are not stored: before,
// between and after the matching range.
func (s *suite) testCursorPositions(t *testing.T) {
	st, _ := s.open(t, Config{})
	m, r := loadQueryData(t, st)
	cursors := []tuple.Key{
		{},
		{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "group", ID: "eng"}},
		{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "group", ID: "eng", Relation: "a"}},
		{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "15"}},
		{Resource: tuple.ObjectRef{Type: "doc", ID: "11"}, Relation: "a", Subject: tuple.SubjectRef{Type: "a", ID: "a"}},
		{Resource: tuple.ObjectRef{Type: "doc", ID: "a"}, Relation: "zzz", Subject: tuple.SubjectRef{Type: "zzz", ID: "zzz"}},
		{Resource: tuple.ObjectRef{Type: "docs", ID: "0"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "1"}},
		{Resource: tuple.ObjectRef{Type: "e", ID: "1"}, Relation: "owner", Subject: tuple.SubjectRef{Type: "group", ID: "eng2", Relation: "member"}},
		{Resource: tuple.ObjectRef{Type: "zzz", ID: "zzz"}, Relation: "zzz", Subject: tuple.SubjectRef{Type: "zzz", ID: "zzz", Relation: "zzz"}},
	}
	for _, q := range queriers() {
		all := q.want(m, store.QueryOptions{})
		for _, c := range cursors {
			// The model's answer from the full one: everything after c.
			i := 0
			for i < len(all) && q.order(all[i].Key(), c) <= 0 {
				i++
			}
			opts := store.QueryOptions{After: &c}
			got, err := q.run(r, opts)
			checkRels(t, fmt.Sprintf("%s after %s", q.name, c), got, err, all[i:])
			opts.Limit = 2
			got, err = q.run(r, opts)
			checkRels(t, fmt.Sprintf("%s after %s limit 2", q.name, c), got, err, all[i:min(i+2, len(all))])
		}
	}
}

// testPaginationDuringWrites pages through a reader while writes that
// insert before, between and after the cursor commit between pages.
func (s *suite) testPaginationDuringWrites(t *testing.T) {
	ctx := context.Background()
	st, _ := s.open(t, Config{})
	m, r := loadQueryData(t, st)
	cases := []struct {
		name string
		run  func(opts store.QueryOptions) ([]tuple.Relationship, error)
		want []tuple.Relationship
	}{
		{"forward all", func(opts store.QueryOptions) ([]tuple.Relationship, error) {
			return Collect(r.QueryRelationships(ctx, tuple.Filter{}, opts))
		}, m.all()},
		{"forward doc", func(opts store.QueryOptions) ([]tuple.Relationship, error) {
			return Collect(r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, opts))
		}, m.forward(tuple.Filter{ResourceType: "doc"}, store.QueryOptions{})},
		{"reverse user", func(opts store.QueryOptions) ([]tuple.Relationship, error) {
			return Collect(r.ReverseQueryRelationships(ctx, tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}, opts))
		}, m.reverse(tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}, store.QueryOptions{})},
	}
	for ci, tc := range cases {
		var got []tuple.Relationship
		opts := store.QueryOptions{Limit: 7}
		for page := 0; page <= len(tc.want); page++ {
			rels, err := tc.run(opts)
			if err != nil {
				t.Fatalf("%s page %d: %v", tc.name, page, err)
			}
			got = append(got, rels...)
			if len(rels) < opts.Limit {
				break
			}
			last := rels[len(rels)-1].Key()
			opts.After = &last
			// Delete what was just read and what comes next, and add
			// relationships on both sides of the cursor.
			next := tc.want[min(len(got), len(tc.want)-1)]
			add := MustParse(t,
				fmt.Sprintf("doc:0#viewer@user:w%d_%d", ci, page),
				fmt.Sprintf("%s:%s#%s@user:w%d_%d", last.Resource.Type, last.Resource.ID, last.Relation, ci, page),
				fmt.Sprintf("zzz:z#viewer@user:w%d_%d", ci, page),
			)
			MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
				if err := tx.Delete(ctx, last); err != nil {
					return err
				}
				if err := tx.Delete(ctx, next.Key()); err != nil {
					return err
				}
				return touchAll(ctx, tx, add...)
			})
		}
		checkRels(t, tc.name+" paged during writes", got, nil, tc.want)
	}
}

func (s *suite) testExpiration(t *testing.T) {
	ctx := context.Background()
	st, _ := s.open(t, Config{})
	now := startTime().Add(time.Hour)
	base := MustParse(t,
		"doc:1#viewer@user:never",
		"doc:1#viewer@user:past",
		"doc:1#viewer@user:exactly",
		"doc:1#viewer@user:nanosecond",
		"doc:1#viewer@user:future",
		"doc:2#viewer@user:past",
		"doc:2#viewer@user:future",
	)
	exps := map[string]time.Time{
		"past":       now.Add(-time.Hour),
		"exactly":    now,
		"nanosecond": now.Add(time.Nanosecond),
		"future":     now.Add(time.Hour),
	}
	for i := range base {
		base[i].Expiration = exps[base[i].Subject.ID]
	}
	rev := MustTouch(t, st, base...)
	r := MustSnapshot(t, st, rev)
	m := newModel(base...)
	for _, opts := range []store.QueryOptions{
		{}, {Now: now}, {Now: now.Add(-2 * time.Hour)}, {Now: now.Add(2 * time.Hour)},
		{Now: now, Limit: 1}, {Now: now, Limit: 2}, {Now: now.UTC()},
	} {
		f := tuple.Filter{ResourceType: "doc"}
		got, err := Collect(r.QueryRelationships(ctx, f, opts))
		checkRels(t, fmt.Sprintf("forward, now %v limit %d", opts.Now, opts.Limit), got, err, m.forward(f, opts))
		rf := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}
		got, err = Collect(r.ReverseQueryRelationships(ctx, rf, opts))
		checkRels(t, fmt.Sprintf("reverse, now %v limit %d", opts.Now, opts.Limit), got, err, m.reverse(rf, opts))
	}
	// Spot check the boundary so that a wrong model cannot hide a wrong store.
	got, err := Collect(r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc", ResourceID: "1"}, store.QueryOptions{Now: now}))
	checkRels(t, "doc:1 at the boundary", got, err, []tuple.Relationship{base[4], base[3], base[0]})
}

// testRoundTrip writes caveats and expirations and demands them back
// exactly, through every read path.
func (s *suite) testRoundTrip(t *testing.T) {
	ctx := context.Background()
	st, _ := s.open(t, Config{})
	ctxValue := map[string]any{
		"int":    json.Number("12345678901234567890"),
		"neg":    json.Number("-7"),
		"float":  json.Number("1.5e-7"),
		"str":    "héllo \"quoted\" \u2028",
		"empty":  "",
		"yes":    true,
		"no":     false,
		"null":   nil,
		"list":   []any{json.Number("1"), "two", false, nil, []any{}, map[string]any{"k": "v"}},
		"nested": map[string]any{"inner": map[string]any{"deep": []any{json.Number("3.25")}}, "x": json.Number("0")},
	}
	zone := time.FixedZone("UTC-7", -7*3600)
	rels := MustParse(t,
		"doc:1#viewer@user:full",
		"doc:1#viewer@user:name_only",
		"doc:1#viewer@user:empty_ctx",
		"doc:1#viewer@user:exp_only",
		"doc:1#viewer@user:plain",
	)
	rels[0].Caveat = &tuple.Caveat{Name: "complex", Context: ctxValue}
	rels[0].Expiration = time.Date(2031, time.December, 31, 23, 59, 59, 999999999, zone)
	rels[1].Caveat = &tuple.Caveat{Name: "weekday"}
	rels[2].Caveat = &tuple.Caveat{Name: "weekday", Context: map[string]any{}}
	rels[3].Expiration = time.Date(2030, time.January, 2, 3, 4, 5, 1, time.UTC)
	rev := MustTouch(t, st, rels...)
	// Changing the caller's values afterwards must not change the store.
	ctxValue["str"] = "mutated"
	ctxValue["list"].([]any)[0] = "mutated"
	ctxValue["list"].([]any)[5].(map[string]any)["k"] = "mutated"
	ctxValue["nested"].(map[string]any)["x"] = "mutated"
	ctxValue = map[string]any{
		"int":    json.Number("12345678901234567890"),
		"neg":    json.Number("-7"),
		"float":  json.Number("1.5e-7"),
		"str":    "héllo \"quoted\" \u2028",
		"empty":  "",
		"yes":    true,
		"no":     false,
		"null":   nil,
		"list":   []any{json.Number("1"), "two", false, nil, []any{}, map[string]any{"k": "v"}},
		"nested": map[string]any{"inner": map[string]any{"deep": []any{json.Number("3.25")}}, "x": json.Number("0")},
	}
	rels[0].Caveat = &tuple.Caveat{Name: "complex", Context: ctxValue}

	r := MustSnapshot(t, st, rev)
	read := map[string]func() ([]tuple.Relationship, error){
		"forward": func() ([]tuple.Relationship, error) {
			return Collect(r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}))
		},
		"reverse": func() ([]tuple.Relationship, error) {
			return Collect(r.ReverseQueryRelationships(ctx, tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}, store.QueryOptions{}))
		},
		"transaction": func() ([]tuple.Relationship, error) {
			var got []tuple.Relationship
			_, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
				var err error
				got, err = Collect(tx.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}))
				return err
			})
			return got, err
		},
	}
	for _, how := range []string{"forward", "reverse", "transaction"} {
		got, err := read[how]()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		checkExact(t, how, got, rels)
		// Mutating what a query returned must not change the store either.
		for _, g := range got {
			if g.Caveat != nil && g.Caveat.Context != nil {
				g.Caveat.Context["injected"] = true
				if l, ok := g.Caveat.Context["list"].([]any); ok {
					l[1] = "mutated"
					l[5].(map[string]any)["k"] = "mutated"
				}
			}
		}
	}
}

// checkExact compares relationships field by field with reflect.DeepEqual
// on caveat contexts and demands UTC expirations.
func checkExact(t testing.TB, what string, got, want []tuple.Relationship) {
	t.Helper()
	byKey := map[tuple.Key]tuple.Relationship{}
	for _, r := range got {
		byKey[r.Key()] = r
	}
	if len(byKey) != len(want) || len(got) != len(want) {
		t.Errorf("%s: got %d relationships, want %d:\n%s", what, len(got), len(want), Format(got))
	}
	for _, w := range want {
		g, ok := byKey[w.Key()]
		if !ok {
			t.Errorf("%s: %s missing", what, w.Key())
			continue
		}
		if msg := diffRelationship(g, w); msg != "" {
			t.Errorf("%s: %s: %s", what, w.Key(), msg)
		}
	}
}

// diffRelationship describes how got differs from want beyond its key.
func diffRelationship(got, want tuple.Relationship) string {
	switch {
	case (got.Caveat == nil) != (want.Caveat == nil):
		return fmt.Sprintf("caveat %v, want %v", got.Caveat, want.Caveat)
	case got.Caveat != nil && got.Caveat.Name != want.Caveat.Name:
		return fmt.Sprintf("caveat name %q, want %q", got.Caveat.Name, want.Caveat.Name)
	case got.Caveat != nil && !(len(got.Caveat.Context) == 0 && len(want.Caveat.Context) == 0) &&
		!reflect.DeepEqual(got.Caveat.Context, want.Caveat.Context):
		return fmt.Sprintf("caveat context %#v, want %#v", got.Caveat.Context, want.Caveat.Context)
	case !got.Expiration.Equal(want.Expiration):
		return fmt.Sprintf("expiration %v, want %v", got.Expiration, want.Expiration)
	case !got.Expiration.IsZero() && got.Expiration.Location() != time.UTC:
		return fmt.Sprintf("expiration %v is not in UTC", got.Expiration)
	}
	return ""
}

// testNested runs queries and a write inside a query's loop, as the
// evaluator does: neither may deadlock or disturb the outer scan.
func (s *suite) testNested(t *testing.T) {
	ctx := context.Background()
	st, _ := s.open(t, Config{})
	m, r := loadQueryData(t, st)
	want := m.forward(tuple.Filter{ResourceType: "doc"}, store.QueryOptions{})
	var got []tuple.Relationship
	i := 0
	for rel, err := range r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rel)
		f := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: rel.Subject.Type, ID: rel.Subject.ID, Relation: ellipsisIfPlain(rel.Subject.Relation)}}
		inner, err := Collect(r.ReverseQueryRelationships(ctx, f, store.QueryOptions{}))
		checkRels(t, "inner query", inner, err, m.reverse(f, store.QueryOptions{}))
		if i%50 == 0 {
			MustDelete(t, st, rel.Key())
		}
		i++
	}
	checkRels(t, "outer query", got, nil, want)

	// Breaking out early must release whatever the query holds: a write
	// and a new query afterwards still work.
	for range r.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}) {
		break
	}
	for range r.ReverseQueryRelationships(ctx, tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}, store.QueryOptions{}) {
		break
	}
	MustTouch(t, st, MustParse(t, "doc:new#viewer@user:1")...)
	got, err := Collect(r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}))
	checkRels(t, "query after breaking out", got, err, want)
}
