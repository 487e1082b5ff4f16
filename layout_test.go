// Package pemba_test holds repository-wide checks that keep the layout
// honest: which packages may import which (an allow-list per layer, test
// files included), a doc comment on every package, and no init functions.
//
// The layers, bottom up (docs/architecture.md draws them):
//
//	schema/names, schema                 names and the schema language
//	engine/tuple, engine/token, engine/cache
//	engine/store, its backends, backend   storage; only pebblestore imports
//	                                      Pebble, only pgstore imports pgx
//	engine/eval                          evaluation over a store.Reader
//	engine                               THE DOOR: everything above enters here
//	engine/validation, api/..., bench, cmd/...
//
// Above the engine, production code imports only engine, engine/tuple,
// schema (and schema/names), generated code and its own layer. Test files
// may reach below the door (an in-memory or PostgreSQL store for a fixture,
// a typed store error or a forged token to test the mapping at the edge),
// but not sideways: api/client's tests, like api/client, know nothing of
// the engine but engine/tuple. Third-party imports are allow-listed for
// the layers below the door; above it any module may be used except the
// storage engines (which belong to their backend) and peer authorization
// engines (never a dependency).
package pemba_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/pemba-authz/pemba"

// Import patterns. A pattern is a module-relative package path ("engine"),
// a subtree ("engine/store/..." is engine/store and every package below
// it), a third-party path or subtree (its first element has a dot), or
// one of the words below.
const (
	// generated matches a Pemba package whose code is generated (every
	// file but doc.go carries the "Code generated ... DO NOT EDIT." line).
	generated = "<generated>"
	// anyModule matches every third-party import not denied below.
	anyModule = "<any module>"
)

// door is what the packages above the engine may import of Pemba.
var door = []string{"engine", "engine/tuple", "schema", "schema/names", generated}

// deniedModules are not matched by anyModule: the storage engines belong
// to their backend (whose layer names them), and Pemba never depends on a
// peer authorization engine. (SpiceDB's published API definitions and
// client, authzed-go with its grpcutil, are api/authzed's wire format, not
// an engine: only github.com/authzed/spicedb is denied.)
var deniedModules = []string{
	"github.com/cockroachdb/pebble/...", "github.com/jackc/pgx/...",
	"github.com/authzed/spicedb/...", "github.com/openfga/...", "github.com/ory/keto/...", "github.com/Permify/...",
}

// layer is the allow-list of the packages matching pkgs: what their
// production code (allow) and, in addition, their test files (tests) may
// import. The standard library is always allowed, and so is a package's
// own external test package importing it. The first layer that matches a
// package applies; every package must match one.
type layer struct {
	pkgs  []string
	why   string
	allow []string
	tests []string
}

// otelAPI is the OpenTelemetry trace API, which the engine and evaluator
// record spans with; the SDK and exporters (otelSDK) are the command's
// business, and tests'.
var otelAPI = []string{"go.opentelemetry.io/otel/trace", "go.opentelemetry.io/otel/attribute", "go.opentelemetry.io/otel/codes"}

const otelSDK = "go.opentelemetry.io/otel/sdk/..."

var layers = []layer{
	{pkgs: []string{"."}, why: "the module root holds only this test"},
	{pkgs: []string{"schema/names"}, why: "names are the leaf every layer shares"},
	{pkgs: []string{"schema"}, why: "the schema language stands alone (cel-go evaluates caveats)",
		allow: []string{"schema/names", "cel.dev/cel-go/..."}},
	{pkgs: []string{"engine/tuple"}, why: "relationships are plain values over names",
		allow: []string{"schema/names"}},
	{pkgs: []string{"engine/token", "engine/cache"}, why: "tokens and the cache are standard library only"},
	{pkgs: []string{"engine/store/pebblestore"}, why: "the only importer of Pebble",
		allow: []string{"engine/store", "engine/store/internal/...", "engine/tuple",
			"github.com/cockroachdb/pebble/v2/...", "github.com/prometheus/client_golang/prometheus"},
		tests: []string{"engine/store/storetest"}},
	{pkgs: []string{"engine/store/pgstore"}, why: "the only importer of pgx",
		allow: []string{"engine/store", "engine/store/internal/...", "engine/tuple", "github.com/jackc/pgx/v5/...",
			"github.com/prometheus/client_golang/prometheus"},
		tests: []string{"engine/store/storetest", "engine/store/pgstore/pgtest"}},
	{pkgs: []string{"engine/store/pgstore/pgtest"}, why: "throwaway PostgreSQL databases for tests",
		allow: []string{"github.com/jackc/pgx/v5/..."}},
	{pkgs: []string{"engine/store/backend"}, why: "the one switch over the backends (reached through engine.OpenStore)",
		allow: []string{"engine/store", "engine/store/memstore", "engine/store/pebblestore", "engine/store/pgstore"},
		tests: []string{"engine/store/storetest"}},
	{pkgs: []string{"engine/store/..."}, why: "the storage interface and its plain backends know only relationships",
		allow: []string{"engine/store", "engine/store/internal/...", "engine/tuple"},
		tests: []string{"engine/store/storetest", "engine/store/memstore"}},
	{pkgs: []string{"engine/eval"}, why: "the evaluator reads through the store interface, never a backend",
		allow: append([]string{"engine/cache", "engine/store", "engine/tuple", "schema"}, otelAPI...),
		tests: []string{"engine/store/memstore", "engine/store/pebblestore", otelSDK}},
	{pkgs: []string{"engine"}, why: "the door: it ties store, schema and evaluator together",
		allow: append([]string{"engine/cache", "engine/eval", "engine/store", "engine/store/backend", "engine/token", "engine/tuple",
			"schema", "golang.org/x/sync/..."}, otelAPI...),
		// The history checker (history_test.go) crashes the store under
		// the engine on Pebble's crash-simulating filesystem and checks
		// the histories with porcupine.
		tests: []string{"engine/...", "examples/...", otelSDK, "github.com/cockroachdb/pebble/v2/vfs", "github.com/anishathalye/porcupine"}},
	{pkgs: []string{"engine/validation"}, why: "validation files run through the door, like any client",
		allow: append(slices.Clone(door), "gopkg.in/yaml.v3"),
		tests: []string{"engine/..."}},
	{pkgs: []string{"api/pembav1"}, why: "generated code needs only its runtime",
		allow: []string{"google.golang.org/grpc/...", "google.golang.org/protobuf/..."}},
	{pkgs: []string{"api/internal/..."}, why: "conversions between generated messages and tuples",
		allow: []string{generated, "engine/tuple", "google.golang.org/protobuf/..."}},
	{pkgs: []string{"api/client"}, why: "the Go client needs only engine/tuple of Pemba, tests included",
		allow: []string{generated, "api/internal/...", "engine/tuple",
			"google.golang.org/grpc/...", "google.golang.org/protobuf/...", "google.golang.org/genproto/..."}},
	{pkgs: []string{"api/server"}, why: "handlers: validate -> convert -> engine -> convert",
		allow: append(slices.Clone(door), "api/internal/...", anyModule),
		tests: []string{"engine/...", "api/...", "examples/..."}},
	{pkgs: []string{"api/..."}, why: "other APIs and the cluster router enter through the door too",
		allow: append(slices.Clone(door), "engine/validation", "api/internal/...", "api/client", "api/server", "examples/...", anyModule),
		tests: []string{"engine/...", "api/...", "examples/...", "internal/..."}},
	{pkgs: []string{"internal/..."}, why: "utilities of the commands and their tests (atomic files, progress, a browser); no Pemba imports",
		allow: []string{"github.com/schollz/progressbar/v3", "golang.org/x/term", "github.com/chromedp/..."}},
	{pkgs: []string{"bench/histogram"}, why: "a histogram is standard library only"},
	{pkgs: []string{"bench/workload"}, why: "workloads are relationships and requests, not engine calls",
		allow: []string{"engine/tuple", "examples/..."},
		tests: []string{"engine/...", "schema"}},
	{pkgs: []string{"bench"}, why: "the load runner drives the engine in process or over the APIs",
		allow: append(slices.Clone(door), "api/...", "bench/...", "examples/...", "internal/...", anyModule),
		tests: []string{"engine/...", "api/..."}},
	{pkgs: []string{"cmd/..."}, why: "commands are wiring: flags, then the door and the APIs",
		allow: append(slices.Clone(door), "engine/validation", "api/...", "bench/...", "cmd/...", "examples/...", "internal/...", anyModule),
		tests: []string{"engine/...", "api/...", "bench/..."}},
	{pkgs: []string{"examples/..."}, why: "examples are data"},
}

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath, Dir, Doc               string
	GoFiles, TestGoFiles, XTestGoFiles []string
	Imports, TestImports, XTestImports []string
	rel                                string   // module-relative path ("." for the root)
	generated                          bool     // see the pattern generated
	initFuncs                          []string // positions of func init outside generated files
}

var listed struct {
	once sync.Once
	pkgs []*pkg
	err  error
}

// listPackages runs `go list` once (for all the tests of this file) over
// the module and parses every Go file it names.
func listPackages(t *testing.T) []*pkg {
	t.Helper()
	listed.once.Do(func() { listed.pkgs, listed.err = loadPackages() })
	if listed.err != nil {
		t.Fatal(listed.err)
	}
	return listed.pkgs
}

func loadPackages() ([]*pkg, error) {
	// go test caches a result by the files the test opened; go list's
	// reads are not among them. Walking the tree opens every directory,
	// so a new file or package (and parsing below, every edited file)
	// invalidates the cached result.
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Dir,Doc,GoFiles,TestGoFiles,XTestGoFiles,Imports,TestImports,XTestImports", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.Bytes())
	}
	var pkgs []*pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		p.rel = rel(p.ImportPath)
		fset := token.NewFileSet()
		p.generated = len(p.GoFiles) > 0
		for _, name := range slices.Concat(p.GoFiles, p.TestGoFiles, p.XTestGoFiles) {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				return nil, err
			}
			gen := ast.IsGenerated(f)
			if slices.Contains(p.GoFiles, name) && !gen && name != "doc.go" {
				p.generated = false
			}
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "init" && !gen && !strings.HasSuffix(name, ".pb.go") {
					p.initFuncs = append(p.initFuncs, fmt.Sprintf("%s:%d", filepath.Join(p.rel, name), fset.Position(fd.Pos()).Line))
				}
			}
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		return nil, fmt.Errorf("go list found only %d packages", len(pkgs))
	}
	return pkgs, nil
}

// rel returns the module-relative path of a Pemba import path, or "" for
// any other.
func rel(path string) string {
	switch {
	case path == module:
		return "."
	case strings.HasPrefix(path, module+"/"):
		return strings.TrimPrefix(path, module+"/")
	}
	return ""
}

// match reports whether a package path (module-relative for Pemba,
// full for third-party) matches pattern.
func match(pattern, path string) bool {
	if sub, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == sub || strings.HasPrefix(path, sub+"/")
	}
	return path == pattern
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// allowed says whether an import is within the allow-list; generatedPkgs
// are the module-relative paths of generated packages.
func allowed(allow []string, imp string, generatedPkgs map[string]bool) bool {
	if isStd(imp) {
		return true
	}
	if r := rel(imp); r != "" {
		return matchAny(allow, r) || generatedPkgs[r] && slices.Contains(allow, generated)
	}
	return matchAny(allow, imp) || slices.Contains(allow, anyModule) && !matchAny(deniedModules, imp)
}

func layerOf(rel string) (layer, bool) {
	for _, l := range layers {
		if matchAny(l.pkgs, rel) {
			return l, true
		}
	}
	return layer{}, false
}

// TestImportRules: every import of every package, test files included, is
// on its layer's allow-list.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	generatedPkgs := map[string]bool{}
	for _, p := range pkgs {
		if p.generated {
			generatedPkgs[p.rel] = true
		}
	}
	if !generatedPkgs["api/pembav1"] {
		t.Errorf("api/pembav1 is not recognised as generated code")
	}
	for _, p := range pkgs {
		l, ok := layerOf(p.rel)
		if !ok {
			t.Errorf("%s matches no layer: add it to layout_test.go's layers (and docs/architecture.md)", p.rel)
			continue
		}
		for _, imp := range p.Imports {
			if !allowed(l.allow, imp, generatedPkgs) {
				t.Errorf("%s imports %s: %s", p.rel, imp, l.why)
			}
		}
		testAllow := slices.Concat(l.allow, l.tests)
		for _, imp := range p.TestImports {
			if !allowed(testAllow, imp, generatedPkgs) {
				t.Errorf("%s (test) imports %s: %s", p.rel, imp, l.why)
			}
		}
		for _, imp := range p.XTestImports {
			if imp != p.ImportPath && !allowed(testAllow, imp, generatedPkgs) {
				t.Errorf("%s (external test) imports %s: %s", p.rel, imp, l.why)
			}
		}
	}
}

// TestPackageDocs: every package with non-test code has a package comment.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(p.GoFiles) > 0 && p.Doc == "" {
			t.Errorf("%s has no package doc comment", p.rel)
		}
	}
}

// TestNoInit: package state is built explicitly (a backend is chosen by a
// switch, not registered by an init); only generated code has init
// functions.
func TestNoInit(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, at := range p.initFuncs {
			t.Errorf("%s: func init outside generated code", at)
		}
	}
}
