package schema

import (
	"math"
	"strings"
)

// FormatSource parses src and returns it in canonical form. Its error is
// the parser's ErrorList; formatting does not check names.
func FormatSource(filename, src string) (string, error) {
	f, err := Parse(filename, src)
	if err != nil {
		return "", err
	}
	return Format(f), nil
}

// Format prints a syntactically valid file in canonical form:
//
//   - one declaration per block, a blank line between top-level blocks;
//   - members indented with one tab, one per line, blank lines between
//     members kept (at most one), semicolons dropped;
//   - operators spaced ("a + b", "parent->view", "parent.any(view)"), and
//     parentheses kept as written;
//   - type lists joined with " | ";
//   - a caveat's expression on its own lines, trimmed, otherwise verbatim.
//
// Comments are kept: those above a declaration or member stay above it;
// those inside one move to the end of its line (inside a caveat header,
// above the caveat). Format is idempotent, and the result compiles to the
// same Schema as the input.
func Format(f *File) string {
	p := &printer{f: f}
	p.b.Grow(len(f.src) + len(f.src)/8)
	for _, g := range f.Comments {
		p.cs = append(p.cs, g.List...)
	}
	p.file()
	return p.b.String()
}

type printer struct {
	f  *File
	b  strings.Builder
	cs []*Comment // every comment, in order
	ci int        // next comment to print

	lastLine    int  // source line where the last printed item ended; 0 at a block start
	lastWasDecl bool // the last top-level item was a declaration
}

const endOfFile = Pos(math.MaxInt)

func (p *printer) line(pos Pos) int { return p.f.lines.line(pos) }

// standalone prints the comments before limit on lines of their own,
// keeping one blank line where the source had one or more.
func (p *printer) standalone(limit Pos, indent string) {
	for p.ci < len(p.cs) && p.cs[p.ci].Pos() < limit {
		c := p.cs[p.ci]
		l := p.line(c.Pos())
		if p.lastLine > 0 && (p.lastWasDecl || l > p.lastLine+1) {
			p.b.WriteByte('\n')
		}
		p.b.WriteString(indent)
		p.b.WriteString(c.Text)
		p.b.WriteByte('\n')
		p.lastLine = p.line(c.End() - 1)
		p.lastWasDecl = false
		p.ci++
	}
}

// trailing appends to the current line the comments before limit that lie
// inside a node (before spanEnd) or start on its last line, endLine. Block
// comments go first: a // comment runs to the end of the line, so it must
// come last.
func (p *printer) trailing(limit, spanEnd Pos, endLine int) int {
	var lines []*Comment
	for p.ci < len(p.cs) {
		c := p.cs[p.ci]
		if c.Pos() >= limit || (c.Pos() >= spanEnd && p.line(c.Pos()) != endLine) {
			break
		}
		p.ci++
		if strings.HasPrefix(c.Text, "//") {
			lines = append(lines, c)
			continue
		}
		p.b.WriteByte(' ')
		p.b.WriteString(c.Text)
		if l := p.line(c.End() - 1); l > endLine {
			endLine = l
		}
	}
	for _, c := range lines {
		p.b.WriteByte(' ')
		p.b.WriteString(c.Text)
	}
	return endLine
}

// blankBefore writes a blank line before an item starting at pos when
// needed.
func (p *printer) blankBefore(pos Pos) {
	if p.lastLine > 0 && (p.lastWasDecl || p.line(pos) > p.lastLine+1) {
		p.b.WriteByte('\n')
	}
}

func (p *printer) file() {
	for i, d := range p.f.Decls {
		next := endOfFile
		if i+1 < len(p.f.Decls) {
			next = p.f.Decls[i+1].Pos()
		}
		limit := d.Pos()
		if c, ok := d.(*CaveatDecl); ok && c.Lbrace.IsValid() {
			// Comments inside a caveat header cannot stay there (the body
			// is CEL): print them above it.
			limit = c.Lbrace
		}
		p.standalone(limit, "")
		p.blankBefore(d.Pos())
		switch d := d.(type) {
		case *UseDecl:
			p.b.WriteString("use ")
			p.b.WriteString(d.Feature.Name)
			p.lastLine = p.trailing(next, d.End(), p.line(d.End()-1))
			p.b.WriteByte('\n')
		case *ImportDecl:
			p.b.WriteString("import ")
			p.b.WriteString(d.Lit)
			p.lastLine = p.trailing(next, d.End(), p.line(d.End()-1))
			p.b.WriteByte('\n')
		case *DefinitionDecl:
			p.definition("definition "+d.Name.String(), d.Lbrace, d.Members, d.Rbrace, next)
		case *PartialDecl:
			p.definition("partial "+d.Name.Name, d.Lbrace, d.Members, d.Rbrace, next)
		case *CaveatDecl:
			p.caveat(d, next)
		}
		p.lastWasDecl = true
	}
	p.standalone(endOfFile, "")
}

// definition prints a definition or partial: head is "definition name"
// or "partial name".
func (p *printer) definition(head string, lbrace Pos, members []Member, rbrace Pos, next Pos) {
	d := struct {
		Lbrace, Rbrace Pos
		Members        []Member
	}{lbrace, rbrace, members}
	p.b.WriteString(head)
	p.b.WriteString(" {")
	first := d.Rbrace
	if len(d.Members) > 0 {
		first = d.Members[0].Pos()
	}
	before := p.ci
	p.trailing(first, d.Lbrace+1, p.line(d.Lbrace))
	// "{}" only when nothing was printed after "{": a // comment there
	// would swallow the "}".
	if len(d.Members) == 0 && p.ci == before && (p.ci >= len(p.cs) || p.cs[p.ci].Pos() >= d.Rbrace) {
		p.b.WriteByte('}')
	} else {
		p.b.WriteByte('\n')
		p.lastLine, p.lastWasDecl = 0, false
		for i, m := range d.Members {
			limit := d.Rbrace
			if i+1 < len(d.Members) {
				limit = d.Members[i+1].Pos()
			}
			p.standalone(m.Pos(), "\t")
			p.blankBefore(m.Pos())
			p.b.WriteByte('\t')
			p.member(m)
			p.lastLine = p.trailing(limit, m.End(), p.line(m.End()-1))
			p.b.WriteByte('\n')
		}
		p.standalone(d.Rbrace, "\t")
		p.b.WriteByte('}')
	}
	p.lastLine = p.trailing(next, d.Rbrace+1, p.line(d.Rbrace))
	p.b.WriteByte('\n')
}

// annotations prints each annotation on a line of its own, above the
// member, at the member's indentation.
func (p *printer) annotations(list []*Annotation) {
	for _, a := range list {
		p.b.WriteString(a.String())
		p.b.WriteString("\n\t")
	}
}

func (p *printer) member(m Member) {
	switch m := m.(type) {
	case *RelationDecl:
		p.annotations(m.Annotations)
		p.b.WriteString("relation ")
		p.b.WriteString(m.Name.Name)
		p.b.WriteString(":")
		for i, t := range m.Types {
			if i > 0 {
				p.b.WriteString(" |")
			}
			p.b.WriteByte(' ')
			p.typeRef(t)
		}
	case *PermissionDecl:
		p.annotations(m.Annotations)
		p.b.WriteString("permission ")
		p.b.WriteString(m.Name.Name)
		for i, t := range m.Types {
			if i == 0 {
				p.b.WriteString(": ")
			} else {
				p.b.WriteString(" | ")
			}
			p.b.WriteString(t.String())
		}
		p.b.WriteString(" = ")
		p.expr(m.Expr)
	case *PartialRef:
		p.b.WriteString("...")
		p.b.WriteString(m.Name.Name)
	case *InvariantDecl:
		p.invariant(m)
	}
}

func (p *printer) typeRef(t *TypeRef) {
	p.b.WriteString(t.Type.String())
	if t.Wildcard.IsValid() {
		p.b.WriteString(":*")
	}
	if t.Relation != nil {
		p.b.WriteByte('#')
		p.b.WriteString(t.Relation.Name)
	}
	switch {
	case t.Caveat != nil && t.Expiration != nil:
		p.b.WriteString(" with " + t.Caveat.String() + " and expiration")
	case t.Caveat != nil:
		p.b.WriteString(" with " + t.Caveat.String())
	case t.Expiration != nil:
		p.b.WriteString(" with expiration")
	}
}

func (p *printer) expr(x Expr) {
	switch x := x.(type) {
	case *Ident:
		p.b.WriteString(x.Name)
	case *NilExpr:
		p.b.WriteString("nil")
	case *SelfExpr:
		p.b.WriteString("self")
	case *ArrowExpr:
		p.b.WriteString(x.Left.Name)
		if x.Func == "" {
			p.b.WriteString("->")
			p.b.WriteString(x.Target.Name)
		} else {
			p.b.WriteString("." + x.Func + "(" + x.Target.Name + ")")
		}
	case *ParenExpr:
		p.b.WriteByte('(')
		p.expr(x.X)
		p.b.WriteByte(')')
	case *BinaryExpr:
		p.expr(x.X)
		p.b.WriteString(" " + x.Op.String() + " ")
		p.expr(x.Y)
	default:
		p.b.WriteString("nil /* BAD */")
	}
}

func (p *printer) caveat(d *CaveatDecl, next Pos) {
	p.b.WriteString("caveat ")
	p.b.WriteString(d.Name.String())
	p.b.WriteByte('(')
	for i, prm := range d.Params {
		if i > 0 {
			p.b.WriteString(", ")
		}
		p.b.WriteString(prm.Name.Name)
		p.b.WriteByte(' ')
		p.b.WriteString(prm.Type.String())
	}
	p.b.WriteString(") {\n")
	if e := strings.TrimSpace(d.Expr); e != "" {
		p.b.WriteByte('\t')
		p.b.WriteString(e)
		p.b.WriteByte('\n')
	}
	p.b.WriteByte('}')
	p.lastLine = p.trailing(next, d.Rbrace+1, p.line(d.Rbrace))
	p.b.WriteByte('\n')
}
