package validation

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
)

var fixedNow = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

func runText(t *testing.T, src string) *Result {
	t.Helper()
	f, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), f, Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

const runSchema = `schema: |-
  caveat on_weekday(day string) {
    day != "sat" && day != "sun"
  }
  definition user {}
  definition group {
    relation member: user | group#member
  }
  definition document {
    relation viewer: user | user:* | group#member | user with on_weekday | user with expiration
    relation banned: user
    permission view = viewer - banned
  }
`

func TestRunPasses(t *testing.T) {
	res := runText(t, runSchema+`relationships: |-
  document:1#viewer@user:anne
  document:1#viewer@group:eng#member
  group:eng#member@user:bob
  document:2#viewer@user:carl[on_weekday]
  document:3#viewer@user:dana[expiration:2020-01-01T00:00:00Z]
assertions:
  assertTrue:
    - document:1#view@user:anne
    - document:1#view@user:bob
    - 'document:2#view@user:carl with {"day": "mon"}'
  assertFalse:
    - document:1#view@user:carl
    - 'document:2#view@user:carl with {"day": "sun"}'
    - document:3#view@user:dana
  assertCaveated:
    - document:2#view@user:carl
`)
	if !res.OK() {
		for _, f := range res.Failures {
			t.Error(f)
		}
	}
	if res.Assertions != 7 {
		t.Errorf("ran %d assertions, want 7", res.Assertions)
	}
}

func TestRunReportsFailuresAtTheirLines(t *testing.T) {
	src := runSchema + `relationships: |-
  document:1#viewer@user:anne
  // line 16 is a comment
  document:1#view@user:bob
  document:1#viewer@user:anne
  document:1#banned@user:*
assertions:
  assertTrue:
    - document:1#view@user:anne
    - document:1#view@user:zed
  assertFalse:
    - document:1#view@user:anne
  assertCaveated:
    - document:1#view@user:anne
    - document:1#nope@user:anne
`
	res := runText(t, src)
	want := []struct {
		line int
		msg  string
	}{
		{17, "cannot write to a permission"},
		{18, "repeats the one at line 15"},
		{19, "subject type not allowed"},
		{23, "assertTrue document:1#view@user:zed: got no permission"},
		{25, "assertFalse document:1#view@user:anne: got permission"},
		{27, "assertCaveated document:1#view@user:anne: got permission"},
		{28, "unknown relation"},
	}
	if len(res.Failures) != len(want) {
		for _, f := range res.Failures {
			t.Log(f)
		}
		t.Fatalf("got %d failures, want %d", len(res.Failures), len(want))
	}
	for i, w := range want {
		f := res.Failures[i]
		if f.Pos.Line != w.line || !strings.Contains(f.Msg, w.msg) {
			t.Errorf("failure %d = %s, want line %d containing %q", i, f, w.line, w.msg)
		}
	}
}

func TestRunSchemaErrorsMapToFileLines(t *testing.T) {
	res := runText(t, "# comment\nschema: |-\n  definition user {}\n  definition doc {\n    relation viewer: usr\n  }\n")
	if len(res.Failures) != 1 {
		t.Fatalf("failures: %v", res.Failures)
	}
	if f := res.Failures[0]; f.Pos.Line != 5 || !strings.Contains(f.Msg, "usr") {
		t.Errorf("failure = %s, want line 5 naming usr", f)
	}
}

// The showcase validation file must pass in full, on both backends, and
// with the nested-group index off.
func TestEnterpriseExample(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "enterprise", "enterprise.yaml")
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	stores := map[string]func() (store.Store, error){
		"memstore": nil,
		"pebblestore": func() (store.Store, error) {
			return pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
		},
	}
	for _, name := range []string{"memstore", "pebblestore", "memstore+no-nested-index"} {
		t.Run(name, func(t *testing.T) {
			res, err := Run(t.Context(), f, Options{NewStore: stores[name], NoNestedIndex: name == "memstore+no-nested-index"})
			if err != nil {
				t.Fatal(err)
			}
			for _, fl := range res.Failures {
				t.Error(fl)
			}
			if res.Assertions < 60 {
				t.Errorf("only %d assertions ran", res.Assertions)
			}
		})
	}
}

func TestRunValidationBlock(t *testing.T) {
	src := runSchema + `relationships: |-
  document:1#viewer@user:anne
  document:1#viewer@group:eng#member
  group:eng#member@user:bob
  group:eng#member@user:anne
  document:2#viewer@user:*
  document:2#banned@user:eve
  document:3#viewer@user:carl[on_weekday]
validation:
  document:1#view:
    - "[group:eng#member] is <document:1#viewer>"
    - "[user:anne] is <document:1#viewer>/<group:eng#member>"
    - "[user:bob] is <group:eng#member>"
  document:2#view:
    - "[user:* - {user:eve}] is <document:2#viewer>"
  document:3#view:
    - "[user:carl[...]] is <document:3#viewer>"
  document:4#view: []
`
	if res := runText(t, src); !res.OK() {
		for _, f := range res.Failures {
			t.Error(f)
		}
	}

	wrong := runSchema + `relationships: |-
  document:1#viewer@user:anne
  document:1#viewer@user:bob
  document:2#viewer@user:*
  document:2#banned@user:eve
  document:3#viewer@user:carl[on_weekday]
validation:
  document:1#view:
    - "[user:anne] is <document:1#banned>"
    - "[user:zed] is <document:1#viewer>"
  document:2#view:
    - "[user:*] is <document:2#viewer>"
  document:3#view:
    - "[user:carl] is <document:3#viewer>"
`
	res := runText(t, wrong)
	want := []struct {
		line int
		msg  string
	}{
		{21, "document:1#view: subject [user:bob] is <document:1#viewer> but is not listed"},
		{22, "subject [user:anne] is <document:1#viewer>, expected <document:1#banned>"},
		{23, "expected subject [user:zed] was not found"},
		{25, "subject [user:*] has exceptions {user:eve}, expected {}"},
		{27, "subject [user:carl] is caveated, expected not caveated"},
	}
	if len(res.Failures) != len(want) {
		for _, f := range res.Failures {
			t.Log(f)
		}
		t.Fatalf("got %d failures, want %d", len(res.Failures), len(want))
	}
	for i, w := range want {
		if f := res.Failures[i]; f.Pos.Line != w.line || !strings.Contains(f.Msg, w.msg) {
			t.Errorf("failure %d = %s, want line %d containing %q", i, f, w.line, w.msg)
		}
	}
}

func TestRunExplainsWrongAnswers(t *testing.T) {
	res := runText(t, runSchema+`relationships: |-
  document:1#viewer@group:eng#member
  group:eng#member@user:anne
assertions:
  assertFalse:
    - document:1#view@user:anne
`)
	if len(res.Failures) != 1 {
		t.Fatalf("failures: %v", res.Failures)
	}
	want := "path: document:1#view (exclusion) -> document:1#viewer -> group:eng#member -> user:anne"
	if got := res.Failures[0].Explain; got != want {
		t.Errorf("explanation = %q, want %q", got, want)
	}
}

// A caveat on a subject set, or on the relationship an arrow follows,
// makes every subject reached through it conditional.
func TestRunCaveatedEdges(t *testing.T) {
	res := runText(t, `schema: |-
  caveat ok(flag bool) {
    flag
  }
  definition user {}
  definition group {
    relation member: user
  }
  definition folder {
    relation viewer: user
  }
  definition document {
    relation viewer: group#member | group#member with ok
    relation parent: folder | folder with ok
    permission view = viewer + parent->viewer
  }
relationships: |-
  document:1#viewer@group:eng#member[ok]
  group:eng#member@user:anne
  document:1#parent@folder:f[ok]
  folder:f#viewer@user:bob
  document:2#viewer@group:eng#member[ok]
  document:2#viewer@group:ops#member
  group:ops#member@user:anne
validation:
  document:1#view:
    - "[group:eng#member[...]] is <document:1#viewer>"
    - "[user:anne[...]] is <group:eng#member>"
    - "[user:bob[...]] is <folder:f#viewer>"
  document:2#view:
    - "[group:eng#member[...]] is <document:2#viewer>"
    - "[group:ops#member] is <document:2#viewer>"
    - "[user:anne] is <group:eng#member>/<group:ops#member>"
assertions:
  assertCaveated:
    - document:1#view@user:anne
    - document:1#view@user:bob
  assertTrue:
    - document:2#view@user:anne
    - 'document:1#view@user:bob with {"flag": true}'
`)
	for _, f := range res.Failures {
		t.Error(f)
	}
}

// A caveated relationship is listed as caveated even when its stored
// context already decides the caveat: validation does not evaluate caveats.
func TestRunCaveatedSubjectsAreNotEvaluated(t *testing.T) {
	res := runText(t, runSchema+`relationships: |-
  document:1#viewer@user:anne[on_weekday:{"day":"sun"}]
  document:1#viewer@user:bob[on_weekday:{"day":"mon"}]
  document:1#viewer@user:carl
validation:
  document:1#view:
    - "[user:anne[...]] is <document:1#viewer>"
    - "[user:bob[...]] is <document:1#viewer>"
    - "[user:carl] is <document:1#viewer>"
assertions:
  assertFalse:
    - document:1#view@user:anne
  assertTrue:
    - document:1#view@user:bob
`)
	for _, f := range res.Failures {
		t.Error(f)
	}
}

// The files in testdata pin down semantics (wildcards, cycles, caveats,
// expiration); each must pass on both backends, with and without a cache,
// and with the nested-group index off.
func TestTestdataFiles(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata files: %v", err)
	}
	configs := []struct {
		name string
		opts func(t *testing.T) Options
	}{
		{"memstore", func(*testing.T) Options { return Options{} }},
		{"memstore+cache", func(*testing.T) Options { return Options{CacheBytes: 1 << 20} }},
		{"memstore+no-nested-index", func(*testing.T) Options { return Options{NoNestedIndex: true} }},
		{"pebblestore+cache", func(t *testing.T) Options {
			return Options{CacheBytes: 1 << 20, NewStore: func() (store.Store, error) {
				return pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
			}}
		}},
	}
	for _, path := range paths {
		f, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range configs {
			t.Run(filepath.Base(path)+"/"+c.name, func(t *testing.T) {
				res, err := Run(t.Context(), f, c.opts(t))
				if err != nil {
					t.Fatal(err)
				}
				for _, fl := range res.Failures {
					t.Error(fl)
				}
			})
		}
	}
}
