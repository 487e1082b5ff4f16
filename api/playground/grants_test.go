package playground

import (
	"context"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestGrantsAgreeWithCheck compares the path the page highlights with the
// engine's own answer, over the enterprise example: for every permission
// its validation key names and every employee, the root of the Expand
// tree is marked as granting exactly when Check does not deny. Where a
// caveat decides the answer the two may differ (the tree does not
// evaluate caveats), so those pairs are counted, not compared.
func TestGrantsAgreeWithCheck(t *testing.T) {
	p, err := Example()
	if err != nil {
		t.Fatal(err)
	}
	f, _, problems := parseFile(Panes{Schema: p.Schema, Relationships: p.Relationships, Assertions: p.Assertions})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	ctx := context.Background()
	st, err := engine.OpenStore(ctx, engine.StoreOptions{Kind: engine.StoreMemory, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.Open(ctx, st, engine.Options{Now: fixedNow, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.WriteSchema(ctx, "test", f.Schema); err != nil {
		t.Fatal(err)
	}
	var res CheckResult
	if err := load(ctx, eng, f, layout{}, &res); err != nil || len(res.Problems) > 0 {
		t.Fatalf("load: %v %v", err, res.Problems)
	}
	var employees []tuple.SubjectRef
	for _, r := range f.Relationships {
		if s := r.Subject; s.Type == "employee" && !s.IsWildcard() && s.Relation == "" && !slices.Contains(employees, s) {
			employees = append(employees, s)
		}
	}
	compared, caveated, granted := 0, 0, 0
	for _, exp := range f.Expected {
		tree, _, err := eng.Expand(ctx, engine.ExpandRequest{Consistency: engine.FullyConsistent(),
			ExpandRequest: engine.ExpandQuery{Resource: exp.Resource, Permission: exp.Permission}})
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range employees {
			ans, err := eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(),
				CheckRequest: engine.CheckQuery{Resource: exp.Resource, Permission: exp.Permission, Subject: sub}})
			if err != nil {
				t.Fatal(err)
			}
			grants := grantsOf(tree, sub)[tree]
			if ans.Permissionship.String() == "CONDITIONAL_PERMISSION" || hasCaveat(tree) {
				caveated++
				continue
			}
			compared++
			if allowed := ans.Permissionship.String() == "HAS_PERMISSION"; grants != allowed {
				t.Errorf("%s#%s@%s: Check says %s, the tree's root is marked %v", exp.Resource, exp.Permission, sub, ans.Permissionship, grants)
			}
			if grants {
				granted++
			}
		}
	}
	t.Logf("%d pairs compared (%d granted), %d left out for caveats", compared, granted, caveated)
	if compared < 100 || granted < 10 {
		t.Errorf("only %d pairs compared, %d granted: the test lost its data", compared, granted)
	}
}

// hasCaveat reports whether any relationship in t carries a caveat.
func hasCaveat(t *engine.Tree) bool {
	if t.Caveat != nil {
		return true
	}
	for _, s := range t.Subjects {
		if s.Caveat != nil {
			return true
		}
	}
	return slices.ContainsFunc(t.Children, hasCaveat)
}
