package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree writes files (slash-separated names) under a new directory
// and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// composable is a schema split over files: imports relative to the
// importing file, a diamond (subjects.zed twice) and partials from another
// file.
var composable = map[string]string{
	"root.zed": `use import
use partial

import "subjects.zed"
import "lib/access.zed"

definition document {
	...viewing

	relation org: organization
	permission manage = org->admin
}
`,
	"subjects.zed": "definition user {}\n\ndefinition organization {\n\trelation admin: user\n}\n",
	"lib/access.zed": `use import
use partial

import "../subjects.zed"

partial viewing {
	relation viewer: user
	permission view = viewer
}
`,
}

const composableFlat = `use partial

definition user {}

definition organization {
	relation admin: user
}

partial viewing {
	relation viewer: user
	permission view = viewer
}

definition document {
	...viewing

	relation org: organization
	permission manage = org->admin
}
`

// TestSchemaImports: compile, write, diff and fmt read a schema split
// over files, resolving imports relative to the importing file.
func TestSchemaImports(t *testing.T) {
	dir := writeTree(t, composable)
	root := filepath.Join(dir, "root.zed")
	if r := pemba(t, "", "", "schema", "compile", root); r.code != 0 || r.stdout != composableFlat {
		t.Errorf("compile: code %d stderr %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, composableFlat)
	}

	addr := startServer(t)
	must(t, addr, "schema", "write", root)
	if got := must(t, addr, "schema", "read"); got != composableFlat {
		t.Errorf("schema read after writing the files:\n%s\nwant:\n%s", got, composableFlat)
	}
	zk := strings.TrimSpace(must(t, addr, "relationship", "write", "--op", "create", "document:d1#viewer@user:ann"))
	if got := strings.TrimSpace(must(t, addr, "check", "document:d1#view@user:ann", "--zookie", zk)); got != "true" {
		t.Errorf("check after writing the files: %q", got)
	}

	// diff between the files and one text.
	flat := filepath.Join(t.TempDir(), "flat.zed")
	if err := os.WriteFile(flat, []byte(composableFlat), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := pemba(t, "", "", "schema", "diff", root, flat); r.code != 0 || r.stdout != "" {
		t.Errorf("diff of the files and their compiled text: %+v", r)
	}

	// fmt formats each file on its own, import syntax included.
	messy := filepath.Join(dir, "lib", "access.zed")
	if r := pemba(t, "", "", "schema", "fmt", root, messy); r.code != 0 || !strings.Contains(r.stdout, `import "../subjects.zed"`) {
		t.Errorf("fmt of files with imports: %+v", r)
	}
}

// TestSchemaImportErrors: errors name the file they are in, with its line
// and column, as the user would open it.
func TestSchemaImportErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string // in stderr, after the directory
	}{
		{"error in imported file", map[string]string{
			"root.zed":  "use import\nimport \"lib/a.zed\"\n",
			"lib/a.zed": "definition user {\n\trelation r: usr\n}\n",
		}, filepath.Join("lib", "a.zed") + `:2:14: unknown definition "usr" in the type list of relation "r"`},
		{"cycle", map[string]string{
			"root.zed": "use import\nimport \"a.zed\"\n",
			"a.zed":    "use import\n\nimport \"root.zed\"\n",
		}, "a.zed:3:8: import cycle: root.zed imports a.zed imports root.zed"},
		{"missing import", map[string]string{
			"root.zed": "use import\nimport \"gone.zed\"\n",
		}, `root.zed:2:8: import "gone.zed": file does not exist`},
		{"outside the directory", map[string]string{
			"root.zed": "use import\nimport \"../x.zed\"\n",
		}, `root.zed:2:8: import "../x.zed": the path must be relative and stay inside the directory of the root schema file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, tt.files)
			root := filepath.Join(dir, "root.zed")
			for _, args := range [][]string{{"schema", "compile", root}, {"schema", "diff", root, root}, {"schema", "write", root}} {
				r := pemba(t, "", "", args...)
				if want := filepath.Join(dir, tt.want); r.code != 1 || !strings.Contains(r.stderr, want) {
					t.Errorf("%v: code %d, stderr %q, want it to contain %q", args, r.code, r.stderr, want)
				}
			}
		})
	}
	// Standard input has no directory to import from.
	r := pemba(t, "", "use import\nimport \"a.zed\"\n", "schema", "compile", "-")
	if r.code != 1 || !strings.Contains(r.stderr, `<stdin>:2:1: import "a.zed" cannot be resolved`) {
		t.Errorf("compile - with an import: %+v", r)
	}
}
