package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// This file resolves "import" declarations: a schema written as several
// files (SpiceDB's composable schemas), compiled into one.

// maxImportedFiles bounds the files one schema may pull in, so that a
// hostile tree of imports cannot exhaust memory.
const maxImportedFiles = 1000

// LoadFiles parses the schema file name of fsys and, transitively, every
// file it imports. An import path is relative to the directory of the file
// that declares it and must stay inside fsys (io/fs paths cannot leave it).
// Each file is read once however often it is imported; an import cycle is
// an error, reported at the import that closes it. The result lists the
// root file first. On error it returns an ErrorList whose errors name the
// file they are in.
func LoadFiles(fsys fs.FS, name string) ([]*File, error) {
	src, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, ErrorList{{Pos: Position{Filename: name}, Msg: fmt.Sprintf("cannot read schema: %v", unwrapPathError(err))}}
	}
	return LoadSource(fsys, name, string(src))
}

// LoadSource is LoadFiles for a root file whose text is src (the inline
// schema of a validation file, say), named name for positions and for
// resolving its imports.
func LoadSource(fsys fs.FS, name, src string) ([]*File, error) {
	l := &loader{fsys: fsys, byName: map[string]*File{}}
	root := l.parse(name, src)
	l.resolve(root, []string{name})
	if len(l.errs) > 0 {
		l.errs.Sort()
		return l.files, l.errs
	}
	return l.files, nil
}

type loader struct {
	fsys   fs.FS
	files  []*File
	byName map[string]*File
	base   int
	errs   ErrorList
}

// parse parses a file at the next free base position and records it.
func (l *loader) parse(name, src string) *File {
	f, err := parseAt(name, src, l.base)
	l.base += len(src) + 2 // disjoint, and End positions stay inside
	l.files = append(l.files, f)
	l.byName[name] = f
	var list ErrorList
	if errors.As(err, &list) {
		l.errs = append(l.errs, list...)
	}
	return f
}

// resolve loads the imports of f, depth first; stack lists the files
// from the root to f, to detect cycles.
func (l *loader) resolve(f *File, stack []string) {
	for _, d := range f.Decls {
		imp, ok := d.(*ImportDecl)
		if !ok || !imp.PathPos.IsValid() {
			continue
		}
		at := f.Position(imp.PathPos)
		target := path.Join(path.Dir(f.Name), imp.Path)
		if imp.Path == "" || strings.HasPrefix(imp.Path, "/") || !fs.ValidPath(target) {
			l.errs.Add(at, fmt.Sprintf("import %s: the path must be relative and stay inside the directory of the root schema file", imp.Lit))
			continue
		}
		if i := indexOf(stack, target); i >= 0 {
			l.errs.Add(at, fmt.Sprintf("import cycle: %s", strings.Join(append(stack[i:], target), " imports ")))
			continue
		}
		if l.byName[target] != nil {
			continue // already loaded through another import (SpiceDB skips it too)
		}
		if len(l.files) >= maxImportedFiles {
			l.errs.Add(at, fmt.Sprintf("import %s: a schema may span at most %d files", imp.Lit, maxImportedFiles))
			return
		}
		src, err := fs.ReadFile(l.fsys, target)
		if err != nil {
			l.errs.Add(at, fmt.Sprintf("import %s: %v", imp.Lit, unwrapPathError(err)))
			continue
		}
		g := l.parse(target, string(src))
		f.imported = append(f.imported, g)
		l.resolve(g, append(stack, target))
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// unwrapPathError drops the operation and path that *fs.PathError adds:
// the message already names the file.
func unwrapPathError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fs.ErrNotExist // the same words on every system and fs.FS
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// declOrder lists files in the order their declarations take in the
// compiled schema, SpiceDB's: each file after the files it imports, in
// import order (a post-order walk from the root, files[0]).
func declOrder(files []*File) []*File {
	var out []*File
	seen := map[*File]bool{}
	var visit func(f *File)
	visit = func(f *File) {
		if seen[f] {
			return
		}
		seen[f] = true
		for _, g := range f.imported {
			visit(g)
		}
		out = append(out, f)
	}
	for _, f := range files {
		visit(f)
	}
	return out
}

// CheckFiles checks the files LoadFiles returned, as one schema: the
// declarations of every file, imported ones first. Errors name the file
// they are in. The compiled schema's Source is Flatten(files), one text
// that compiles on its own to the same schema (what WriteSchema needs), or
// the root's text unchanged when it imports nothing.
func CheckFiles(files []*File) (*Schema, error) {
	if len(files) == 0 {
		return nil, errors.New("schema: no files")
	}
	source := files[0].src
	if len(files) > 1 || hasImports(files[0]) {
		source = Flatten(files)
	}
	return check(files, source, true)
}

func hasImports(f *File) bool {
	for _, d := range f.Decls {
		if _, ok := d.(*ImportDecl); ok {
			return true
		}
	}
	return false
}

// CompileFile compiles the schema file at path of the operating system's
// file system, with the files it imports, which must lie in path's
// directory or below it. Errors name files as path does (dir/sub/a.zed).
func CompileFile(path string) (*Schema, error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	s, err := CompileFiles(os.DirFS(dir), name)
	var list ErrorList
	if errors.As(err, &list) && dir != "." {
		for _, e := range list {
			if e.Pos.Filename != "" {
				e.Pos.Filename = filepath.Join(dir, filepath.FromSlash(e.Pos.Filename))
			}
		}
	}
	return s, err
}

// CompileFiles is LoadFiles followed by CheckFiles.
func CompileFiles(fsys fs.FS, name string) (*Schema, error) {
	files, err := LoadFiles(fsys, name)
	if err != nil {
		return nil, err
	}
	return CheckFiles(files)
}

// Flatten renders files (as LoadFiles returns them) as one schema text in
// canonical form: the "use" directives of every file but "use import",
// once each, then each file's declarations without its imports and "use"
// directives, imported files first. Comments are kept. Partials stay
// partials: Compile resolves them within one text.
func Flatten(files []*File) string {
	uses := map[string]bool{}
	var body strings.Builder
	for _, file := range declOrder(files) {
		text := Format(file)
		f, err := Parse(file.Name, text)
		if err != nil {
			// Format output of a file that parsed always parses; keep the
			// text rather than lose declarations if it ever does not.
			body.WriteString(text)
			continue
		}
		var cuts [][2]int
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *UseDecl:
				uses[d.Feature.Name] = true
			case *ImportDecl:
			default:
				continue
			}
			from, to := int(d.Pos())-1, int(d.End())-1
			for to < len(text) && text[to] != '\n' {
				to++ // a trailing comment goes with the directive
			}
			if to < len(text) {
				to++
			}
			cuts = append(cuts, [2]int{from, to})
		}
		last := 0
		for _, c := range cuts {
			body.WriteString(text[last:c[0]])
			last = c[1]
		}
		body.WriteString(text[last:])
	}
	delete(uses, "import")
	features := make([]string, 0, len(uses))
	for u := range uses {
		features = append(features, u)
	}
	sort.Strings(features)
	var b strings.Builder
	for _, u := range features {
		b.WriteString("use " + u + "\n")
	}
	rest := strings.TrimLeft(body.String(), "\n")
	if len(features) > 0 && rest != "" {
		b.WriteByte('\n')
	}
	b.WriteString(rest)
	if out, err := FormatSource("flattened.zed", b.String()); err == nil {
		return out // blank lines left by the cuts normalised
	}
	return b.String()
}
