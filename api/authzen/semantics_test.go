package authzen_test

import (
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/api/authzen"
)

// The evaluations semantics of §7.1.2.1 as a decision table. A batch is
// written as letters, one per item, and so is its answer:
//
//	P  permitted                     (doc:p, user:u views it)
//	D  denied                        (doc:d, nobody views it)
//	C  conditional: a deny naming the missing caveat context (doc:c)
//	E  an item error: a type the schema lacks (context.error, 404)
//	M  an item error: the item's resource has no id (context.error, 400)
//
// execute_all answers every item; deny_on_first_deny stops after the
// first item that is not a permit ("any denial (error, or decision
// false)"), permit_on_first_permit after the first permit.
func TestEvaluationsSemantic(t *testing.T) {
	eng := newWorld(t, `
caveat gold(tier string) { tier == "gold" }
definition user {}
definition doc {
  relation viewer: user | user with gold
  permission read = viewer
}`, `
doc:p#viewer@user:u
doc:c#viewer@user:u[gold]
`)
	h := newHandler(t, eng, authzen.Options{})
	items := map[byte]obj{
		'P': {"resource": res("doc", "p")},
		'D': {"resource": res("doc", "d")},
		'C': {"resource": res("doc", "c")},
		'E': {"resource": res("spaceship", "x")},
		'M': {"resource": obj{"type": "doc"}},
	}
	table := []struct {
		batch                                  string
		executeAll, denyOnFirst, permitOnFirst string
	}{
		{"P", "P", "P", "P"},
		{"D", "D", "D", "D"},
		{"PPP", "PPP", "PPP", "P"},
		{"DDD", "DDD", "D", "DDD"},
		{"PDP", "PDP", "PD", "P"},
		{"DPD", "DPD", "D", "DP"},
		{"DDP", "DDP", "D", "DDP"},
		{"PPD", "PPD", "PPD", "P"},
		{"EPP", "EPP", "E", "EP"},
		{"PMP", "PMP", "PM", "P"},
		{"MEP", "MEP", "M", "MEP"},
		{"CPD", "CPD", "C", "CP"},
		{"PCD", "PCD", "PC", "P"},
	}
	for _, row := range table {
		for _, sem := range []struct{ name, want string }{
			{"", row.executeAll}, // §7.1.2.1: execute_all is the default
			{"execute_all", row.executeAll},
			{"deny_on_first_deny", row.denyOnFirst},
			{"permit_on_first_permit", row.permitOnFirst},
		} {
			req := obj{"subject": subj("user", "u"), "action": act("read")}
			var evals []any
			for i := 0; i < len(row.batch); i++ {
				evals = append(evals, items[row.batch[i]])
			}
			req["evaluations"] = evals
			if sem.name != "" {
				req["options"] = obj{"evaluations_semantic": sem.name}
			}
			var resp struct {
				Evaluations []struct {
					Decision bool           `json:"decision"`
					Context  map[string]any `json:"context"`
				} `json:"evaluations"`
			}
			callJSON(t, h, authzen.EvaluationsPath, req, &resp)
			var got strings.Builder
			for _, d := range resp.Evaluations {
				got.WriteByte(letter(t, d.Decision, d.Context))
			}
			if got.String() != sem.want {
				t.Errorf("batch %s, semantic %q: answered %s, want %s", row.batch, sem.name, got.String(), sem.want)
			}
		}
	}
}

// letter classifies one decision of a batch (see TestEvaluationsSemantic).
func letter(t *testing.T, decision bool, ctx map[string]any) byte {
	t.Helper()
	if decision {
		if len(ctx) > 0 {
			t.Errorf("a permit with context %v", ctx)
		}
		return 'P'
	}
	if e, ok := ctx["error"].(map[string]any); ok {
		switch e["status"] {
		case 404.0:
			return 'E'
		case 400.0:
			return 'M'
		}
		t.Errorf("item error %v", e)
		return '?'
	}
	if m, ok := ctx["missing_context"].([]any); ok {
		if len(m) != 1 || m[0] != "tier" {
			t.Errorf("missing_context %v, want [tier]", m)
		}
		return 'C'
	}
	return 'D'
}

// Every item of a batch inherits each top-level field it lacks, and an
// item's own field replaces the default as a whole (§7.1.1): an item's
// context is not merged with the top-level one.
func TestEvaluationsDefaults(t *testing.T) {
	eng := newWorld(t, `
caveat both(a int, b int) { a == 1 && b == 2 }
definition user {}
definition doc {
  relation viewer: user | user with both
  relation editor: user
  permission read = viewer
  permission edit = editor
}`, `
doc:1#viewer@user:u[both]
doc:2#editor@user:v
`)
	h := newHandler(t, eng, authzen.Options{})
	top := obj{
		"subject": subj("user", "u"), "action": act("read"), "resource": res("doc", "1"),
		"context": obj{"a": 1, "b": 2},
	}
	cases := []struct {
		name string
		item obj
		want string
	}{
		{"everything inherited", obj{}, "P"},
		{"own subject", obj{"subject": subj("user", "v")}, "D"},
		{"own action and subject", obj{"subject": subj("user", "v"), "action": act("edit")}, "D"},
		{"own action, subject and resource", obj{"subject": subj("user", "v"), "action": act("edit"), "resource": res("doc", "2")}, "P"},
		// The item's context replaces {"a":1,"b":2} whole: b is missing.
		{"own context replaces, not merges", obj{"context": obj{"a": 1}}, "C"},
		{"own context, complete", obj{"context": obj{"a": 1, "b": 2, "c": 3}}, "P"},
		{"own context, false", obj{"context": obj{"a": 1, "b": 3}}, "D"},
	}
	for _, c := range cases {
		req := obj{"evaluations": []any{c.item}}
		for k, v := range top {
			req[k] = v
		}
		var resp struct {
			Evaluations []struct {
				Decision bool           `json:"decision"`
				Context  map[string]any `json:"context"`
			} `json:"evaluations"`
		}
		callJSON(t, h, authzen.EvaluationsPath, req, &resp)
		if len(resp.Evaluations) != 1 {
			t.Fatalf("%s: %d answers", c.name, len(resp.Evaluations))
		}
		d := resp.Evaluations[0]
		got := "D"
		switch {
		case d.Decision:
			got = "P"
		case d.Context["missing_context"] != nil:
			got = "C"
		case d.Context["error"] != nil:
			got = "E"
		}
		if got != c.want {
			t.Errorf("%s: answered %s (%v), want %s", c.name, got, d.Context, c.want)
		}
	}
}
