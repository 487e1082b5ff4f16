// Package pemba_test holds repository-wide checks that keep the layout
// honest: which packages may import which.
package pemba_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/pemba-authz/pemba"

// rule forbids packages under dir (module-relative) from importing paths
// with the given prefixes, except for packages listed in allow.
type rule struct {
	why    string
	dirs   []string // module-relative directories the rule applies to ("" = all)
	deny   []string // import path prefixes
	except []string // module-relative directories exempt from the rule
	// prodOnly exempts _test.go files: benchmarks may measure the
	// evaluator on a real backend.
	prodOnly bool
}

var rules = []rule{
	{why: "schema imports no other Pemba package", dirs: []string{"schema"}, deny: []string{module + "/"}},
	{why: "the engine never imports the API layer, grpc or protobuf", dirs: []string{"engine"},
		deny: []string{module + "/api", "google.golang.org/grpc", "google.golang.org/protobuf"}},
	{why: "only pebblestore imports Pebble", dirs: []string{""}, deny: []string{"github.com/cockroachdb/pebble"},
		except: []string{"engine/store/pebblestore"}},
	{why: "only pgstore imports pgx", dirs: []string{""}, deny: []string{"github.com/jackc/pgx"},
		except: []string{"engine/store/pgstore"}},
	{why: "the Go client needs only engine/tuple from the engine", dirs: []string{"api/client"},
		deny: []string{module + "/engine/store", module + "/engine/eval", module + "/engine/cache", module + "/schema"}},
	{why: "the evaluator reads through the store interface, not a backend", dirs: []string{"engine/eval", "engine/cache"},
		deny: []string{module + "/engine/store/pebblestore", module + "/engine/store/pgstore"}, prodOnly: true},
	{why: "never depend on a peer engine", dirs: []string{""},
		deny: []string{"github.com/authzed/", "github.com/openfga/", "github.com/ory/keto", "github.com/Permify/"}},
}

func TestImportRules(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		if dir == "." {
			dir = ""
		}
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			for _, r := range rules {
				if r.prodOnly && strings.HasSuffix(path, "_test.go") {
					continue
				}
				// A package may import itself and its own children
				// (external tests, internal packages).
				if own := module + "/" + dir; dir != "" && (p == own || strings.HasPrefix(p, own+"/")) {
					continue
				}
				if r.applies(dir) && r.denies(p) {
					t.Errorf("%s imports %s: %s", path, p, r.why)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (r rule) applies(dir string) bool {
	for _, e := range r.except {
		if dir == e || strings.HasPrefix(dir, e+"/") {
			return false
		}
	}
	for _, d := range r.dirs {
		if d == "" || dir == d || strings.HasPrefix(dir, d+"/") {
			return true
		}
	}
	return false
}

func (r rule) denies(path string) bool {
	for _, p := range r.deny {
		if path == strings.TrimSuffix(p, "/") || strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
