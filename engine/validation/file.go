// Package validation reads and runs validation files: YAML documents that
// hold a schema, relationships, and the answers the schema must give. The
// format is SpiceDB's (zed's), so existing files run unchanged:
//
//	schema: |-                 # or schemaFile: ./schema.zed (relative to the YAML file)
//	  definition user {}
//	  definition document { relation viewer: user  permission view = viewer }
//	relationships: |-
//	  // comments and blank lines are allowed
//	  document:1#viewer@user:anne
//	assertions:
//	  assertTrue:
//	    - document:1#view@user:anne
//	  assertFalse:
//	    - document:1#view@user:bob
//	  assertCaveated:
//	    - 'document:2#view@user:anne with {"ip": "10.0.0.1"}'
//	validation:
//	  document:1#view:
//	    - "[user:anne] is <document:1#viewer>"
//
// Run loads a file into an engine over an in-memory store and reports every
// failure with its file:line and, for a wrong answer, the path that led to it.
//
// # Expected subjects
//
// A validation entry is compared with the subjects of an Expand of the
// resource#permission, as SpiceDB does: every subject a relation lists,
// subject sets (group:eng#member) included, combined with set operations at
// intersections and exclusions; a subject is caveated ("[...]") when every
// way to it passes a caveated relationship, whatever the caveat's stored
// context says (caveats are not evaluated, as in SpiceDB). The "is <...>"
// part is checked too: it must name exactly the relations whose stored
// relationships list the subject. Every uncaveated plain subject found is
// also checked with Check, and compared with what LookupSubjects reports;
// every assertion is also checked with LookupResources. So an engine whose
// query APIs disagree with each other fails validation (unless
// Options.NoCrossChecks is set).
package validation

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// File is a parsed validation file.
type File struct {
	// Path is the file's name as given to Parse or Load.
	Path string
	// Schema is the schema text (inline, or read from SchemaFile by Load).
	Schema string
	// SchemaPos locates the schema text: line 1 of the schema is line
	// SchemaPos.Line of SchemaPos.File.
	SchemaPos Pos
	// SchemaFile is the schemaFile value as written ("" when inline).
	SchemaFile    string
	Relationships []Relationship
	Assertions    []Assertion
	Expected      []Expected
	// Writes is the writes section (a Pemba extension; see writes.go).
	Writes []Write
}

// Pos is a place in a file.
type Pos struct {
	File string
	Line int // from 1; 0 when unknown
	Col  int // from 1; 0 when unknown (only schema files imported by the schema have one)
}

// String renders file:line[:col], or just the file when the line is
// unknown.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col > 0:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Relationship is one line of the relationships block.
type Relationship struct {
	tuple.Relationship
	Pos Pos
}

// AssertionKind is the expected outcome of an assertion.
type AssertionKind uint8

// Assertion kinds, named after their YAML keys.
const (
	AssertTrue AssertionKind = iota + 1
	AssertFalse
	AssertCaveated
)

// String returns the YAML key of the kind.
func (k AssertionKind) String() string {
	switch k {
	case AssertTrue:
		return "assertTrue"
	case AssertFalse:
		return "assertFalse"
	case AssertCaveated:
		return "assertCaveated"
	}
	return "assert?"
}

// Assertion is one check with its expected outcome.
type Assertion struct {
	Kind       AssertionKind
	Text       string
	Pos        Pos
	Resource   tuple.ObjectRef
	Permission string
	Subject    tuple.SubjectRef
	// Context is the caveat context given after "with", or nil.
	Context map[string]any
}

// Expected lists the subjects expected to hold Resource#Permission.
type Expected struct {
	Resource   tuple.ObjectRef
	Permission string
	Pos        Pos
	Subjects   []ExpectedSubject
}

// ExpectedSubject is one line like
// "[user:anne] is <document:1#viewer>/<group:eng#member>".
type ExpectedSubject struct {
	Text    string
	Pos     Pos
	Subject tuple.SubjectRef
	// Caveated is the "[...]" marker: the subject holds conditionally.
	Caveated bool
	// Exceptions are the subjects removed from a wildcard ("- {user:bob}").
	Exceptions []Exception
	// Via lists the relations named by "<...>" that grant the subject.
	Via []ObjectRelation
}

// Exception is a subject excluded from a wildcard.
type Exception struct {
	Subject  tuple.SubjectRef
	Caveated bool
}

// ObjectRelation is resource#relation.
type ObjectRelation struct {
	Object   tuple.ObjectRef
	Relation string
}

// String renders type:id#relation.
func (o ObjectRelation) String() string { return o.Object.String() + "#" + o.Relation }

// Error is one problem in a validation file.
type Error struct {
	Pos Pos
	Msg string
}

// Error renders file:line: message.
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList collects every problem found in a file, sorted by line.
type ErrorList []*Error

// Error renders one error per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidFile) hold for a non-empty list.
func (l ErrorList) Is(target error) bool { return target == ErrInvalidFile && len(l) > 0 }

// Load reads and parses the validation file at path, resolving schemaFile
// relative to it.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("validation: %w", err)
	}
	return LoadData(path, filepath.Dir(path), data)
}

// LoadData is Load for a file already read (standard input, say), named
// path in messages, whose schemaFile and imports are read relative to
// dir.
func LoadData(path, dir string, data []byte) (*File, error) {
	f, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if f.SchemaFile != "" {
		sp := f.SchemaFile
		if !filepath.IsAbs(sp) {
			sp = filepath.Join(dir, sp)
		}
		text, err := os.ReadFile(sp)
		if err != nil {
			return nil, ErrorList{{Pos: f.SchemaPos, Msg: fmt.Sprintf("schemaFile: %v", err)}}
		}
		f.Schema = string(text)
		f.SchemaPos = Pos{File: sp, Line: 1}
		if err := f.resolveImports(filepath.Dir(sp), filepath.Base(sp)); err != nil {
			return nil, err
		}
		return f, nil
	}
	if err := f.resolveImports(dir, filepath.Base(path)); err != nil {
		return nil, err
	}
	return f, nil
}

// resolveImports replaces a schema that imports other files (SpiceDB's
// composable schemas) by the one text they compile to, reading the
// imported files relative to dir, where the schema's root file name lives.
// A schema without imports is left alone, for Run to report its errors. A
// schema whose files do not compile yields their errors, each at its file,
// line and column.
func (f *File) resolveImports(dir, name string) error {
	if !strings.Contains(f.Schema, "import") {
		return nil
	}
	files, err := schema.LoadSource(os.DirFS(dir), name, f.Schema)
	if err == nil && len(files) <= 1 {
		return nil
	}
	var s *schema.Schema
	if err == nil {
		s, err = schema.CheckFiles(files)
	}
	var list schema.ErrorList
	if !errors.As(err, &list) {
		if err != nil {
			return ErrorList{{Pos: f.SchemaPos, Msg: fmt.Sprintf("schema: %v", err)}}
		}
		f.Schema = s.Source
		return nil
	}
	var out ErrorList
	for _, e := range list {
		pos := f.SchemaPos
		msg := e.Msg
		switch {
		case e.Pos.Filename != name:
			pos = Pos{File: filepath.Join(dir, filepath.FromSlash(e.Pos.Filename)), Line: e.Pos.Line, Col: e.Pos.Column}
		case pos.Line != 1 || pos.File == f.Path:
			// Inline schema: the column is relative to the indented block.
			pos.Line += e.Pos.Line - 1
			msg = fmt.Sprintf("schema line %d:%d: %s", e.Pos.Line, e.Pos.Column, e.Msg)
		default:
			pos.Line, pos.Col = e.Pos.Line, e.Pos.Column
		}
		out = append(out, &Error{Pos: pos, Msg: msg})
	}
	return out
}

// Parse parses a validation file. It does not read schemaFile (see Load).
// It reports every problem it finds as an ErrorList.
func Parse(filename string, data []byte) (*File, error) {
	p := &parser{f: &File{Path: filename}}
	p.parse(data)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Pos.Line < p.errs[j].Pos.Line })
		return nil, p.errs
	}
	return p.f, nil
}

type parser struct {
	f    *File
	errs ErrorList
	// lines is the source split into lines, to locate the relationships
	// of folded (>) and quoted blocks, whose text no longer maps 1:1 to
	// file lines.
	lines []string
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{File: p.f.Path, Line: n.Line} }

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: Pos{File: p.f.Path, Line: line}, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) parse(data []byte) {
	p.lines = strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(1, "empty validation file")
			return
		}
		p.errorf(yamlErrorLine(err), "%s", yamlErrorMessage(err))
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(extra.Line, "a validation file holds one YAML document")
	}
	if len(doc.Content) == 0 {
		p.errorf(1, "empty validation file")
		return
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "expected a mapping with keys schema, schemaFile, relationships, assertions, validation")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		if line, dup := seen[key.Value]; dup {
			p.errorf(key.Line, "key %q repeats the one on line %d", key.Value, line)
			continue
		}
		seen[key.Value] = key.Line
		switch key.Value {
		case "schema":
			if s, ok := p.scalar(val, "schema"); ok {
				p.f.Schema = s
				p.f.SchemaPos = Pos{File: p.f.Path, Line: contentLine(val)}
			}
		case "schemaFile":
			if s, ok := p.scalar(val, "schemaFile"); ok {
				p.f.SchemaFile = strings.TrimSpace(s)
				p.f.SchemaPos = p.pos(val)
			}
		case "relationships":
			p.relationships(val)
		case "assertions":
			p.assertions(val)
		case "validation":
			p.validation(val)
		case "writes":
			p.writes(val)
		default:
			p.errorf(key.Line, "unknown key %q (want schema, schemaFile, relationships, assertions, validation or writes)", key.Value)
		}
	}
	if _, a := seen["schema"]; a {
		if line, b := seen["schemaFile"]; b {
			p.errorf(line, "give either schema or schemaFile, not both")
		}
	}
	if _, a := seen["schema"]; !a {
		if _, b := seen["schemaFile"]; !b {
			p.errorf(root.Line, "missing schema (or schemaFile)")
		}
	}
}

// contentLine returns the line of a scalar's first character of content:
// block scalars (| and >) start on the line after their indicator.
func contentLine(n *yaml.Node) int {
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Line + 1
	}
	return n.Line
}

func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n.Line, "%s: expected text", what)
		return "", false
	}
	return n.Value, true
}

func (p *parser) relationships(n *yaml.Node) {
	text, ok := p.scalar(n, "relationships")
	if !ok {
		return
	}
	first := contentLine(n)
	next := n.Line // the source line to search from
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "//") {
			continue
		}
		// A literal block maps text lines to file lines one to one; folded
		// and quoted ones do not, so look for the text in the source.
		lineNo := first + i
		if n.Style&yaml.LiteralStyle == 0 {
			if found := p.find(line, next); found > 0 {
				lineNo, next = found, found+1
			}
		}
		r, err := tuple.Parse(line)
		if err != nil {
			p.errorf(lineNo, "relationship %q: %v", line, err)
			continue
		}
		p.f.Relationships = append(p.f.Relationships, Relationship{Relationship: r, Pos: Pos{File: p.f.Path, Line: lineNo}})
	}
}

func (p *parser) assertions(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "assertions: expected a mapping with keys assertTrue, assertFalse, assertCaveated")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		var kind AssertionKind
		switch key.Value {
		case "assertTrue":
			kind = AssertTrue
		case "assertFalse":
			kind = AssertFalse
		case "assertCaveated":
			kind = AssertCaveated
		default:
			p.errorf(key.Line, "unknown assertion kind %q (want assertTrue, assertFalse or assertCaveated)", key.Value)
			continue
		}
		if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
			continue
		}
		if val.Kind != yaml.SequenceNode {
			p.errorf(val.Line, "%s: expected a list", key.Value)
			continue
		}
		for _, item := range val.Content {
			if item.Kind != yaml.ScalarNode {
				p.errorf(item.Line, "%s: expected a relationship like document:1#view@user:anne", key.Value)
				continue
			}
			a, err := ParseAssertion(item.Value)
			if err != nil {
				p.errorf(item.Line, "%s: %v", key.Value, err)
				continue
			}
			a.Kind, a.Pos = kind, p.pos(item)
			p.f.Assertions = append(p.f.Assertions, a)
		}
	}
}

// find returns the 1-based number of the first source line at or after
// line from that contains text, or 0.
func (p *parser) find(text string, from int) int {
	for i := max(from, 1); i <= len(p.lines); i++ {
		if strings.Contains(p.lines[i-1], text) {
			return i
		}
	}
	return 0
}

// ParseAssertion reads "resource#permission@subject" optionally followed by
// " with {json context}". Kind and Pos are left zero.
func ParseAssertion(s string) (Assertion, error) {
	a := Assertion{Text: s}
	s = strings.TrimSpace(s)
	rel, rest := s, ""
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		rel, rest = s[:i], strings.TrimSpace(s[i:])
	}
	if rest != "" {
		ctx, ok := strings.CutPrefix(rest, "with")
		if !ok {
			return a, fmt.Errorf("unexpected %q after the relationship (want \"with {json}\")", rest)
		}
		m, err := tuple.ParseContext(strings.TrimSpace(ctx))
		if err != nil {
			return a, err
		}
		a.Context = m
	}
	if strings.ContainsRune(rel, '[') {
		return a, fmt.Errorf("%q: an assertion takes its caveat context after \"with\", not in brackets", rel)
	}
	r, err := tuple.Parse(rel)
	if err != nil {
		return a, err
	}
	a.Resource, a.Permission, a.Subject = r.Resource, r.Relation, r.Subject
	return a, nil
}

func (p *parser) validation(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "validation: expected a mapping from resource#permission to expected subjects")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		onr, err := parseONR(key.Value)
		if err != nil {
			p.errorf(key.Line, "validation key: %v", err)
			continue
		}
		exp := Expected{Resource: onr.Object, Permission: onr.Relation, Pos: p.pos(key)}
		switch {
		case val.Kind == yaml.ScalarNode && (val.Tag == "!!null" || val.Value == ""):
			// No subjects expected.
		case val.Kind != yaml.SequenceNode:
			p.errorf(val.Line, "validation %s: expected a list of \"[subject] is <resource#relation>\"", key.Value)
			continue
		default:
			for _, item := range val.Content {
				if item.Kind != yaml.ScalarNode {
					p.errorf(item.Line, "validation %s: expected a string", key.Value)
					continue
				}
				es, err := ParseExpectedSubject(item.Value)
				if err != nil {
					p.errorf(item.Line, "validation %s: %v", key.Value, err)
					continue
				}
				es.Pos = p.pos(item)
				exp.Subjects = append(exp.Subjects, es)
			}
		}
		p.f.Expected = append(p.f.Expected, exp)
	}
}

func parseONR(s string) (ObjectRelation, error) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexByte(s, '#')
	if i < 0 {
		return ObjectRelation{}, fmt.Errorf("%q: expected type:id#relation", s)
	}
	obj, err := tuple.ParseObject(s[:i])
	if err != nil {
		return ObjectRelation{}, err
	}
	if err := tuple.ValidateRelation("relation", s[i+1:]); err != nil {
		return ObjectRelation{}, err
	}
	return ObjectRelation{Object: obj, Relation: s[i+1:]}, nil
}

// ParseExpectedSubject reads one expected-subject line:
//
//	[user:anne] is <document:1#viewer>
//	[user:anne[...]] is <document:1#viewer>            (caveated)
//	[user:* - {user:bob, user:eve[...]}] is <document:1#viewer>
//	[group:eng#member] is <document:1#viewer>/<folder:a#viewer>
//
// The "is <...>" part is optional.
func ParseExpectedSubject(s string) (ExpectedSubject, error) {
	es := ExpectedSubject{Text: s}
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "[") {
		return es, fmt.Errorf("%q: expected \"[subject] is <resource#relation>\"", s)
	}
	end := matchBracket(t)
	if end < 0 {
		return es, fmt.Errorf("%q: unterminated \"[\"", s)
	}
	inner, rest := strings.TrimSpace(t[1:end]), t[end+1:]
	subj, exc, hasExc := strings.Cut(inner, " - ")
	subj = strings.TrimSpace(subj)
	if c, ok := strings.CutSuffix(subj, "[...]"); ok {
		subj, es.Caveated = c, true
	}
	sub, err := tuple.ParseSubject(subj)
	if err != nil {
		return es, err
	}
	es.Subject = sub
	if hasExc {
		exc = strings.TrimSpace(exc)
		if !strings.HasPrefix(exc, "{") || !strings.HasSuffix(exc, "}") {
			return es, fmt.Errorf("%q: exceptions must be written as - {subject, ...}", s)
		}
		for _, x := range strings.Split(exc[1:len(exc)-1], ",") {
			x = strings.TrimSpace(x)
			var e Exception
			if c, ok := strings.CutSuffix(x, "[...]"); ok {
				x, e.Caveated = c, true
			}
			if e.Subject, err = tuple.ParseSubject(x); err != nil {
				return es, err
			}
			es.Exceptions = append(es.Exceptions, e)
		}
	}
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			return es, fmt.Errorf("%q: unterminated \"<\"", s)
		}
		onr, err := parseONR(rest[i+1 : i+j])
		if err != nil {
			return es, err
		}
		es.Via = append(es.Via, onr)
		rest = rest[i+j+1:]
	}
	return es, nil
}

// matchBracket returns the index of the "]" closing the "[" at s[0], or -1.
func matchBracket(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// yamlErrorLine extracts the line from a yaml.v3 error ("yaml: line 3: ...").
func yamlErrorLine(err error) int {
	var line int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i+5:], "%d", &line)
	}
	return line
}

func yamlErrorMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
		msg = msg[i+2:]
	}
	return "invalid YAML: " + msg
}
