package validation

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

const sampleFile = `schema: |-
  definition user {}
  definition document {
    relation viewer: user | user:*
    permission view = viewer
  }
relationships: |-
  // a comment

  document:1#viewer@user:anne
  document:2#viewer@user:*
assertions:
  assertTrue:
    - document:1#view@user:anne
    - 'document:1#view@user:anne with {"a": 1}'
  assertFalse:
    - document:1#view@user:bob
  assertCaveated: []
validation:
  document:1#view:
    - "[user:anne] is <document:1#viewer>"
  document:2#view:
    - "[user:* - {user:bob, user:eve[...]}] is <document:2#viewer>"
  document:3#view:
`

func TestParseSample(t *testing.T) {
	f, err := Parse("sample.yaml", []byte(sampleFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.Schema, "definition user {}") || f.SchemaPos.Line != 2 {
		t.Errorf("schema at %v: %q", f.SchemaPos, f.Schema)
	}
	wantRels := []struct {
		text string
		line int
	}{{"document:1#viewer@user:anne", 10}, {"document:2#viewer@user:*", 11}}
	if len(f.Relationships) != len(wantRels) {
		t.Fatalf("got %d relationships, want %d", len(f.Relationships), len(wantRels))
	}
	for i, w := range wantRels {
		if got := f.Relationships[i]; got.String() != w.text || got.Pos.Line != w.line {
			t.Errorf("relationship %d = %s at line %d, want %s at line %d", i, got, got.Pos.Line, w.text, w.line)
		}
	}
	if len(f.Assertions) != 3 {
		t.Fatalf("got %d assertions, want 3", len(f.Assertions))
	}
	a := f.Assertions[1]
	if a.Kind != AssertTrue || a.Pos.Line != 15 || a.Context["a"] == nil || a.Subject.ID != "anne" {
		t.Errorf("assertion 1 = %+v", a)
	}
	if f.Assertions[2].Kind != AssertFalse || f.Assertions[2].Pos.Line != 17 {
		t.Errorf("assertion 2 = %+v", f.Assertions[2])
	}
	if len(f.Expected) != 3 {
		t.Fatalf("got %d validation entries, want 3", len(f.Expected))
	}
	es := f.Expected[1].Subjects[0]
	if es.Subject.String() != "user:*" || len(es.Exceptions) != 2 || !es.Exceptions[1].Caveated || es.Pos.Line != 23 {
		t.Errorf("expected subject = %+v", es)
	}
	if len(f.Expected[2].Subjects) != 0 {
		t.Errorf("document:3#view expects %d subjects, want none", len(f.Expected[2].Subjects))
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// want lists "line: substring" for every expected error, in order.
		want []string
	}{
		{"bad yaml", "schema: |\n  definition user {}\nrelationships:\n\t- a\n", []string{"4: invalid YAML"}},
		{"not a mapping", "- a\n- b\n", []string{"1: expected a mapping"}},
		{"empty", "", []string{"1: empty validation file"}},
		{"unknown key", "schema: x\nrelations: y\n", []string{`2: unknown key "relations"`}},
		{"missing schema", "relationships: ''\n", []string{"1: missing schema"}},
		{"both schemas", "schema: x\nschemaFile: y.zed\n", []string{"2: either schema or schemaFile"}},
		{"duplicate key", "schema: x\nschema: y\n", []string{`2: key "schema" repeats`}},
		{"bad relationship line", "schema: x\nrelationships: |\n  document:1#viewer@user:anne\n\n  document:1viewer@user:bob\n", []string{`5: relationship "document:1viewer@user:bob"`}},
		{"two bad relationships", "schema: x\nrelationships: |-\n  a:1#b@c\n  // ok\n  x#y\n", []string{"3: relationship", "5: relationship"}},
		{"unknown assertion kind", "schema: x\nassertions:\n  assertMaybe:\n    - a:1#b@c:d\n", []string{`3: unknown assertion kind "assertMaybe"`}},
		{"bad assertion", "schema: x\nassertions:\n  assertTrue:\n    - a:1#b@c:d\n    - a:1#b\n", []string{"5: assertTrue"}},
		{"assertion with bad context", "schema: x\nassertions:\n  assertTrue:\n    - 'a:1#b@c:d with {nope'\n", []string{"4: assertTrue"}},
		{"assertion with garbage", "schema: x\nassertions:\n  assertFalse:\n    - a:1#b@c:d and more\n", []string{"4: assertFalse"}},
		{"assertions not a map", "schema: x\nassertions: [a]\n", []string{"2: assertions: expected a mapping"}},
		{"bad validation key", "schema: x\nvalidation:\n  document:1:\n    - '[user:a]'\n", []string{"3: validation key"}},
		{"bad expected subject", "schema: x\nvalidation:\n  document:1#view:\n    - 'user:a is <document:1#viewer>'\n", []string{"4: validation document:1#view"}},
		{"unterminated onr", "schema: x\nvalidation:\n  document:1#view:\n    - '[user:a] is <document:1#viewer'\n", []string{"4: validation"}},
		{"two documents", "schema: x\n---\nschema: y\n", []string{"2: a validation file holds one YAML document"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.src))
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			if !errors.Is(err, ErrInvalidFile) {
				t.Errorf("error %v is not ErrInvalidFile", err)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %T is not an ErrorList", err)
			}
			if len(list) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(list), len(tt.want), err)
			}
			for i, w := range tt.want {
				got := list[i].Error()
				line, sub, ok := strings.Cut(w, ": ")
				if !ok || !strings.Contains(got, sub) || !strings.HasPrefix(got, "f.yaml:"+line+":") {
					t.Errorf("error %d = %q, want line %s containing %q", i, got, line, sub)
				}
			}
		})
	}
}

func TestParseExpectedSubject(t *testing.T) {
	tests := []struct {
		in        string
		subject   string
		caveated  bool
		exception []string
		via       []string
		wantErr   bool
	}{
		{in: "[user:anne] is <document:1#viewer>", subject: "user:anne", via: []string{"document:1#viewer"}},
		{in: "[user:anne[...]] is <document:1#viewer>/<group:g#member>", subject: "user:anne", caveated: true, via: []string{"document:1#viewer", "group:g#member"}},
		{in: "[group:eng#member] is <document:1#viewer>", subject: "group:eng#member", via: []string{"document:1#viewer"}},
		{in: "[user:tom#...]", subject: "user:tom"},
		{in: "[user:* - {user:a, user:b[...]}] is <d:1#v>", subject: "user:*", exception: []string{"user:a", "user:b"}, via: []string{"d:1#v"}},
		{in: "user:anne", wantErr: true},
		{in: "[user:anne", wantErr: true},
		{in: "[user] is <d:1#v>", wantErr: true},
		{in: "[user:* - user:a] is <d:1#v>", wantErr: true},
		{in: "[user:a] is <d:1>", wantErr: true},
	}
	for _, tt := range tests {
		es, err := ParseExpectedSubject(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseExpectedSubject(%q) succeeded, want an error", tt.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseExpectedSubject(%q): %v", tt.in, err)
			continue
		}
		if es.Subject.String() != tt.subject || es.Caveated != tt.caveated {
			t.Errorf("ParseExpectedSubject(%q) = %s caveated=%v", tt.in, es.Subject, es.Caveated)
		}
		var exc, via []string
		for _, x := range es.Exceptions {
			exc = append(exc, x.Subject.String())
		}
		for _, v := range es.Via {
			via = append(via, v.String())
		}
		if strings.Join(exc, ",") != strings.Join(tt.exception, ",") || strings.Join(via, ",") != strings.Join(tt.via, ",") {
			t.Errorf("ParseExpectedSubject(%q): exceptions %v via %v, want %v and %v", tt.in, exc, via, tt.exception, tt.via)
		}
	}
}

func TestLoadSchemaFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.zed"), []byte("definition user {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "v.yaml")
	if err := os.WriteFile(path, []byte("schemaFile: s.zed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Schema != "definition user {}\n" || f.SchemaPos.File != filepath.Join(dir, "s.zed") || f.SchemaPos.Line != 1 {
		t.Errorf("schema %q at %v", f.Schema, f.SchemaPos)
	}

	missing := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(missing, []byte("\nschemaFile: nope.zed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(missing)
	if err == nil || !strings.HasPrefix(err.Error(), missing+":2: schemaFile") {
		t.Errorf("Load with a missing schemaFile: %v", err)
	}
}

// TestLoadImports resolves a schema that imports other files, from a
// schemaFile and from an inline schema, and reports errors of imported
// files at their file, line and column.
func TestLoadImports(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("lib/user.zed", "definition user {}\n")
	write("root.zed", "use import\nimport \"lib/user.zed\"\ndefinition doc { relation viewer: user }\n")
	f, err := Load(write("file.yaml", "schemaFile: root.zed\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "definition user {}\n\ndefinition doc {\n\trelation viewer: user\n}\n"; f.Schema != want {
		t.Errorf("schema:\n%s\nwant:\n%s", f.Schema, want)
	}
	f, err = Load(write("inline.yaml", "schema: |-\n  use import\n  import \"lib/user.zed\"\n  definition doc { relation viewer: user }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.Schema, "definition user {}") {
		t.Errorf("inline schema not resolved:\n%s", f.Schema)
	}

	write("lib/bad.zed", "definition user {\n\trelation r: usr\n}\n")
	write("bad.zed", "use import\nimport \"lib/bad.zed\"\nimport \"lib/cycle.zed\"\n")
	write("lib/cycle.zed", "use import\nimport \"../bad.zed\"\n")
	_, err = Load(write("bad.yaml", "schemaFile: bad.zed\n"))
	// Files are checked only once they all load: the cycle is the error.
	want := filepath.Join(dir, "lib", "cycle.zed") + `:2:8: import cycle: bad.zed imports lib/cycle.zed imports bad.zed`
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v\nwant %s", err, want)
	}
	_, err = Load(write("bad2.yaml", "schema: |-\n  use import\n  import \"lib/bad.zed\"\n"))
	want2 := filepath.Join(dir, "lib", "bad.zed") + `:2:14: unknown definition "usr" in the type list of relation "r"`
	if err == nil || err.Error() != want2 {
		t.Errorf("Load = %v\nwant %s", err, want2)
	}
}

// FuzzParse checks that Parse never panics, that success and failure are
// exclusive, that every error has a line inside the input, and that
// parsed relationships round-trip through their text form.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleFile))
	f.Add([]byte("schema: x\nrelationships: |\n  a:1#b@c:d[cav:{\"x\":[1,{\"y\":\"]\"}]}]\n"))
	f.Add([]byte("schema: x\nvalidation:\n  a:1#b:\n    - '[c:* - {c:d[...]}] is <a:1#b>'\n"))
	f.Add([]byte("schema: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatal("Parse returned both a file and an error")
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %v is not a non-empty ErrorList", err)
			}
			lines := strings.Count(string(data), "\n") + strings.Count(string(data), "\r") + 2
			for _, e := range list {
				if e.Pos.Line < 0 || e.Pos.Line > lines {
					t.Fatalf("error line %d outside the input (%d lines): %v", e.Pos.Line, lines, e)
				}
			}
			return
		}
		for _, r := range file.Relationships {
			back, err := tuple.Parse(r.String())
			if err != nil {
				t.Fatalf("relationship %s does not reparse: %v", r, err)
			}
			if back.Key() != r.Key() {
				t.Fatalf("round trip changed %s into %s", r, back)
			}
		}
	})
}

// Folded blocks (>-) separate relationships with blank lines, as SpiceDB's
// own files do; each relationship still gets its own line.
func TestFoldedRelationshipLines(t *testing.T) {
	src := "schema: x\nrelationships: >-\n  document:1#viewer@user:a\n\n  document:1#viewer@user:b\n\n\n  document:1#viewer@user:c\n"
	f, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range f.Relationships {
		got = append(got, r.Pos.Line)
	}
	if fmt.Sprint(got) != "[3 5 8]" {
		t.Errorf("lines = %v, want [3 5 8]", got)
	}
}
