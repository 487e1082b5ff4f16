package eval

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestStreamedSubjectShapes: LookupSubjects of arrows, nested groups,
// intersections and exclusions streams through the intermediate nodes
// (streamsubjects.go): n users in group:inner, nested in group:eng, which
// views folder:top, the parent of folder:f, the parent of doc:d and
// sheet:s; the even users audit folder:f and every third is banned from
// sheet:s. The stream holds one relationship per scan, pages resume after
// the cursor, and the walk under the same memory budget is refused.
func TestStreamedSubjectShapes(t *testing.T) {
	const n = 20_000
	s := mustCompile(t, shapedTestSchema)
	rels := mustParse(t, "group:eng#member@group:inner#member", "folder:top#viewer@group:eng#member",
		"folder:f#parent@folder:top", "doc:d#parent@folder:f", "sheet:s#parent@folder:f")
	banned := 0
	for i := range n {
		u := tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%06d", i)}
		rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: "inner"}, Relation: "member", Subject: u})
		if i%2 == 0 {
			rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "folder", ID: "f"}, Relation: "auditor", Subject: u})
		}
		if i%3 == 0 {
			banned++
			rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "sheet", ID: "s"}, Relation: "banned", Subject: u})
		}
	}
	rd := &scanCounter{Reader: load(t, rels)}
	ctx := context.Background()
	tests := []struct {
		res            tuple.ObjectRef
		perm, typ, rel string
		want           int
	}{
		{tuple.ObjectRef{Type: "doc", ID: "d"}, "view", "user", "", n},            // arrow over a recursive arrow and nested groups
		{tuple.ObjectRef{Type: "doc", ID: "d"}, "audit", "user", "", n / 2},       // intersection: each candidate checked
		{tuple.ObjectRef{Type: "sheet", ID: "s"}, "view", "user", "", n - banned}, // exclusion
		{tuple.ObjectRef{Type: "doc", ID: "d"}, "view", "group", "member", 2},     // subject sets: eng and inner
		{tuple.ObjectRef{Type: "doc", ID: "nothing"}, "view", "user", "", 0},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s#%s@%s", tt.res, tt.perm, tt.typ)
		t.Run(name, func(t *testing.T) {
			mem := NewMemory(1 << 20) // 1 MiB: the walk needs 64 bytes a result
			e := New(s, Options{Concurrency: 2, Memory: mem})
			p := Params{Reader: rd, Now: testNow}
			req := LookupSubjectsRequest{Resource: tt.res, Permission: tt.perm, SubjectType: tt.typ, SubjectRelation: tt.rel}
			got, err := drain(e.LookupSubjects(ctx, p, req))
			if err != nil || len(got) != tt.want {
				t.Fatalf("streamed: %d results, %v; want %d", len(got), err, tt.want)
			}
			if e.streamedSubjectWalks.Load() != 1 {
				t.Fatalf("the lookup did not stream through intermediate nodes")
			}
			if !slices.IsSortedFunc(got, func(a, b SubjectResult) int { return strings.Compare(a.SubjectID, b.SubjectID) }) {
				t.Errorf("results out of order")
			}
			// Paged 100 at a time: the same list, reading about n.
			rd.read.Store(0)
			paged, pages := pageAll(t, 100, func(limit int, after string) ([]SubjectResult, error) {
				r := req
				r.Limit, r.After = limit, after
				return drain(e.LookupSubjects(ctx, p, r))
			}, subjectID)
			if !reflect.DeepEqual(paged, got) {
				t.Errorf("paged: %d results, unpaged %d; they differ", len(paged), len(got))
			}
			// Each page reads its candidates, the one ahead per scan and
			// the few relationships of the forward walk; Checks of the
			// candidates under an intersection or exclusion read up to
			// about eight more each. The walk reads all n on every page
			// (n*pages, here 100 times more).
			if read, bound := rd.read.Load(), int64(10*n+20*pages); read > bound {
				t.Errorf("paging %d results in %d pages read %d relationships, want at most %d", len(got), pages, read, bound)
			}
			if mem.InUse() != 0 {
				t.Errorf("%d bytes still charged", mem.InUse())
			}
			if tt.want < n/2 {
				return
			}
			walk := New(s, Options{Concurrency: 2, Memory: mem})
			walk.walkOnly = true
			req.Limit, req.After = 0, ""
			if _, err := drain(walk.LookupSubjects(ctx, p, req)); !errors.Is(err, ErrMemoryBudget) {
				t.Errorf("the walk under the same budget: %v, want the budget's refusal", err)
			}
		})
	}
}

// TestStreamedSubjectWildcard: LookupSubjects of a relation that holds
// the wildcard streams (streamsubjects.go): open:o is read by user:* and
// by group:inner's n users, and every hundredth user is banned. The first
// page starts with the wildcard, which lists the banned users (held: they
// are its answer); the users follow, streamed, as do the later pages,
// which resume after the cursor. The walk under the same memory budget
// is refused.
func TestStreamedSubjectWildcard(t *testing.T) {
	const n = 20_000
	s := mustCompile(t, shapedTestSchema+`
definition open {
  relation reader: user | user:* | group#member
  relation banned: user
  permission view = reader - banned
}`)
	rels := mustParse(t, "open:o#reader@user:*", "open:o#reader@group:inner#member")
	var banned []string
	for i := range n {
		u := tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%06d", i)}
		rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: "inner"}, Relation: "member", Subject: u})
		if i%100 == 0 {
			banned = append(banned, u.ID)
			rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "open", ID: "o"}, Relation: "banned", Subject: u})
		}
	}
	rd := load(t, rels)
	ctx := context.Background()
	mem := NewMemory(1 << 20) // 1 MiB: the walk needs 64 bytes a subject
	e := New(s, Options{Concurrency: 2, Memory: mem})
	p := Params{Reader: rd, Now: testNow}
	req := LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "open", ID: "o"}, Permission: "view", SubjectType: "user"}
	got, err := drain(e.LookupSubjects(ctx, p, req))
	if err != nil || len(got) != 1+n-len(banned) {
		t.Fatalf("streamed: %d results, %v; want %d", len(got), err, 1+n-len(banned))
	}
	if e.streamedSubjectWilds.Load() != 1 {
		t.Fatalf("the lookup did not stream with the wildcard")
	}
	if w := got[0]; w.SubjectID != tuple.Wildcard || w.Permissionship != HasPermission || !slices.Equal(w.ExcludedIDs, banned) {
		t.Fatalf("first result %s %v excluding %d, want the wildcard excluding the %d banned", w.SubjectID, w.Permissionship, len(w.ExcludedIDs), len(banned))
	}
	if !slices.IsSortedFunc(got[1:], func(a, b SubjectResult) int { return strings.Compare(a.SubjectID, b.SubjectID) }) {
		t.Errorf("results out of order")
	}
	// Pages of 1000, the first with the wildcard: the same list.
	paged, _ := pageAll(t, 1000, func(limit int, after string) ([]SubjectResult, error) {
		r := req
		r.Limit, r.After = limit, after
		return drain(e.LookupSubjects(ctx, p, r))
	}, subjectID)
	if !reflect.DeepEqual(paged, got) {
		t.Errorf("paged: %d results, unpaged %d; they differ", len(paged), len(got))
	}
	if mem.InUse() != 0 {
		t.Errorf("%d bytes still charged", mem.InUse())
	}
	walk := New(s, Options{Concurrency: 2, Memory: mem})
	walk.walkOnly = true
	req.Limit, req.After = 0, ""
	if _, err := drain(walk.LookupSubjects(ctx, p, req)); !errors.Is(err, ErrMemoryBudget) {
		t.Errorf("the walk under the same budget: %v, want the budget's refusal", err)
	}
}
