package server

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// errorPackages are the packages (relative to the module root) whose
// errors can reach a client: every exported sentinel and typed error in
// them must be mapped by errorRules, listed in internalErrors or, for the
// datastore backends, be one of openErrors. (engine/validation's
// ErrInvalidFile is left out: validation files are read by the command
// line and tests, never by the server.)
var errorPackages = []string{
	"engine", "engine/store", "engine/eval", "engine/token", "engine/tuple", "schema", "api/server",
	"engine/store/memstore", "engine/store/pebblestore", "engine/store/pgstore", "engine/store/backend", "engine/cache",
}

// openErrors are the sentinels that only a backend's Open (or
// backend.Open, which chooses one) returns: the
// server is not running yet, so no request meets them, and api/server
// does not import the backends to name them.
var openErrors = map[string]string{
	"pebblestore.ErrFormatTooNew": "a data directory of a newer format",
	"pebblestore.ErrNotPemba":     "a Pebble directory that is not a Pemba store",
	"pebblestore.ErrLocked":       "a data directory another process holds open",
	"pgstore.ErrNotMigrated":      "a database without (current) Pemba tables",
	"pgstore.ErrSchemaTooNew":     "a database migrated by a newer Pemba",
	"pgstore.ErrNotReplica":       "a read replica of another store",
	"backend.ErrUsage":            "options naming no known datastore, or without its directory or URI",
}

// errorSource is what the source of errorPackages declares.
type errorSource struct {
	// sentinels maps "pkg.ErrX" to the sentinel it is an alias of
	// ("store.ErrRevisionCompacted" for "engine.ErrSnapshotExpired"), or
	// to "" for a sentinel of its own (errors.New and the like).
	sentinels map[string]string
	exported  map[string]bool
	// typed maps "pkg.T" (an exported type with an Error() string
	// method) to the sentinels its Is and Unwrap methods name.
	typed map[string][]string
	// refs maps the names of package-level variables of api/server
	// (errorRules, internalErrors) to the sentinels their values name.
	refs map[string][]string
}

// parseErrorSource reads errorPackages with go/parser: Go cannot list a
// package's variables at run time, so the test reads them from source.
func parseErrorSource(t *testing.T) *errorSource {
	t.Helper()
	src := &errorSource{sentinels: map[string]string{}, exported: map[string]bool{}, typed: map[string][]string{}, refs: map[string][]string{}}
	type fileRefs struct {
		pkg     string
		imports map[string]string
		node    ast.Node
		varName string
		typ     string
	}
	var pending []fileRefs
	for _, dir := range errorPackages {
		fset := token.NewFileSet()
		entries, err := os.ReadDir(filepath.Join("..", "..", dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join("..", "..", dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			pkg := f.Name.Name
			imports := map[string]string{}
			for _, im := range f.Imports {
				p, _ := strconv.Unquote(im.Path.Value)
				n := path.Base(p)
				if im.Name != nil {
					n = im.Name.Name
				}
				imports[n] = p
			}
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.GenDecl:
					if d.Tok != token.VAR {
						continue
					}
					for _, spec := range d.Specs {
						vs := spec.(*ast.ValueSpec)
						for i, id := range vs.Names {
							if i >= len(vs.Values) {
								continue
							}
							if strings.HasPrefix(id.Name, "Err") || strings.HasPrefix(id.Name, "err") && pkg == "server" && isErrorsNew(vs.Values[i]) {
								key := pkg + "." + id.Name
								src.sentinels[key] = aliasOf(pkg, imports, vs.Values[i])
								src.exported[key] = id.IsExported()
							}
							if pkg == "server" {
								pending = append(pending, fileRefs{pkg: pkg, imports: imports, node: vs.Values[i], varName: id.Name})
							}
						}
					}
				case *ast.FuncDecl:
					if d.Recv == nil || len(d.Recv.List) != 1 {
						continue
					}
					typ := recvType(d.Recv.List[0].Type)
					if !ast.IsExported(typ) {
						continue
					}
					switch d.Name.Name {
					case "Error":
						if _, ok := src.typed[pkg+"."+typ]; !ok {
							src.typed[pkg+"."+typ] = nil
						}
					case "Is", "Unwrap":
						pending = append(pending, fileRefs{pkg: pkg, imports: imports, node: d.Body, typ: pkg + "." + typ})
					}
				}
			}
		}
	}
	// Resolve references once every sentinel is known.
	for _, p := range pending {
		var names []string
		ast.Inspect(p.node, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok {
					if ip, ok := p.imports[x.Name]; ok {
						key := path.Base(ip) + "." + n.Sel.Name
						if _, ok := src.sentinels[key]; ok {
							names = append(names, key)
						}
					}
				}
				return false
			case *ast.Ident:
				if _, ok := src.sentinels[p.pkg+"."+n.Name]; ok {
					names = append(names, p.pkg+"."+n.Name)
				}
			}
			return true
		})
		if p.typ != "" {
			src.typed[p.typ] = append(src.typed[p.typ], names...)
		} else {
			src.refs[p.varName] = append(src.refs[p.varName], names...)
		}
	}
	return src
}

// canonical follows aliases to the sentinel value a name stands for.
func (s *errorSource) canonical(key string) string {
	for i := 0; i < 10; i++ {
		next := s.sentinels[key]
		if next == "" {
			return key
		}
		key = next
	}
	return key
}

func isErrorsNew(e ast.Expr) bool {
	c, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	s, ok := c.Fun.(*ast.SelectorExpr)
	return ok && s.Sel.Name == "New"
}

// aliasOf returns the sentinel that the initializer e names ("" when e
// makes a new one).
func aliasOf(pkg string, imports map[string]string, e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return pkg + "." + e.Name
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			if ip, ok := imports[x.Name]; ok {
				return path.Base(ip) + "." + e.Sel.Name
			}
		}
	}
	return ""
}

func recvType(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// TestErrorTableIsComplete: every exported sentinel of the engine's
// packages (read from their source, so a new one cannot be forgotten) is
// mapped by exactly one place, errorRules or internalErrors; every typed
// error matches a sentinel that is; no concept has two sentinels in the
// table.
func TestErrorTableIsComplete(t *testing.T) {
	src := parseErrorSource(t)
	if len(src.refs["errorRules"]) == 0 || len(src.refs["internalErrors"]) == 0 {
		t.Fatalf("found no sentinels in errorRules or internalErrors: %v", src.refs)
	}
	where := map[string]string{} // canonical sentinel -> the list that names it
	for key := range openErrors {
		if _, ok := src.sentinels[key]; !ok {
			t.Errorf("openErrors names %s, which the source does not declare", key)
		}
		where[src.canonical(key)] = "openErrors"
	}
	for _, list := range []string{"errorRules", "internalErrors"} {
		for _, key := range src.refs[list] {
			c := src.canonical(key)
			if prev, ok := where[c]; ok {
				t.Errorf("%s (%s) is named twice (in %s and %s): one concept, one entry", key, c, prev, list)
			}
			where[c] = list
		}
	}
	var keys []string
	for k := range src.sentinels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if !src.exported[key] {
			continue
		}
		if _, ok := where[src.canonical(key)]; !ok {
			t.Errorf("%s is in neither errorRules nor internalErrors: give it a code (or list it as internal, with why)", key)
		}
	}
	for typ, names := range src.typed {
		ok := false
		for _, n := range names {
			if _, mapped := where[src.canonical(n)]; mapped {
				ok = true
			}
		}
		if !ok {
			t.Errorf("typed error %s matches no sentinel of the table (sentinels in its Is/Unwrap: %v): give it an Is method", typ, names)
		}
	}
	// The check must see the aliases, or it would accept a second
	// sentinel for a concept as a new one.
	if got := src.canonical("engine.ErrSnapshotExpired"); got != "store.ErrRevisionCompacted" {
		t.Errorf("engine.ErrSnapshotExpired resolves to %q, want store.ErrRevisionCompacted", got)
	}
	if len(src.typed) < 10 {
		t.Errorf("found only %d typed errors: %v", len(src.typed), src.typed)
	}
}

// TestErrorRulesAreReachable: every target of a rule gets that rule's code
// and reason (no earlier rule shadows it), and every internal error stays
// Internal.
func TestErrorRulesAreReachable(t *testing.T) {
	for _, r := range errorRules {
		for _, target := range r.targets {
			code, reason, ok := classify(fmt.Errorf("context: %w", target))
			if !ok || code != r.code || reason != r.reason {
				t.Errorf("%v maps to %v %s, want %v %s", target, code, reason, r.code, r.reason)
			}
		}
	}
	for _, ie := range internalErrors {
		if code, _, ok := classify(fmt.Errorf("context: %w", ie.err)); ok || code != codes.Internal {
			t.Errorf("%v maps to %v, want Internal (%s)", ie.err, code, ie.why)
		}
		if ie.why == "" {
			t.Errorf("%v is internal without a reason", ie.err)
		}
	}
}

// grpcCodeName matches a gRPC code named in prose or code (not
// DeadlineExceeded, which is also context's).
var grpcCodeName = regexp.MustCompile(`\b(codes\.[A-Z]\w+|InvalidArgument|FailedPrecondition|ResourceExhausted|PermissionDenied|Unauthenticated)\b`)

// TestOnlyTheServerNamesCodes: the engine's packages say what went wrong;
// which code that becomes is written once, in errorRules.
func TestOnlyTheServerNamesCodes(t *testing.T) {
	for _, dir := range errorPackages {
		if dir == "api/server" {
			continue
		}
		files, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(b), "\n") {
				if m := grpcCodeName.FindString(line); m != "" {
					t.Errorf("%s:%d names the gRPC code %s; codes belong in api/server/errors.go", f, i+1, m)
				}
			}
		}
	}
}
