package eval

import (
	"context"
	"errors"
	"fmt"
	"github.com/pemba-authz/pemba/engine/store"
	"iter"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/tuple"
)

var constructsData = []string{
	"group:eng#member@user:anne",
	"group:eng#member@group:backend#member",
	"group:backend#member@user:bob",
	"group:backend#member@group:eng#member",
	"group:all#member@user:*",
	"group:all#banned@user:eve",
	"group:cond#member@user:carl[flag]",
	"folder:root#viewer@user:ivan",
	"folder:sub#parent@folder:root",
	"doc:1#viewer@group:eng#member",
	"doc:1#editor@user:jack",
	"doc:1#folder@folder:sub",
	"doc:1#banned@user:bob",
	"doc:1#approved@user:*",
	"doc:2#viewer@user:*",
	"doc:2#banned@user:kim",
	"doc:3#viewer@user:carl[flag]",
	"doc:3#editor@group:cond#member",
	"doc:4#viewer@user:ivan[expiration:2026-06-01T11:00:00Z]",
}

func TestLookupResources(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, constructsData...))
	tests := []struct {
		name  string
		typ   string
		perm  string
		sub   string
		limit int
		after string
		want  []string // id, or id? for conditional
	}{
		{"direct and nested", "doc", "view", "user:anne", 0, "", []string{"1", "2"}},
		{"through cycle", "doc", "view", "user:bob", 0, "", []string{"1", "2"}},
		{"arrow", "doc", "view", "user:ivan", 0, "", []string{"1", "2"}},
		{"conditional", "doc", "view", "user:carl", 0, "", []string{"2", "3?"}},
		{"exclusion", "doc", "view_unbanned", "user:bob", 0, "", []string{"2"}},
		{"exclusion of wildcard member", "doc", "view_unbanned", "user:kim", 0, "", nil},
		{"intersection", "doc", "view_ok", "user:anne", 0, "", []string{"1"}},
		{"wildcard subject", "doc", "view", "user:*", 0, "", []string{"2"}},
		{"userset subject", "doc", "view", "group:eng#member", 0, "", []string{"1"}},
		{"userset subject reflexive", "group", "member", "group:eng#member", 0, "", []string{"backend", "eng"}},
		{"limit", "doc", "view", "user:anne", 1, "", []string{"1"}},
		{"after", "doc", "view", "user:anne", 0, "1", []string{"2"}},
		{"expired invisible", "doc", "viewer", "user:ivan", 0, "", []string{"2"}}, // doc:2 by wildcard, not doc:4
		{"arrow all", "folder", "every", "user:ivan", 0, "", []string{"sub"}},
	}
	for _, cached := range []bool{false, true} {
		var c *Cache
		if cached {
			c = NewCache(1 << 20)
		}
		e := New(s, Options{Cache: c})
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/cached=%v", tt.name, cached), func(t *testing.T) {
				got := collect(t, e.LookupResources(context.Background(), Params{Reader: rd, Now: testNow},
					LookupResourcesRequest{ResourceType: tt.typ, Permission: tt.perm, Subject: mustSubject(t, tt.sub), Limit: tt.limit, After: tt.after}))
				var ids []string
				for _, r := range got {
					id := r.ResourceID
					if r.Permissionship == ConditionalPermission {
						id += "?"
					}
					ids = append(ids, id)
				}
				if !slices.Equal(ids, tt.want) {
					t.Fatalf("LookupResources = %v, want %v", ids, tt.want)
				}
			})
		}
	}
}

func TestLookupSubjects(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, constructsData...))
	tests := []struct {
		name string
		res  string
		perm string
		typ  string
		rel  string
		want []string // id, id? for conditional, *-x-y for a wildcard excluding x and y
	}{
		{"nested groups", "doc:1", "viewer", "user", "", []string{"anne", "bob"}},
		{"union with arrow", "doc:1", "view", "user", "", []string{"anne", "bob", "ivan", "jack"}},
		{"exclusion", "doc:1", "view_unbanned", "user", "", []string{"anne", "ivan", "jack"}},
		{"wildcard minus one", "doc:2", "view_unbanned", "user", "", []string{"*-kim"}},
		{"wildcard", "doc:2", "view", "user", "", []string{"*"}},
		{"conditional", "doc:3", "view", "user", "", []string{"carl?"}},
		{"subject sets", "doc:1", "view", "group", "member", []string{"backend", "eng"}},
		{"expired", "doc:4", "view", "user", "", nil},
		{"exclusion of wildcard", "group:all", "allowed", "user", "", []string{"*-eve"}},
	}
	e := New(s, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := collect(t, e.LookupSubjects(context.Background(), Params{Reader: rd, Now: testNow},
				LookupSubjectsRequest{Resource: mustObject(t, tt.res), Permission: tt.perm, SubjectType: tt.typ, SubjectRelation: tt.rel}))
			var ids []string
			for _, r := range got {
				id := r.SubjectID
				for _, x := range r.ExcludedIDs {
					id += "-" + x
				}
				if r.Permissionship == ConditionalPermission {
					id += "?"
				}
				ids = append(ids, id)
			}
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("LookupSubjects = %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestLookupErrors(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, nil)
	e := New(s, Options{})
	p := Params{Reader: rd, Now: testNow}
	user := tuple.SubjectRef{Type: "user", ID: "a"}
	tests := []struct {
		name string
		seq  func() error
		want error
	}{
		{"resources unknown type", func() error {
			_, err := drain(e.LookupResources(context.Background(), p, LookupResourcesRequest{ResourceType: "x", Permission: "view", Subject: user}))
			return err
		}, ErrUnknownDefinition},
		{"resources unknown permission", func() error {
			_, err := drain(e.LookupResources(context.Background(), p, LookupResourcesRequest{ResourceType: "doc", Permission: "x", Subject: user}))
			return err
		}, ErrUnknownRelation},
		{"resources negative limit", func() error {
			_, err := drain(e.LookupResources(context.Background(), p, LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: user, Limit: -1}))
			return err
		}, ErrInvalidRequest},
		{"subjects unknown subject type", func() error {
			_, err := drain(e.LookupSubjects(context.Background(), p, LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", SubjectType: "x"}))
			return err
		}, ErrUnknownDefinition},
		{"subjects negative limit", func() error {
			_, err := drain(e.LookupSubjects(context.Background(), p, LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", SubjectType: "user", Limit: -1}))
			return err
		}, ErrInvalidRequest},
		{"subjects unknown subject relation", func() error {
			_, err := drain(e.LookupSubjects(context.Background(), p, LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", SubjectType: "group", SubjectRelation: "x"}))
			return err
		}, ErrUnknownRelation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.seq(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCheckBulk(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, constructsData...))
	e := New(s, Options{})
	reqs := []CheckRequest{
		parseCheck(t, "doc:1#view@user:anne"),
		parseCheck(t, "doc:1#view@user:zed"),
		parseCheck(t, "doc:3#view@user:carl"),
		{Resource: tuple.ObjectRef{Type: "nope", ID: "1"}, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "a"}},
		parseCheck(t, "doc:1#view@user:anne"),
	}
	got := e.CheckBulk(context.Background(), Params{Reader: rd, Now: testNow}, reqs)
	want := []Permissionship{HasPermission, NoPermission, ConditionalPermission, NoPermission, HasPermission}
	for i, r := range got {
		if (i == 3) != (r.Err != nil) {
			t.Fatalf("item %d: err = %v", i, r.Err)
		}
		if r.Permissionship != want[i] {
			t.Errorf("item %d: %v, want %v", i, r.Permissionship, want[i])
		}
	}
	if !errors.Is(got[3].Err, ErrUnknownDefinition) {
		t.Errorf("item 3: err = %v", got[3].Err)
	}
}

// TestCacheExpiry checks that a cached answer is not served once a
// relationship it read has expired, nor to a clock before it was computed.
func TestCacheExpiry(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t,
		"group:temp#member@user:hank[expiration:2026-06-01T13:00:00Z]",
		"doc:1#viewer@group:temp#member",
		"doc:2#viewer@user:ivan[expiration:2026-06-01T11:00:00Z]",
	))
	c := NewCache(1 << 20)
	e := New(s, Options{Cache: c})
	steps := []struct {
		now   time.Time
		check string
		want  Permissionship
	}{
		{testNow, "doc:1#view@user:hank", HasPermission},
		{testNow.Add(30 * time.Minute), "doc:1#view@user:hank", HasPermission},
		{testNow.Add(2 * time.Hour), "doc:1#view@user:hank", NoPermission},
		{testNow, "doc:2#view@user:ivan", NoPermission},
		{testNow.Add(-2 * time.Hour), "doc:2#view@user:ivan", HasPermission},
	}
	for i, st := range steps {
		res, err := e.Check(context.Background(), Params{Reader: rd, Now: st.now}, parseCheck(t, st.check))
		if err != nil || res.Permissionship != st.want {
			t.Fatalf("step %d: Check(%s) at %s = %v, %v; want %v", i, st.check, st.now, res.Permissionship, err, st.want)
		}
	}
	if c.Stats().Hits == 0 {
		t.Error("the unexpired step was not served from the cache")
	}
}

// TestConcurrentChecks runs many checks at once over shared evaluators,
// with the race detector in mind: cyclic groups, diamonds and a shared
// cache exercise the in-request wait rule and the cache.
func TestConcurrentChecks(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	var lines []string
	for i := range 20 {
		lines = append(lines,
			fmt.Sprintf("group:g%d#member@group:g%d#member", i, (i+1)%20),
			fmt.Sprintf("group:g%d#member@group:g%d#member", i, (i+7)%20),
			fmt.Sprintf("group:g%d#member@user:u%d", i, i),
			fmt.Sprintf("doc:d%d#viewer@group:g%d#member", i, i),
			fmt.Sprintf("doc:d%d#editor@group:g%d#member", i, (i+3)%20),
		)
	}
	rd := load(t, mustParse(t, lines...))
	c := NewCache(1 << 20)
	e := New(s, Options{Concurrency: 8, Cache: c})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				d, u := (i*7+g)%20, (i*3+g)%21
				res, err := e.Check(context.Background(), Params{Reader: rd, Now: testNow},
					parseCheck(t, fmt.Sprintf("doc:d%d#view@user:u%d", d, u)))
				want := HasPermission
				if u == 20 {
					want = NoPermission
				}
				if err != nil || res.Permissionship != want {
					errs <- fmt.Errorf("doc:d%d#view@user:u%d = %v, %v; want %v", d, u, res.Permissionship, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// queryCounter counts the forward queries made through it.
type queryCounter struct {
	store.Reader
	queries atomic.Int64
}

func (r *queryCounter) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	r.queries.Add(1)
	return r.Reader.QueryRelationships(ctx, f, opts)
}

// A page of LookupSubjects below an exclusion confirms only the subjects
// it needs: the store reads of a page of one do not grow with the number
// of subjects before or after it, and the pages give the unpaged answer.
func TestLookupSubjectsPageCost(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition doc {
	relation viewer: user
	relation banned: user
	permission view = viewer - banned
}`)
	e := New(s, Options{Concurrency: 1})
	req := LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", SubjectType: "user"}
	ctx := context.Background()
	reads := func(rd store.Reader, req LookupSubjectsRequest) ([]SubjectResult, int64) {
		t.Helper()
		cr := &queryCounter{Reader: rd}
		got, err := drain(e.LookupSubjects(ctx, Params{Reader: cr, Now: testNow}, req))
		if err != nil {
			t.Fatal(err)
		}
		return got, cr.queries.Load()
	}
	var pageReads []int64
	for _, n := range []int{10, 200} {
		var rels []string
		for i := range n {
			rels = append(rels, fmt.Sprintf("doc:1#viewer@user:u%03d", i))
			if i%3 == 0 {
				rels = append(rels, fmt.Sprintf("doc:1#banned@user:u%03d", i))
			}
		}
		rd := load(t, mustParse(t, rels...))
		all, allReads := reads(rd, req)
		if len(all) != n-(n+2)/3 {
			t.Fatalf("%d viewers: %d results", n, len(all))
		}
		var paged []SubjectResult
		var most int64
		page := req
		page.Limit = 1
		for {
			got, r := reads(rd, page)
			most = max(most, r)
			if len(got) == 0 {
				break
			}
			paged = append(paged, got...)
			page.After = got[0].SubjectID
		}
		if !reflect.DeepEqual(paged, all) {
			t.Fatalf("%d viewers: pages of one = %v, want %v", n, paged, all)
		}
		if n == 200 && most*10 > allReads {
			t.Errorf("%d viewers: a page of one made %d reads, the whole answer %d", n, most, allReads)
		}
		pageReads = append(pageReads, most)
	}
	if pageReads[0] != pageReads[1] {
		t.Errorf("reads of a page of one: %d with 10 viewers, %d with 200; want the same", pageReads[0], pageReads[1])
	}
}
