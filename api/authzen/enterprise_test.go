package authzen_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/api/authzen"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/engine/validation"
)

// The showcase example end to end through the Authorization API: every
// assertion of examples/enterprise/enterprise.yaml (the answers `pemba
// validate` checks) asked as an AuthZEN evaluation, alone and as one
// batch; resource searches agree with the assertions without context;
// subject searches list exactly the employees the file's validation
// section expects.
func TestEnterpriseExample(t *testing.T) {
	f, err := validation.Load("../../examples/enterprise/enterprise.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := newWorld(t, f.Schema, "")
	var rels []string
	for _, r := range f.Relationships {
		rels = append(rels, r.Relationship.String())
	}
	importRels(t, eng, strings.Join(rels, "\n"))
	h := newHandler(t, eng, authzen.Options{})

	if len(f.Assertions) < 100 {
		t.Fatalf("only %d assertions", len(f.Assertions))
	}
	var batch []any
	var want []string
	for _, a := range f.Assertions {
		item := obj{"subject": subjectOf(a.Subject), "action": act(a.Permission), "resource": res(a.Resource.Type, a.Resource.ID)}
		if a.Context != nil {
			item["context"] = a.Context
		}
		batch = append(batch, item)
		var d decisionJSON
		callJSON(t, h, authzen.EvaluationPath, item, &d)
		w := map[validation.AssertionKind]string{validation.AssertTrue: "permit", validation.AssertFalse: "deny", validation.AssertCaveated: "conditional"}[a.Kind]
		want = append(want, w)
		if got := d.kind(); got != w {
			t.Errorf("%s: %s answered %s (%v), want %s", a.Pos, a.Text, got, d.Context, w)
		}
	}
	var resp struct {
		Evaluations []decisionJSON `json:"evaluations"`
	}
	callJSON(t, h, authzen.EvaluationsPath, obj{"evaluations": batch}, &resp)
	if len(resp.Evaluations) != len(want) {
		t.Fatalf("the batch answered %d of %d", len(resp.Evaluations), len(want))
	}
	for i, d := range resp.Evaluations {
		if got := d.kind(); got != want[i] {
			t.Errorf("batch item %d (%s): %s, want %s", i, f.Assertions[i].Text, got, want[i])
		}
	}

	// Resource searches: a definite answer without context is a result,
	// or not one.
	type query struct {
		subject    tuple.SubjectRef
		permission string
		typ        string
	}
	found := map[query][]string{}
	searched := 0
	for _, a := range f.Assertions {
		if a.Context != nil || a.Kind == validation.AssertCaveated || a.Subject.ID == tuple.Wildcard {
			continue
		}
		q := query{a.Subject, a.Permission, a.Resource.Type}
		ids, ok := found[q]
		if !ok {
			ids = walk(t, h, authzen.SearchResourcePath, obj{"subject": subjectOf(a.Subject), "action": act(a.Permission), "resource": obj{"type": a.Resource.Type}}, 0, authzen.DefaultPageSize)
			found[q] = ids
			searched++
		}
		if in := slices.Contains(ids, a.Resource.ID); in != (a.Kind == validation.AssertTrue) {
			t.Errorf("%s: %s, but a resource search finds %v", a.Pos, a.Text, ids)
		}
	}

	// Subject searches: the employees the validation section lists,
	// without the caveated ones (a search returns only permits).
	checked := 0
	for _, exp := range f.Expected {
		var wantIDs []string
		wild := false
		for _, s := range exp.Subjects {
			if s.Subject.Type != "employee" || s.Subject.Relation != "" {
				continue
			}
			if s.Subject.ID == tuple.Wildcard {
				wild = true
			}
			if !s.Caveated {
				wantIDs = append(wantIDs, s.Subject.ID)
			}
		}
		if wild {
			continue
		}
		slices.Sort(wantIDs)
		got := walk(t, h, authzen.SearchSubjectPath, obj{"subject": obj{"type": "employee"}, "action": act(exp.Permission), "resource": res(exp.Resource.Type, exp.Resource.ID)}, 0, authzen.DefaultPageSize)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("%s: subject search for %s#%s: %v, want %v", exp.Pos, exp.Resource, exp.Permission, got, wantIDs)
		}
		checked++
	}
	t.Logf("%d assertions, %d resource searches, %d subject searches", len(f.Assertions), searched, checked)
	if searched < 20 || checked < 5 {
		t.Errorf("only %d resource searches and %d subject searches checked", searched, checked)
	}
}

// decisionJSON is a Decision (§5.5) as the tests read it.
type decisionJSON struct {
	Decision bool           `json:"decision"`
	Context  map[string]any `json:"context"`
}

// kind says permit, deny, conditional (a deny naming missing context)
// or error.
func (d decisionJSON) kind() string {
	switch {
	case d.Decision:
		return "permit"
	case d.Context["missing_context"] != nil:
		return "conditional"
	case d.Context["error"] != nil:
		return fmt.Sprintf("error %v", d.Context["error"])
	}
	return "deny"
}

// subjectOf is the AuthZEN subject of a Pemba subject.
func subjectOf(s tuple.SubjectRef) obj {
	o := subj(s.Type, s.ID)
	if s.Relation != "" {
		o["properties"] = obj{"relation": s.Relation}
	}
	return o
}
