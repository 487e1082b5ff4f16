package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestCheckExplainGolden")

// TestCheckExplainGolden runs pemba check --explain on the questions the
// enterprise platform's support staff ask (domain.md) against the
// example's quickstart data, and compares the rendered explanations with
// testdata/explain/*.golden (regenerate with -update).
func TestCheckExplainGolden(t *testing.T) {
	addr := startServer(t)
	must(t, addr, "schema", "write", filepath.Join(exampleDir, "schema.zed"))
	must(t, addr, "relationship", "import", filepath.Join(exampleDir, "quickstart.relationships"))
	cases := []struct {
		name  string
		args  []string
		first string // the answer line
	}{
		// Why can li message wang? acme and globex are linked, approved,
		// verified, and li is granted on the link.
		{"li_can_message_wang", []string{"employee:wang#can_message@employee:li"}, "true"},
		// Why can't zhao? Zhao's grant on the link expired in 2020.
		{"zhao_cannot_message_wang", []string{"employee:wang#can_message@employee:zhao"}, "false"},
		// Why can zhang view c42? Through region north's viewers.
		{"zhang_can_view_c42", []string{"crm_customer:c42#view@employee:zhang"}, "true"},
		// A caveat that needs the file's size.
		{"li_file_transfer_conditional", []string{"link:acme_globex#use_file_transfer@employee:li"}, "conditional (missing context: size)"},
		// The same with a size over li's limit: the caveat is false.
		{"li_file_transfer_too_large", []string{"--context", `{"size": 20971520}`, "link:acme_globex#use_file_transfer@employee:li"}, "false"},
		// The sibling department's scoped admin cannot manage finance.
		{"sun_cannot_manage_finance", []string{"department:acme_finance#manage@employee:sun"}, "false"},
		// A permission set: each answer with its explanation.
		{"zhang_c42_view_delete", []string{"crm_customer:c42#view,delete@employee:zhang"}, "crm_customer:c42#view true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := must(t, addr, append([]string{"check", "--explain"}, c.args...)...)
			if first, _, _ := strings.Cut(out, "\n"); first != c.first {
				t.Errorf("answer %q, want %q", first, c.first)
			}
			golden := filepath.Join("testdata", "explain", c.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("pemba check --explain %s:\n%s\nwant (%s):\n%s", strings.Join(c.args, " "), out, golden, want)
			}
		})
	}
}

// TestCheckExplainJSON: with --output json the explanation is the API's
// CheckExplanation in protojson beside the usual fields, and without
// --explain there is none.
func TestCheckExplainJSON(t *testing.T) {
	addr := startServer(t)
	must(t, addr, "schema", "write", filepath.Join(exampleDir, "schema.zed"))
	must(t, addr, "relationship", "import", filepath.Join(exampleDir, "quickstart.relationships"))
	var got struct {
		Permissionship string `json:"permissionship"`
		Explanation    *struct {
			Root struct {
				Kind           string `json:"kind"`
				Permissionship string `json:"permissionship"`
			} `json:"root"`
			Witness []json.RawMessage `json:"witness"`
		} `json:"explanation"`
	}
	out := must(t, addr, "check", "--explain", "--output", "json", "crm_customer:c42#view@employee:zhang")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Permissionship != "has_permission" || got.Explanation == nil || got.Explanation.Root.Kind != "KIND_RELATION" ||
		got.Explanation.Root.Permissionship != "PERMISSIONSHIP_HAS_PERMISSION" || len(got.Explanation.Witness) == 0 {
		t.Errorf("check --explain --output json = %s", out)
	}
	// A denial names the nearest relationship that would grant.
	var deny struct {
		Permissionship string `json:"permissionship"`
		Explanation    struct {
			Nearest struct {
				Resource struct {
					ObjectID string `json:"object_id"`
				} `json:"resource"`
				Relation string `json:"relation"`
			} `json:"nearest"`
		} `json:"explanation"`
	}
	out = must(t, addr, "check", "--explain", "--output", "json", "employee:wang#can_message@employee:zhao")
	if err := json.Unmarshal([]byte(out), &deny); err != nil || deny.Permissionship != "no_permission" ||
		deny.Explanation.Nearest.Resource.ObjectID != "globex" || deny.Explanation.Nearest.Relation != "member" {
		t.Errorf("check --explain --output json of a denial = %s (%v)", out, err)
	}
	got.Explanation = nil
	out = must(t, addr, "check", "--output", "json", "crm_customer:c42#view@employee:zhang")
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Explanation != nil {
		t.Errorf("check --output json without --explain = %s (%v)", out, err)
	}
}

// TestCheckSetExplain: pemba check --explain on a permission set prints
// every answer followed by its explanation, cells separated by a blank
// line, each explanation as pemba check --explain prints it for that one
// permission; with --output json each cell carries its explanation as
// the single check's JSON does, and without --explain none.
func TestCheckSetExplain(t *testing.T) {
	addr := startServer(t)
	must(t, addr, "schema", "write", filepath.Join(exampleDir, "schema.zed"))
	must(t, addr, "relationship", "import", filepath.Join(exampleDir, "quickstart.relationships"))
	const who = "@employee:zhang"
	out := must(t, addr, "check", "--explain", "crm_customer:c42#view,delete,edit"+who, "--resource", "crm_customer:c7")
	cells := strings.Split(strings.TrimSuffix(out, "\n"), "\n\n")
	if len(cells) != 6 {
		t.Fatalf("%d cells, want 6:\n%s", len(cells), out)
	}
	for _, c := range cells {
		head, tree, _ := strings.Cut(c, "\n")
		cell, answer, _ := strings.Cut(head, " ")
		one := must(t, addr, "check", "--explain", cell+who)
		oneAnswer, oneTree, _ := strings.Cut(one, "\n")
		if answer != oneAnswer || tree+"\n" != oneTree || !strings.Contains(tree, cell) {
			t.Errorf("%s: the set prints\n%s\n%s\npemba check --explain prints\n%s", cell, answer, tree, one)
		}
	}

	type cellJSON struct {
		Permission  string          `json:"permission"`
		Allowed     bool            `json:"allowed"`
		Explanation json.RawMessage `json:"explanation"`
	}
	var set struct {
		Rows []struct {
			Resource string     `json:"resource"`
			Cells    []cellJSON `json:"cells"`
		} `json:"rows"`
	}
	out = must(t, addr, "check", "--explain", "--output", "json", "crm_customer:c42#*"+who)
	if err := json.Unmarshal([]byte(out), &set); err != nil || len(set.Rows) != 1 || len(set.Rows[0].Cells) < 2 {
		t.Fatalf("check --explain --output json of a set = %s (%v)", out, err)
	}
	allowed := 0
	for _, c := range set.Rows[0].Cells {
		var one struct {
			Explanation json.RawMessage `json:"explanation"`
		}
		single := must(t, addr, "check", "--explain", "--output", "json", "crm_customer:c42#"+c.Permission+who)
		if err := json.Unmarshal([]byte(single), &one); err != nil {
			t.Fatal(err)
		}
		if len(c.Explanation) == 0 || !jsonEqual(t, c.Explanation, one.Explanation) {
			t.Errorf("%s: the set's explanation %s, the check's %s", c.Permission, c.Explanation, one.Explanation)
		}
		if c.Allowed {
			allowed++
		}
	}
	if allowed == 0 {
		t.Errorf("zhang may do nothing on c42: %s", out)
	}
	out = must(t, addr, "check", "--output", "json", "crm_customer:c42#*"+who)
	if strings.Contains(out, "explanation") {
		t.Errorf("check --output json of a set without --explain = %s", out)
	}
}

// jsonEqual reports whether two JSON documents hold the same values.
func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// TestExplainPlan: the planner's choices render as words.
func TestExplainPlan(t *testing.T) {
	for _, c := range []struct {
		plan  string
		order []int32
		want  string
	}{
		{"", nil, ""},
		{"children_statistics", []int32{2, 0, 1}, "branches 3, 1, 2 in that order, cheapest first by the statistics"},
		{"exclusion_subtraction_first", nil, "subtraction first"},
		{"exclusion_base_skipped", nil, "subtraction first; it holds, so the base was not evaluated"},
		{"something_new", nil, "something_new"},
	} {
		if got := explainPlan(&pb.ExplainNode{Plan: c.plan, Order: c.order}); got != c.want {
			t.Errorf("plan %q: %q, want %q", c.plan, got, c.want)
		}
	}
}
