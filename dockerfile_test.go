package pemba_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerInstruction is one instruction of a Dockerfile: its keyword in
// upper case, its arguments with line continuations joined, and its line.
type dockerInstruction struct {
	cmd  string
	args string
	line int
}

// dockerStage is one FROM and the instructions under it.
type dockerStage struct {
	image, name string
	body        []dockerInstruction
}

// parseDockerfile splits a Dockerfile into stages. It knows only what the
// rules below need: comments, continuations, FROM ... AS name.
func parseDockerfile(t *testing.T, text string) []dockerStage {
	t.Helper()
	var stages []dockerStage
	var pending strings.Builder
	start := 0
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if pending.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if pending.Len() == 0 {
			start = i + 1
		}
		if strings.HasPrefix(line, "#") { // a comment inside a continuation
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(line)
		cmd, args, _ := strings.Cut(pending.String(), " ")
		pending.Reset()
		in := dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := dockerStage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	return stages
}

// TestDockerfileRules checks the Dockerfile without a container builder
// (CI has none; .ci/run builds the image where docker works): pinned base
// images, a builder on go.mod's Go version, a static version-stamped build
// of cmd/pemba, a non-root final stage, and an entry point that is the
// binary copied there.
func TestDockerfileRules(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, string(data))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a builder and a final stage", len(stages))
	}

	pinned := regexp.MustCompile(`^[^:@]+(:[^:@]*\d[^:@]*)?(@sha256:[0-9a-f]{64})?$`)
	for _, st := range stages {
		if st.image == "scratch" {
			continue
		}
		tag := ""
		if _, after, ok := strings.Cut(st.image, ":"); ok {
			tag = after
		}
		if !pinned.MatchString(st.image) || (tag == "" && !strings.Contains(st.image, "@sha256:")) || strings.HasPrefix(tag, "latest") {
			t.Errorf("base image %q is not pinned to a version (a tag with its version number, or a digest)", st.image)
		}
	}

	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goLine == nil {
		t.Fatal("go.mod has no go directive")
	}
	goVersion := string(goLine[1])
	build := stages[0]
	if want := "golang:" + goVersion; build.image != want && !strings.HasPrefix(build.image, want+"-") {
		t.Errorf("builder image %q does not run go.mod's Go %s", build.image, goVersion)
	}
	var goBuild string
	for _, in := range build.body {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/pemba", "-o /out/pemba"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("the builder's go build (%q) lacks %q", goBuild, want)
		}
	}
	if !hasStringVar(t, "cmd/pemba", "version") {
		t.Error("-X main.version= stamps nothing: package main of cmd/pemba has no string variable version")
	}

	final := stages[len(stages)-1]
	var user string
	var copied []string
	var entry string
	for _, in := range final.body {
		switch in.cmd {
		case "USER":
			user = in.args
		case "COPY":
			f := strings.Fields(in.args)
			copied = append(copied, f[len(f)-1])
			if slices.Contains(f, "--from="+build.name) && f[len(f)-2] == "/out/pemba" {
				entry = f[len(f)-1]
			}
		case "ENTRYPOINT":
			if !strings.Contains(in.args, `"`+entry+`"`) || entry == "" {
				t.Errorf("ENTRYPOINT %s is not the binary copied from the builder (%q)", in.args, entry)
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("the final stage runs as %q; want an unprivileged user", user)
	}
	if entry == "" {
		t.Errorf("the final stage copies no /out/pemba from the builder (copies %q)", copied)
	}
}

// hasStringVar reports whether the Go package in dir declares a package
// level variable name without a type other than string.
func hasStringVar(t *testing.T, dir, name string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for _, n := range vs.Names {
					if n.Name != name {
						continue
					}
					if vs.Type == nil {
						return len(vs.Values) == 1 && isStringLit(vs.Values[0])
					}
					id, ok := vs.Type.(*ast.Ident)
					return ok && id.Name == "string"
				}
			}
		}
	}
	return false
}

func isStringLit(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.STRING
}
