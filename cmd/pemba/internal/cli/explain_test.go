package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
