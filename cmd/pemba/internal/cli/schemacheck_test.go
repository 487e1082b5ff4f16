package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaCheck runs schema check offline on files with errors, lint
// warnings, silenced warnings and imports, and compares standard output
// and the exit code with the expected text.
func TestSchemaCheck(t *testing.T) {
	const dir = "testdata/schemacheck/"
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string // substring
	}{
		{"every error, with positions", "", []string{dir + "errors.zed"}, 1,
			dir + `errors.zed:4:19: unknown definition "usr" in the type list of relation "viewer"
` + dir + `errors.zed:6:29: unknown relation "editr" on definition "doc"
`, "2 errors, 0 warnings in 1 file"},
		{"syntax errors", "", []string{dir + "syntax.zed"}, 1,
			dir + `syntax.zed:2:18: expected ":", found "user"
` + dir + `syntax.zed:4:1: expected relation, permission, arrow, "nil" or "(", found "}"
`, "2 errors"},
		{"lint warnings exit 0", "", []string{dir + "lint.zed"}, 0,
			dir + `lint.zed:14:11: warning: relation "legacy" of definition "doc" is not used by any permission, arrow or subject type (unused-relation)
` + dir + `lint.zed:15:29: warning: arrow parent->view follows relation "parent", which allows wildcard subjects (folder:*): a wildcard names no object, so the arrow never follows it (wildcard-arrow)
` + dir + `lint.zed:16:13: warning: permission "never" of definition "doc" can never be granted: no relationships make viewer & nil hold (unreachable-permission)
`, "0 errors, 3 warnings in 1 file"},
		{"--strict fails on warnings", "", []string{"--strict", dir + "lint.zed"}, 1, "", "3 warnings"},
		{"--disable", "", []string{"--disable", "unused-relation,wildcard-arrow", dir + "lint.zed"}, 0,
			dir + `lint.zed:16:13: warning: permission "never" of definition "doc" can never be granted: no relationships make viewer & nil hold (unreachable-permission)
`, "1 warning"},
		{"--disable unknown check", "", []string{"--disable", "unused", dir + "lint.zed"}, 2, "", `unknown lint check "unused"`},
		{"imports, named as given", "", []string{dir + "root.zed"}, 0,
			dir + `parts/user.zed:2:11: warning: relation "friend" of definition "user" is not used by any permission, arrow or subject type (unused-relation)
`, "0 errors, 1 warning in 1 file"},
		{"standard input", "definition user {}\ndefinition doc { relation v: user\npermission p = v + w }\n", []string{"-"}, 1,
			`<stdin>:3:20: unknown relation "w" on definition "doc"
`, "1 error"},
		{"several files", "", []string{dir + "root.zed", dir + "errors.zed"}, 1, "", "2 errors, 1 warning in 2 files"},
		{"missing file", "", []string{dir + "nope.zed"}, 1, dir + "nope.zed: cannot read schema: file does not exist\n", "1 error"},
		{"no files", "", nil, 2, "", "no files"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := pemba(t, "", tc.stdin, append([]string{"schema", "check"}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.stdout != "" && r.stdout != tc.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, tc.stdout)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.stderr)
			}
		})
	}
}

func TestSchemaCheckJSON(t *testing.T) {
	r := pemba(t, "", "", "schema", "check", "--output", "json", "testdata/schemacheck/errors.zed", "testdata/schemacheck/lint.zed")
	if r.code != 1 {
		t.Fatalf("exit %d: %+v", r.code, r)
	}
	if !strings.Contains(r.stdout, "parent->view") || !strings.Contains(r.stdout, "viewer & nil") {
		t.Errorf("JSON output escapes the schema syntax of its messages (want parent->view and viewer & nil as written):\n%s", r.stdout)
	}
	var reports []struct {
		File   string `json:"file"`
		Errors []struct {
			File    string `json:"file"`
			Line    int    `json:"line"`
			Column  int    `json:"column"`
			Message string `json:"message"`
		} `json:"errors"`
		Warnings []struct {
			Line  int    `json:"line"`
			Check string `json:"check"`
		} `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &reports); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(reports) != 2 || len(reports[0].Errors) != 2 || len(reports[1].Warnings) != 3 || len(reports[1].Errors) != 0 {
		t.Fatalf("reports = %+v", reports)
	}
	if e := reports[0].Errors[0]; e.File != "testdata/schemacheck/errors.zed" || e.Line != 4 || e.Column != 19 || !strings.Contains(e.Message, `"usr"`) {
		t.Errorf("first error = %+v", e)
	}
	if w := reports[1].Warnings[1]; w.Line != 15 || w.Check != "wildcard-arrow" {
		t.Errorf("second warning = %+v", w)
	}
}

// TestSchemaDiffSyntaxAndExitCode: schema diff prints permission changes
// in schema syntax, and --exit-code exits 1 exactly when there are changes.
func TestSchemaDiffSyntaxAndExitCode(t *testing.T) {
	const old, new = "testdata/schemacheck/old.zed", "testdata/schemacheck/new.zed"
	const want = `relation removed: doc#admin
permission changed: doc#view: viewer + admin => viewer + owner - banned
relation added: doc#owner: renamed from admin (its stored relationships are read as owner)
`
	tests := []struct {
		args   []string
		code   int
		stdout string
	}{
		{[]string{old, new}, 0, want},
		{[]string{"--exit-code", old, new}, 1, want},
		{[]string{"--exit-code", old, old}, 0, ""},
		{[]string{"--exit-code", "--output", "json", old, old}, 0, "[]\n"},
		{[]string{"--exit-code", old, "testdata/schemacheck/errors.zed"}, 1, ""},
	}
	for _, tc := range tests {
		r := pemba(t, "", "", append([]string{"schema", "diff"}, tc.args...)...)
		if r.code != tc.code || r.stdout != tc.stdout {
			t.Errorf("schema diff %s: exit %d, stdout:\n%s\nwant exit %d, stdout:\n%s", strings.Join(tc.args, " "), r.code, r.stdout, tc.code, tc.stdout)
		}
	}
}

// TestSchemaWriteDryRun: --dry-run prints the flips on the server's data
// and writes nothing; --output json reports them as data.
func TestSchemaWriteDryRun(t *testing.T) {
	addr := startServer(t)
	dir := t.TempDir()
	v1 := filepath.Join(dir, "v1.zed")
	v2 := filepath.Join(dir, "v2.zed")
	if err := os.WriteFile(v1, []byte("definition user {}\ndefinition doc {\n\trelation viewer: user\n\trelation editor: user\n\tpermission view = viewer + editor\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2, []byte("definition user {}\ndefinition doc {\n\trelation viewer: user\n\trelation editor: user\n\tpermission view = viewer\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, addr, "schema", "write", v1)
	must(t, addr, "relationship", "write", "doc:1#editor@user:anne", "doc:2#viewer@user:bob", "doc:3#editor@user:carl")
	r := pemba(t, addr, "", "schema", "write", "--dry-run", v2)
	const want = "doc#view: 0 granted, 2 revoked\n  doc:1#view@user:anne: has_permission -> no_permission\n  doc:3#view@user:carl: has_permission -> no_permission\n"
	if r.code != 0 || r.stdout != want || !strings.Contains(r.stderr, "permission changed: doc#view: viewer + editor => viewer") || !strings.Contains(r.stderr, "dry run: nothing written") {
		t.Errorf("dry run: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
	r = pemba(t, addr, "", "schema", "write", "--dry-run", "--output", "json", v2)
	var out struct {
		DryRun      bool `json:"dry_run"`
		Permissions []struct {
			Permission string `json:"permission"`
			Revoked    int    `json:"revoked"`
		} `json:"permissions"`
		Samples []struct {
			Relationship string `json:"relationship"`
		} `json:"samples"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !out.DryRun || len(out.Permissions) != 1 || out.Permissions[0].Revoked != 2 || len(out.Samples) != 2 || out.Samples[1].Relationship != "doc:3#view@user:carl" {
		t.Errorf("dry run json: %s (%v)", r.stdout, err)
	}
	if got := must(t, addr, "check", "doc:1#view@user:anne"); !strings.HasPrefix(got, "true") {
		t.Errorf("after the dry runs doc:1#view@user:anne = %q: the schema was written", got)
	}
	if r := pemba(t, addr, "", "schema", "write", "--dry-run", v1); r.code != 0 || r.stdout != "no result changes\n" {
		t.Errorf("dry run of the schema in force: %+v", r)
	}
}
