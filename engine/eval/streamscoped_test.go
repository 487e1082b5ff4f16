package eval

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// streamScopedSchema is shapedTestSchema with a relation that admits
// everyone (pub's reader holds user:*): a permission whose subjects do not
// stream, so that a scoped LookupSubjects streams its subject set instead.
const streamScopedSchema = shapedTestSchema + `
definition pub {
  relation reader: user | user:*
  permission view = reader
}
`

// TestStreamedScopedShapes: scoped lookups whose scope is large stream
// (scope.go): LookupResources through folder:f, which holds 2n documents
// (doc d_i is in folder:f for even i, in folder:g for odd i, both inside
// folder:top, which group:eng views; tom is in eng and audits folder:f),
// streams tom's documents, testing each for the scope; LookupSubjects of
// doc:x (in folder:top) within group:staff#member, which holds the even of
// 2n users of group:inner (nested in eng), streams the permission's
// subjects and checks each for the subject set; within it of pub:p (read
// by user:*) streams the subject set's members and checks each for the
// permission. Each answer has n results under a 1 MiB memory budget; pages
// equal the unpaged answer; the walk under the same budget is refused.
func TestStreamedScopedShapes(t *testing.T) {
	const n = 20_000
	s := mustCompile(t, streamScopedSchema)
	rels := mustParse(t, "group:eng#member@user:tom", "group:eng#member@group:inner#member",
		"folder:top#viewer@group:eng#member", "folder:f#parent@folder:top", "folder:g#parent@folder:top",
		"folder:f#auditor@user:tom", "doc:x#parent@folder:top", "pub:p#reader@user:*")
	for i := range 2 * n {
		d := tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%06d", i)}
		f := tuple.SubjectRef{Type: "folder", ID: "g"}
		if i%2 == 0 {
			f.ID = "f"
		}
		rels = append(rels, tuple.Relationship{Resource: d, Relation: "parent", Subject: f})
		u := tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%06d", i)}
		rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: "inner"}, Relation: "member", Subject: u})
		if i%2 == 0 {
			rels = append(rels, tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: "staff"}, Relation: "member", Subject: u})
		}
	}
	rd := load(t, rels)
	ctx := context.Background()
	tom := tuple.SubjectRef{Type: "user", ID: "tom"}
	staff := &tuple.SubjectRef{Type: "group", ID: "staff", Relation: "member"}
	through := func(id string) *Through { return &Through{Object: tuple.ObjectRef{Type: "folder", ID: id}} }
	// lookup runs a LookupResources (res) or a LookupSubjects (subj) with
	// the given limit and cursor, returning the IDs.
	type lookup func(e *Evaluator, limit int, after string) ([]string, error)
	resources := func(req LookupResourcesRequest) lookup {
		return func(e *Evaluator, limit int, after string) ([]string, error) {
			req.Limit, req.After = limit, after
			got, err := drain(e.LookupResources(ctx, Params{Reader: rd, Now: testNow}, req))
			ids := make([]string, len(got))
			for i, r := range got {
				ids[i] = r.ResourceID
				if r.Permissionship != HasPermission {
					return nil, fmt.Errorf("%s: %v", r.ResourceID, r.Permissionship)
				}
			}
			return ids, err
		}
	}
	subjects := func(req LookupSubjectsRequest) lookup {
		return func(e *Evaluator, limit int, after string) ([]string, error) {
			req.Limit, req.After = limit, after
			got, err := drain(e.LookupSubjects(ctx, Params{Reader: rd, Now: testNow}, req))
			ids := make([]string, len(got))
			for i, r := range got {
				ids[i] = r.SubjectID
				if r.Permissionship != HasPermission || len(r.ExcludedIDs) > 0 {
					return nil, fmt.Errorf("%s: %v", r.SubjectID, r.Permissionship)
				}
			}
			return ids, err
		}
	}
	tests := []struct {
		name string
		run  lookup
		// want: the answer's size and first ID; set: candidates from
		// the subject set's side.
		want  int
		first string
		set   bool
	}{
		{"doc#view@tom through folder:f", resources(LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: tom, Through: through("f")}), n, "d000000", false},
		{"doc#audit@tom through folder:top", resources(LookupResourcesRequest{ResourceType: "doc", Permission: "audit", Subject: tom, Through: through("top")}), n, "d000000", false},
		{"doc#view@tom through folder:g", resources(LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: tom, Through: through("g")}), n, "d000001", false},
		{"doc:x#view within group:staff#member", subjects(LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "x"}, Permission: "view", SubjectType: "user", Within: staff}), n, "u000000", false},
		{"pub:p#view within group:staff#member", subjects(LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "pub", ID: "p"}, Permission: "view", SubjectType: "user", Within: staff}), n, "u000000", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := NewMemory(1 << 20) // 1 MiB: the walk needs 64 bytes a result
			// The planner's defaults: its walk of the scope stops at
			// 4096 objects (a subject set's reads, at most 4097
			// relationships a node, are charged and given back).
			e := New(s, Options{Concurrency: 2, Memory: mem})
			got, err := tt.run(e, 0, "")
			if err != nil || len(got) != tt.want || got[0] != tt.first {
				t.Fatalf("streamed: %d results, %v; want %d from %s", len(got), err, tt.want, tt.first)
			}
			if e.streamedThrough.Load()+e.streamedWithin.Load() != 1 || (e.streamedWithinSet.Load() == 1) != tt.set {
				t.Fatalf("the lookup did not stream as planned: through %d, within %d (from the subject set %d)",
					e.streamedThrough.Load(), e.streamedWithin.Load(), e.streamedWithinSet.Load())
			}
			for i := 1; i < len(got); i++ {
				if got[i-1] >= got[i] {
					t.Fatalf("results out of order: %s before %s", got[i-1], got[i])
				}
			}
			// Pages of 1000 resume after the cursor: the same list.
			paged, _ := pageAll(t, 1000, func(limit int, after string) ([]string, error) { return tt.run(e, limit, after) },
				func(id string) string { return id })
			if !reflect.DeepEqual(paged, got) {
				t.Errorf("paged: %d results, unpaged %d; they differ", len(paged), len(got))
			}
			if mem.InUse() != 0 {
				t.Errorf("%d bytes still charged", mem.InUse())
			}
			walk := New(s, Options{Concurrency: 2, Memory: mem})
			walk.walkOnly = true
			if _, err := tt.run(walk, 0, ""); !errors.Is(err, ErrMemoryBudget) {
				t.Errorf("the walk under the same budget: %v, want the budget's refusal", err)
			}
		})
	}
}
