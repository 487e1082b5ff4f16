package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// lookupAll runs one LookupResources call of document#view for user:anne,
// resuming after cursor, and returns the IDs it yields and the cursor of
// the last one.
func lookupAll(t *testing.T, f *fixture, limit int, cursor string) ([]string, string, error) {
	t.Helper()
	seq, _, err := f.eng.LookupResources(f.ctx, engine.LookupResourcesRequest{
		Consistency: engine.FullyConsistent(),
		LookupResourcesRequest: eval.LookupResourcesRequest{
			ResourceType: "document", Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "anne"},
			Limit: limit,
		},
		Cursor: cursor,
	})
	if err != nil {
		return nil, "", err
	}
	var ids []string
	last := ""
	for r, err := range seq {
		if err != nil {
			return nil, "", err
		}
		ids = append(ids, r.ResourceID)
		last = r.Cursor()
	}
	return ids, last, nil
}

// importDocs gives user:anne viewer on n documents d00000, d00001, ... in
// one bulk import and returns their IDs in order.
func importDocs(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	ids := make([]string, n)
	rels := make([]tuple.Relationship, n)
	for i := range n {
		ids[i] = fmt.Sprintf("d%05d", i)
		rels[i] = mustParse(t, "document:"+ids[i]+"#viewer@user:anne")
	}
	if _, got, err := f.eng.Import(f.ctx, "test", seqOf(rels...)); err != nil || got != n {
		t.Fatalf("import: %d of %d, %v", got, n, err)
	}
	return ids
}

// pageAll pages through every result with pages of size, resuming after
// the cursor of the last result of each page, and fails if a page is
// larger than asked.
func pageAll(t *testing.T, f *fixture, size int) []string {
	t.Helper()
	var all []string
	cursor := ""
	for calls := 0; ; calls++ {
		if calls > 100000 {
			t.Fatal("paging does not end")
		}
		page, next, err := lookupAll(t, f, size, cursor)
		if err != nil {
			t.Fatalf("page %d: %v", calls, err)
		}
		if len(page) > size {
			t.Fatalf("page of %d results, asked for %d", len(page), size)
		}
		all = append(all, page...)
		if len(page) < size {
			return all
		}
		cursor = next
	}
}

// A lookup without a limit returns every result, even past the default
// MaxLookupLimit (it once stopped at 10,000 of 10,005 without a word);
// paging with the largest allowed limit returns each result exactly once;
// a limit above the maximum fails with an error naming the limit.
func TestLookupResourcesPastTheDefaultCap(t *testing.T) {
	f := newFixture(t, engine.Options{})
	if got := f.eng.Limits().MaxLookupLimit; got != engine.DefaultMaxLookupLimit {
		t.Fatalf("MaxLookupLimit = %d, want the default %d", got, engine.DefaultMaxLookupLimit)
	}
	want := importDocs(t, f, engine.DefaultMaxLookupLimit+5)

	got, _, err := lookupAll(t, f, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("lookup without a limit: %d results, want %d", len(got), len(want))
	}
	if got := pageAll(t, f, engine.DefaultMaxLookupLimit); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("paged lookup: %d results, want each of %d once", len(got), len(want))
	}

	_, _, err = lookupAll(t, f, engine.DefaultMaxLookupLimit+1, "")
	var le *engine.LimitError
	if !errors.As(err, &le) || le.Max != engine.DefaultMaxLookupLimit || !strings.Contains(err.Error(), "limit of 10000") {
		t.Errorf("limit above the maximum: %v, want a *LimitError naming 10000", err)
	}
}

// Paging with every page size, over a small injected maximum, returns each
// result exactly once and never a page larger than asked.
func TestLookupResourcesPaging(t *testing.T) {
	const maxLimit = 4
	f := newFixture(t, engine.Options{Limits: engine.Limits{MaxLookupLimit: maxLimit}})
	want := importDocs(t, f, 3*maxLimit+1)
	got, _, err := lookupAll(t, f, 0, "")
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("lookup without a limit: %v, %v; want all %d", got, err, len(want))
	}
	for size := 1; size <= maxLimit; size++ {
		if got := pageAll(t, f, size); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("pages of %d: %v, want %v", size, got, want)
		}
	}
	if _, _, err := lookupAll(t, f, maxLimit+1, ""); !errors.Is(err, engine.ErrLimitExceeded) {
		t.Errorf("limit above the maximum: %v", err)
	}
}

// lookupSubjectsPage runs one LookupSubjects call of document:d#view for
// users, resuming after cursor, and returns the subject IDs it yields and
// the cursor of the last one.
func lookupSubjectsPage(t *testing.T, f *fixture, limit int, cursor string) ([]string, string, error) {
	t.Helper()
	seq, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{
		Consistency: engine.FullyConsistent(),
		LookupSubjectsRequest: eval.LookupSubjectsRequest{
			Resource: tuple.ObjectRef{Type: "document", ID: "d"}, Permission: "view", SubjectType: "user",
			Limit: limit,
		},
		Cursor: cursor,
	})
	if err != nil {
		return nil, "", err
	}
	var ids []string
	last := ""
	for r, err := range seq {
		if err != nil {
			return nil, "", err
		}
		ids = append(ids, r.SubjectID)
		last = r.Cursor()
	}
	return ids, last, nil
}

// LookupSubjects pages in the engine: every page size returns each subject
// exactly once, in order, at the revision of the first page, even when a
// write lands between pages.
func TestLookupSubjectsPaging(t *testing.T) {
	f := newFixture(t, engine.Options{})
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("u%d", i)
		want = append(want, id)
		f.touch("document:d#viewer@user:" + id)
	}
	f.touch("document:d#viewer@user:u3", "document:d#banned@user:u3")
	want = slices.Delete(want, 3, 4)
	all, _, err := lookupSubjectsPage(t, f, 0, "")
	if err != nil || !slices.Equal(all, want) {
		t.Fatalf("without a limit: %v, %v; want %v", all, err, want)
	}
	for size := 1; size <= len(want)+1; size++ {
		var got []string
		cursor := ""
		for calls := 0; ; calls++ {
			if calls > len(want)+1 {
				t.Fatalf("size %d: paging does not end", size)
			}
			page, next, err := lookupSubjectsPage(t, f, size, cursor)
			if err != nil {
				t.Fatalf("size %d, page %d: %v", size, calls, err)
			}
			if len(page) > size {
				t.Fatalf("size %d: a page of %d", size, len(page))
			}
			if calls == 0 {
				// Written after the first page: the listing must not see it.
				f.touch("document:d#viewer@user:u00")
			}
			got = append(got, page...)
			if len(page) < size {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d: %v, want %v", size, got, want)
		}
		f.remove("document:d#viewer@user:u00")
	}
}

// subjectPages lists document:doc#view for users with pages of size (0: one
// call without a limit), resuming from the cursor of each page's last
// result, and returns every result of the listing and the cursor after
// the first page.
func subjectPages(t *testing.T, f *fixture, doc string, cctx map[string]any, size int) ([]eval.SubjectResult, string) {
	t.Helper()
	var all []eval.SubjectResult
	cursor, first := "", ""
	for calls := 0; ; calls++ {
		if calls > 1000 {
			t.Fatal("paging does not end")
		}
		seq, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{
			Consistency: engine.FullyConsistent(),
			LookupSubjectsRequest: eval.LookupSubjectsRequest{
				Resource: tuple.ObjectRef{Type: "document", ID: doc}, Permission: "view", SubjectType: "user",
				Limit: size,
			},
			Context: cctx,
			Cursor:  cursor,
		})
		if err != nil {
			t.Fatalf("size %d, page %d: %v", size, calls, err)
		}
		n := 0
		for r, err := range seq {
			if err != nil {
				t.Fatalf("size %d, page %d: %v", size, calls, err)
			}
			all = append(all, r.SubjectResult)
			cursor = r.Cursor()
			n++
		}
		if calls == 0 {
			first = cursor
		}
		if size == 0 || n < size {
			return all, first
		}
	}
}

// Paging LookupSubjects with every page size gives exactly the unpaged
// answer (wildcards and their exclusions, caveated and expiring subjects,
// nested groups, bans) on random data; a cursor keeps its revision, and
// once that revision is compacted it is refused.
func TestLookupSubjectsPagingRandom(t *testing.T) {
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"}
	for seed := range uint64(12) {
		f := newFixture(t, engine.Options{})
		rng := rand.New(rand.NewPCG(seed, 7))
		pick := func() string { return users[rng.IntN(len(users))] }
		var rels []string
		for range 4 + rng.IntN(8) {
			switch rng.IntN(6) {
			case 0:
				rels = append(rels, "document:d#viewer@user:"+pick())
			case 1:
				rels = append(rels, "document:d#viewer@user:*")
			case 2:
				g := fmt.Sprintf("g%d", rng.IntN(3))
				rels = append(rels, "document:d#viewer@group:"+g+"#member", "group:"+g+"#member@user:"+pick())
			case 3:
				rels = append(rels, fmt.Sprintf("group:g%d#member@group:g%d#member", rng.IntN(3), rng.IntN(3)))
			case 4:
				rels = append(rels, `document:d#viewer@user:`+pick()+`[ip_allowed:{"allowed":["10.0.0.1"]}]`)
			case 5:
				rels = append(rels, "document:d#banned@user:"+pick())
			}
		}
		// One write may change a relationship once: keep the first.
		seen := map[string]bool{}
		rels = slices.DeleteFunc(rels, func(r string) bool {
			key, _, _ := strings.Cut(r, "[")
			defer func() { seen[key] = true }()
			return seen[key]
		})
		f.touch(rels...)
		for _, cctx := range []map[string]any{nil, {"ip": "10.0.0.1"}} {
			want, _ := subjectPages(t, f, "d", cctx, 0)
			for size := 1; size <= len(want)+1; size++ {
				if got, _ := subjectPages(t, f, "d", cctx, size); !reflect.DeepEqual(got, want) {
					t.Fatalf("seed %d, data %q, context %v: pages of %d = %+v, unpaged %+v", seed, rels, cctx, size, got, want)
				}
			}
		}
	}

	f := newFixture(t, engine.Options{})
	f.touch("document:d#viewer@user:u1", "document:d#viewer@user:u2", "document:d#viewer@user:u3")
	_, cursor := subjectPages(t, f, "d", nil, 1)
	f.remove("document:d#viewer@user:u2")
	f.clk.Advance(time.Hour)
	seq, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{
		LookupSubjectsRequest: eval.LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "document", ID: "d"}, Permission: "view", SubjectType: "user"},
		Cursor:                cursor,
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for r, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.SubjectID)
	}
	if !slices.Equal(ids, []string{"u2", "u3"}) {
		t.Errorf("resumed at the cursor's revision: %v, want [u2 u3]", ids)
	}
	if _, err := f.st.GC(f.ctx, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{
		LookupSubjectsRequest: eval.LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "document", ID: "d"}, Permission: "view", SubjectType: "user"},
		Cursor:                cursor,
	})
	if !errors.Is(err, engine.ErrSnapshotExpired) {
		t.Errorf("cursor of a compacted revision: %v, want ErrSnapshotExpired", err)
	}
}

// A lookup refuses a cursor that is not one of its own with
// ErrInvalidCursor, and paging by hand (After) with ErrInvalidRequest.
func TestLookupCursorRejects(t *testing.T) {
	f := newFixture(t, engine.Options{})
	z := f.touch("document:d#viewer@user:anne", "document:e#viewer@user:anne")
	_, resourcesCursor, err := lookupAll(t, f, 1, "")
	if err != nil || resourcesCursor == "" {
		t.Fatalf("lookup resources: %q, %v", resourcesCursor, err)
	}
	_, subjectsCursor, err := lookupSubjectsPage(t, f, 1, "")
	if err != nil || subjectsCursor == "" {
		t.Fatalf("lookup subjects: %q, %v", subjectsCursor, err)
	}
	readPage, err := f.eng.ReadRelationships(f.ctx, engine.FullyConsistent(), tuple.Filter{ResourceType: "document"}, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, cursor string }{
		{"garbage", "garbage"},
		{"a zookie", z},
		{"a read cursor", readPage.Next},
		{"trailing newline", resourcesCursor + "\n"},
	} {
		if _, _, err := lookupAll(t, f, 1, tt.cursor); !errors.Is(err, engine.ErrInvalidCursor) {
			t.Errorf("lookup resources with %s: %v, want ErrInvalidCursor", tt.name, err)
		}
	}
	if _, _, err := lookupAll(t, f, 1, subjectsCursor); !errors.Is(err, engine.ErrInvalidCursor) {
		t.Errorf("lookup resources with a lookup subjects cursor: %v", err)
	}
	if _, _, err := lookupSubjectsPage(t, f, 1, resourcesCursor); !errors.Is(err, engine.ErrInvalidCursor) {
		t.Errorf("lookup subjects with a lookup resources cursor: %v", err)
	}
	if _, _, err := lookupSubjectsPage(t, f, -1, ""); !errors.Is(err, engine.ErrInvalidRequest) {
		t.Errorf("lookup subjects with a negative limit: %v", err)
	}
	_, _, err = f.eng.LookupResources(f.ctx, engine.LookupResourcesRequest{
		LookupResourcesRequest: eval.LookupResourcesRequest{
			ResourceType: "document", Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "anne"}, After: "d",
		},
	})
	if !errors.Is(err, engine.ErrInvalidRequest) {
		t.Errorf("lookup resources with After: %v, want ErrInvalidRequest", err)
	}
	_, _, err = f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{
		LookupSubjectsRequest: eval.LookupSubjectsRequest{
			Resource: tuple.ObjectRef{Type: "document", ID: "d"}, Permission: "view", SubjectType: "user", After: "anne",
		},
	})
	if !errors.Is(err, engine.ErrInvalidRequest) {
		t.Errorf("lookup subjects with After: %v, want ErrInvalidRequest", err)
	}
}

// A lookup's walk holds every object it reaches until it ends, whatever
// its page size, so Limits.MaxLookupNodes bounds its memory: a walk that
// reaches more fails with a *LimitError (RESOURCE_EXHAUSTED at the API),
// even for a page of one, and a smaller one is unaffected. Both lookups;
// one that streams (document#view, an exclusion: nothing walked but the
// subject's groups or the document's subject sets, here none) lists all
// its results past the bound, and one that walks (LookupResources of
// group#member, recursive on its own type, for bob in 41 groups;
// LookupSubjects of group:top#member, 41 nested groups) fails.
func TestLookupNodesBounded(t *testing.T) {
	const maxNodes = 40
	f := newFixture(t, engine.Options{Limits: engine.Limits{MaxLookupNodes: maxNodes}})
	want := importDocs(t, f, 10)
	for i := range 10 {
		f.touch(fmt.Sprintf("document:d#viewer@user:u%d", i))
	}
	if got, _, err := lookupAll(t, f, 0, ""); err != nil || !slices.Equal(got, want) {
		t.Fatalf("a lookup within the bound: %v, %v", got, err)
	}
	if got, _, err := lookupSubjectsPage(t, f, 0, ""); err != nil || len(got) != 10 {
		t.Fatalf("a subject lookup within the bound: %v, %v", got, err)
	}
	importMore := make([]tuple.Relationship, 0, maxNodes)
	for i := range maxNodes {
		importMore = append(importMore, mustParse(t, fmt.Sprintf("document:e%05d#viewer@user:anne", i)), mustParse(t, fmt.Sprintf("document:d#viewer@user:v%d", i)),
			mustParse(t, fmt.Sprintf("group:g%05d#member@user:bob", i)))
	}
	importMore = append(importMore, mustParse(t, "group:g99999#member@user:bob")) // past the bound
	for i := range maxNodes + 1 {
		// group:top holds the 41 groups: its subjects' forward walk meets
		// more nodes than the bound, so it is walked, not streamed.
		importMore = append(importMore, mustParse(t, fmt.Sprintf("group:top#member@group:h%05d#member", i)))
	}
	if _, _, err := f.eng.Import(f.ctx, "test", seqOf(importMore...)); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{0, 1} {
		got, _, err := lookupAll(t, f, limit, "")
		if err != nil || (limit == 0 && len(got) != 10+maxNodes) || (limit == 1 && len(got) != 1) {
			t.Errorf("streamed LookupResources (limit %d) past the bound: %d results, %v", limit, len(got), err)
		}
		seq, _, err := f.eng.LookupResources(f.ctx, engine.LookupResourcesRequest{
			Consistency: engine.FullyConsistent(),
			LookupResourcesRequest: eval.LookupResourcesRequest{
				ResourceType: "group", Permission: "member", Subject: tuple.SubjectRef{Type: "user", ID: "bob"}, Limit: limit,
			},
		})
		if err == nil {
			for _, err = range seq {
				if err != nil {
					break
				}
			}
		}
		var le *engine.LimitError
		if !errors.As(err, &le) || le.Max != maxNodes || !strings.Contains(err.Error(), "reached by one lookup") {
			t.Errorf("walked LookupResources (limit %d) past the bound: %v", limit, err)
		}
		subjects, _, err := lookupSubjectsPage(t, f, limit, "")
		if err != nil || (limit == 0 && len(subjects) != 10+maxNodes) || (limit == 1 && len(subjects) != 1) {
			t.Errorf("streamed LookupSubjects (limit %d) past the bound: %d results, %v", limit, len(subjects), err)
		}
		sseq, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{
			Consistency: engine.FullyConsistent(),
			LookupSubjectsRequest: eval.LookupSubjectsRequest{
				Resource: tuple.ObjectRef{Type: "group", ID: "top"}, Permission: "member", SubjectType: "user", Limit: limit,
			},
		})
		if err == nil {
			for _, err = range sseq {
				if err != nil {
					break
				}
			}
		}
		if !errors.As(err, &le) || le.Max != maxNodes {
			t.Errorf("walked LookupSubjects (limit %d) past the bound: %v", limit, err)
		}
	}
	if got := f.eng.Limits().MaxLookupNodes; got != maxNodes {
		t.Errorf("Limits().MaxLookupNodes = %d", got)
	}
	if got := newFixture(t, engine.Options{}).eng.Limits().MaxLookupNodes; got != engine.DefaultMaxLookupNodes {
		t.Errorf("default MaxLookupNodes = %d, want %d", got, engine.DefaultMaxLookupNodes)
	}
}
