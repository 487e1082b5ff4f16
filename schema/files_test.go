package schema

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestCompileFiles compiles schemas spread over files and checks the
// compiled form and the flattened text.
func TestCompileFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"root.zed": {Data: []byte(`use import
use partial

import "./subjects.zed"
import 'shared/view.zed' // single quotes, as SpiceDB allows

// A resource.
definition resource {
	...view_partial

	relation organization: organization
	permission manage = organization
}
`)},
		"subjects.zed": {Data: []byte("definition user {}\ndefinition organization {}\n")},
		"shared/view.zed": {Data: []byte(`use partial
use import

import "../subjects.zed" // a diamond: subjects.zed is read once

partial view_partial {
	relation user: user
	permission view = user
}
`)},
	}
	s, err := CompileFiles(fsys, "root.zed")
	if err != nil {
		t.Fatal(err)
	}
	got := dump(s)
	for _, want := range []string{"definition organization", "definition user", "relation user #0 doc=\"\": [user]", "permission view #1 doc=\"\" = user", "relation organization #2", "permission manage #3"} {
		if !strings.Contains(got, want) {
			t.Errorf("compiled form lacks %q:\n%s", want, got)
		}
	}
	wantFlat := `use partial

definition user {}

definition organization {}

partial view_partial {
	relation user: user
	permission view = user
}

// A resource.
definition resource {
	...view_partial

	relation organization: organization
	permission manage = organization
}
`
	if s.Source != wantFlat {
		t.Errorf("flattened source:\n%s\nwant:\n%s", s.Source, wantFlat)
	}
	// The flattened text compiles alone to the same schema.
	s2, err := Compile("flat.zed", s.Source)
	if err != nil {
		t.Fatalf("flattened source does not compile: %v", err)
	}
	if dump(s2) != got {
		t.Errorf("flattened source compiles differently:\n%s\nwant:\n%s", dump(s2), got)
	}
}

// TestCompileFilesErrors expects each error at the right file, line and
// column.
func TestCompileFilesErrors(t *testing.T) {
	tests := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"error in imported file", fstest.MapFS{
			"root.zed": {Data: []byte("use import\nimport \"a.zed\"\ndefinition doc { relation v: user }\n")},
			"a.zed":    {Data: []byte("definition user {\n\trelation r: usr\n}\n")},
		}, `a.zed:2:14: unknown definition "usr" in the type list of relation "r"`},
		{"syntax error in imported file", fstest.MapFS{
			"root.zed":  {Data: []byte("use import\nimport \"sub/a.zed\"\n")},
			"sub/a.zed": {Data: []byte("definition user {\n\trelation r user\n}\n")},
		}, `sub/a.zed:2:13: expected ":", found "user"`},
		{"cycle", fstest.MapFS{
			"root.zed": {Data: []byte("use import\nimport \"a.zed\"\n")},
			"a.zed":    {Data: []byte("use import\nimport \"b.zed\"\n")},
			"b.zed":    {Data: []byte("use import\nimport \"./a.zed\"\n")},
		}, `b.zed:2:8: import cycle: a.zed imports b.zed imports a.zed`},
		{"self import", fstest.MapFS{
			"root.zed": {Data: []byte("use import\nimport \"root.zed\"\n")},
		}, `root.zed:2:8: import cycle: root.zed imports root.zed`},
		{"missing file", fstest.MapFS{
			"root.zed": {Data: []byte("use import\n\nimport \"nope.zed\"\n")},
		}, `root.zed:3:8: import "nope.zed": file does not exist`},
		{"escaping path", fstest.MapFS{
			"root.zed": {Data: []byte("use import\nimport \"../x.zed\"\n")},
		}, `root.zed:2:8: import "../x.zed": the path must be relative and stay inside the directory of the root schema file`},
		{"absolute path", fstest.MapFS{
			"root.zed": {Data: []byte("use import\nimport \"/etc/x.zed\"\n")},
		}, `root.zed:2:8: import "/etc/x.zed": the path must be relative and stay inside the directory of the root schema file`},
		{"duplicate across files", fstest.MapFS{
			"root.zed": {Data: []byte("use import\nimport \"a.zed\"\ndefinition user {}\n")},
			"a.zed":    {Data: []byte("definition user {}\n")},
		}, `root.zed:3:12: duplicate definition "user" (first declared at a.zed:1:12)`},
		{"partial from another file", fstest.MapFS{
			"root.zed": {Data: []byte("use import\nimport \"p.zed\"\ndefinition user {}\ndefinition doc {\n\trelation v: user\n\t...p\n}\n")},
			"p.zed":    {Data: []byte("use partial\npartial p {\n\trelation v: user\n}\n")},
		}, `root.zed:6:5: duplicate relation "v" (from partial "p") on definition "doc" (first declared at root.zed:5:11)`},
		{"error inside a partial of another file", fstest.MapFS{
			"root.zed": {Data: []byte("use import\nimport \"p.zed\"\ndefinition doc {\n\t...p\n}\n")},
			"p.zed":    {Data: []byte("use partial\npartial p {\n\tpermission view = viewr\n}\n")},
		}, `p.zed:3:20: unknown relation "viewr" on definition "doc"`},
		{"missing root", fstest.MapFS{}, `root.zed: cannot read schema: file does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileFiles(tt.fs, "root.zed")
			if err == nil {
				t.Fatal("CompileFiles succeeded")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}
