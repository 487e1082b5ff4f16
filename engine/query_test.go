package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func TestQueriesAnswerAtTheResolvedRevision(t *testing.T) {
	f := newFixture(t, engine.Options{Limits: engine.Limits{MaxBulkCheckItems: 2, MaxLookupLimit: 2, MaxContextBytes: 30}})
	z1 := f.touch("document:1#viewer@user:anne", "document:2#viewer@user:anne", "document:3#viewer@group:eng#member", "group:eng#member@user:anne")
	z2 := f.remove("document:2#viewer@user:anne")
	anne := tuple.SubjectRef{Type: "user", ID: "anne"}
	doc := func(id string) tuple.ObjectRef { return tuple.ObjectRef{Type: "document", ID: id} }

	// CheckBulk: one revision for every item.
	items := []engine.BulkCheckItem{
		{CheckRequest: engine.CheckQuery{Resource: doc("1"), Permission: "view", Subject: anne}},
		{CheckRequest: engine.CheckQuery{Resource: doc("2"), Permission: "view", Subject: anne}},
	}
	res, err := f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Consistency: engine.AtExactSnapshot(z1), Items: items})
	if err != nil || res.Zookie != z1 || res.Results[0].Permissionship != eval.HasPermission || res.Results[1].Permissionship != eval.HasPermission {
		t.Errorf("bulk at z1: %+v %v", res, err)
	}
	res, err = f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Consistency: engine.AtExactSnapshot(z2), Items: items})
	if err != nil || res.Results[1].Permissionship != eval.NoPermission {
		t.Errorf("bulk at z2: %+v %v", res, err)
	}
	if _, err := f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Items: append(items, items[0])}); !errors.Is(err, engine.ErrLimitExceeded) {
		t.Errorf("bulk over the limit: %v", err)
	}

	// LookupResources: no limit, the maximum limit, zookie of the revision.
	lookup := func(c engine.Consistency, limit int) ([]string, string, error) {
		seq, z, err := f.eng.LookupResources(f.ctx, engine.LookupResourcesRequest{Consistency: c,
			LookupResourcesRequest: eval.LookupResourcesRequest{ResourceType: "document", Permission: "view", Subject: anne, Limit: limit}})
		if err != nil {
			return nil, "", err
		}
		var ids []string
		for r, err := range seq {
			if err != nil {
				return nil, "", err
			}
			ids = append(ids, r.ResourceID)
		}
		return ids, z, nil
	}
	// No limit: every result, though there are more than MaxLookupLimit.
	if ids, z, err := lookup(engine.AtExactSnapshot(z1), 0); err != nil || z != z1 || strings.Join(ids, ",") != "1,2,3" {
		t.Errorf("lookup at z1 without a limit: %v at %q, %v", ids, z, err)
	}
	if ids, _, err := lookup(engine.AtExactSnapshot(z2), 0); err != nil || strings.Join(ids, ",") != "1,3" {
		t.Errorf("lookup at z2: %v, %v", ids, err)
	}
	if _, _, err := lookup(engine.FullyConsistent(), 3); !errors.Is(err, engine.ErrLimitExceeded) {
		t.Errorf("lookup over the limit: %v", err)
	}
	if _, _, err := lookup(engine.FullyConsistent(), -1); !errors.Is(err, engine.ErrInvalidRequest) {
		t.Errorf("negative lookup limit: %v", err)
	}

	// LookupSubjects.
	seq, z, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{Consistency: engine.AtExactSnapshot(z2),
		LookupSubjectsRequest: eval.LookupSubjectsRequest{Resource: doc("3"), Permission: "view", SubjectType: "user"}})
	if err != nil || z != z2 {
		t.Fatalf("lookup subjects: %v", err)
	}
	var subs []string
	for s, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s.SubjectID)
	}
	if strings.Join(subs, ",") != "anne" {
		t.Errorf("subjects of document:3#view = %v", subs)
	}

	// Expand.
	tree, z, err := f.eng.Expand(f.ctx, engine.ExpandRequest{Consistency: engine.AtExactSnapshot(z1), ExpandRequest: engine.ExpandQuery{Resource: doc("3"), Permission: "view"}})
	if err != nil || z != z1 || tree == nil || tree.Kind != eval.Exclusion {
		t.Errorf("expand: %+v %v", tree, err)
	}

	// Caveat context size is bounded everywhere.
	big := map[string]any{"ip": strings.Repeat("x", 40)}
	if _, err := f.eng.Check(f.ctx, engine.CheckRequest{CheckRequest: engine.CheckQuery{Resource: doc("1"), Permission: "view", Subject: anne}, Context: big}); !errors.Is(err, engine.ErrLimitExceeded) {
		t.Errorf("check with a large context: %v", err)
	}
	if _, _, err := f.eng.Expand(f.ctx, engine.ExpandRequest{ExpandRequest: engine.ExpandQuery{Resource: doc("1"), Permission: "view"}, Context: big}); !errors.Is(err, engine.ErrLimitExceeded) {
		t.Errorf("expand with a large context: %v", err)
	}

	// Evaluator errors keep their sentinels.
	if _, err := f.eng.Check(f.ctx, engine.CheckRequest{CheckRequest: engine.CheckQuery{Resource: doc("1"), Permission: "nope", Subject: anne}}); !errors.Is(err, eval.ErrUnknownRelation) {
		t.Errorf("unknown permission: %v", err)
	}
}
