package schema

import (
	"fmt"
	"sort"
)

// Parse parses schema source into a syntax tree. It does not resolve
// names; see Check and Compile. On syntax errors it still returns the
// (partial) tree, with an ErrorList holding every error found, sorted by
// position.
func Parse(filename, src string) (*File, error) {
	return parseAt(filename, src, 0)
}

// parseAt is Parse for a file whose positions start at base+1.
func parseAt(filename, src string, base int) (*File, error) {
	var p parser
	p.init(filename, src, base)
	f := p.parseFile()
	p.errors.Sort()
	return f, p.errors.Err()
}

type parser struct {
	file   *File
	sc     Scanner
	errors ErrorList

	// Current token.
	pos Pos
	tok Token
	lit string

	prevEnd     Pos           // just past the previous non-comment token
	leadComment *CommentGroup // comment group directly above the current token
	depth       int           // nesting of parentheses and type arguments
	tooDeep     bool          // maxNesting or maxOperators was hit in this member: skip the cascade
	operators   int           // binary operators in the current permission

	// uses holds the features this file has declared so far with "use".
	// As in SpiceDB, "use self", "use import" and "use partial" turn
	// self, import and partial into keywords for the rest of the file.
	uses     map[string]bool
	seenDecl bool // a definition, caveat or partial has been parsed
}

// maxNesting bounds nested parentheses and type arguments, so that hostile
// input cannot exhaust the stack of this recursive-descent parser.
const maxNesting = 100

// MaxOperators bounds the binary operators (+, &, -) of one permission.
// An operator chain is a tree as deep as it is long (a - b - c is
// (a - b) - c), and every pass over a permission (checker, compiler,
// formatter, lint, evaluator set-up) walks it recursively: without a bound
// one schema write of a 1.4M-operand chain overflowed the goroutine stack,
// which Go cannot recover from. Real permissions have tens of operands;
// one that needs more can be split into several permissions.
const MaxOperators = 10000

func (p *parser) init(filename, src string, base int) {
	p.file = &File{Name: filename, src: src}
	p.uses = map[string]bool{}
	p.sc.initAt(filename, src, base, func(pos Position, msg string) { p.addError(pos, msg) })
	p.file.lines = p.sc.lines
	p.next()
}

// addError records an error, keeping only the first one of each line since
// later ones are usually consequences.
func (p *parser) addError(pos Position, msg string) {
	if n := len(p.errors); n > 0 && p.errors[n-1].Pos.Line == pos.Line {
		return
	}
	p.errors.Add(pos, msg)
}

func (p *parser) error(pos Pos, msg string) { p.addError(p.file.Position(pos), msg) }

func (p *parser) line(pos Pos) int { return p.file.lines.line(pos) }

// tokEnd returns the position just past the current token.
func (p *parser) tokEnd() Pos {
	switch p.tok {
	case IDENT, ILLEGAL, COMMENT, STRING:
		return p.pos + Pos(len(p.lit))
	case EOF:
		return p.pos
	}
	return p.pos + Pos(len(p.tok.String()))
}

// next advances to the next non-comment token, collecting comments into
// groups and remembering the group directly above the new token.
func (p *parser) next() {
	if p.pos.IsValid() {
		p.prevEnd = p.tokEnd()
	}
	p.leadComment = nil
	p.pos, p.tok, p.lit = p.sc.Scan()
	if p.tok != COMMENT {
		return
	}
	prevLine := p.line(p.prevEnd)
	var last *CommentGroup
	for p.tok == COMMENT {
		var g *CommentGroup
		if p.prevEnd.IsValid() && p.line(p.pos) == prevLine {
			// A trailing comment: its own group, never a doc comment.
			g = p.consumeGroup(0)
		} else {
			g = p.consumeGroup(1)
		}
		last = g
		prevLine = -1
	}
	// The last group is a doc comment when it ends on the line above the
	// token (or on the token's own line) and is not trailing code.
	if last != nil && p.tok != EOF {
		endLine := p.line(last.End() - 1)
		if endLine+1 >= p.line(p.pos) && (!p.prevEnd.IsValid() || p.line(last.Pos()) != p.line(p.prevEnd)) {
			p.leadComment = last
		}
	}
}

// consumeGroup reads comments while each starts at most n lines after the
// end of the previous one.
func (p *parser) consumeGroup(n int) *CommentGroup {
	g := &CommentGroup{}
	endLine := p.line(p.pos)
	for p.tok == COMMENT && p.line(p.pos) <= endLine+n {
		c := &Comment{Slash: p.pos, Text: p.lit}
		g.List = append(g.List, c)
		endLine = p.line(c.End() - 1)
		p.pos, p.tok, p.lit = p.sc.Scan()
	}
	p.file.Comments = append(p.file.Comments, g)
	return g
}

func (p *parser) found() string {
	switch p.tok {
	case EOF:
		return "end of file"
	case IDENT, ILLEGAL:
		return fmt.Sprintf("%q", p.lit)
	case STRING:
		return p.lit
	}
	if p.tok.IsKeyword() {
		return fmt.Sprintf("keyword %q", p.tok.String())
	}
	return fmt.Sprintf("%q", p.tok.String())
}

func (p *parser) errorExpected(what string) {
	p.error(p.pos, "expected "+what+", found "+p.found())
}

// expect consumes tok or reports an error without advancing.
func (p *parser) expect(tok Token) Pos {
	pos := p.pos
	if p.tok != tok {
		p.errorExpected(fmt.Sprintf("%q", tok.String()))
		return NoPos
	}
	p.next()
	return pos
}

// ident consumes a name; on error it returns a placeholder Ident.
func (p *parser) ident(what string) *Ident {
	if p.tok == IDENT {
		id := &Ident{NamePos: p.pos, Name: p.lit}
		p.next()
		return id
	}
	p.errorExpected(what)
	return &Ident{NamePos: p.pos, Name: "_"}
}

// atWord reports whether the current token is the contextual keyword w:
// an identifier spelled w in a file that declared "use w".
func (p *parser) atWord(w string) bool {
	return p.tok == IDENT && p.lit == w && p.uses[w]
}

func (p *parser) parseFile() *File {
	f := p.file
	for p.tok != EOF {
		switch p.tok {
		case DEFINITION:
			p.seenDecl = true
			f.Decls = append(f.Decls, p.parseDefinition())
		case CAVEAT:
			p.seenDecl = true
			f.Decls = append(f.Decls, p.parseCaveat())
		case IDENT:
			switch {
			case p.lit == "use":
				f.Decls = append(f.Decls, p.parseUse())
			case p.atWord("import"):
				f.Decls = append(f.Decls, p.parseImport())
			case p.atWord("partial"):
				p.seenDecl = true
				f.Decls = append(f.Decls, p.parsePartial())
			case p.lit == "import" || p.lit == "partial":
				p.error(p.pos, fmt.Sprintf("%q needs \"use %s\" at the top of the file", p.lit, p.lit))
				p.next()
				p.syncDecl()
			default:
				p.errorExpected(`"definition", "caveat" or "use"`)
				p.next()
				p.syncDecl()
			}
		case SEMICOLON:
			p.next()
		default:
			p.errorExpected(`"definition", "caveat" or "use"`)
			p.next()
			p.syncDecl()
		}
	}
	sort.SliceStable(f.Comments, func(i, j int) bool { return f.Comments[i].Pos() < f.Comments[j].Pos() })
	return f
}

// syncDecl skips to the start of the next top-level declaration.
func (p *parser) syncDecl() {
	for p.tok != EOF && p.tok != DEFINITION && p.tok != CAVEAT &&
		!(p.tok == IDENT && (p.lit == "use" || p.atWord("import") || p.atWord("partial"))) {
		p.next()
	}
}

// atMemberEnd reports whether the current token may follow a complete
// relation or permission.
func (p *parser) atMemberEnd() bool {
	switch p.tok {
	case RELATION, PERMISSION, RBRACE, SEMICOLON, EOF, DEFINITION, CAVEAT, ELLIPSIS, AT:
		return true
	}
	return p.atWord("partial") || p.atWord("import") || (p.tok == IDENT && p.lit == "invariant")
}

// syncMember skips to the next member, the end of the definition, or the
// next declaration.
func (p *parser) syncMember() {
	for !p.atMemberEnd() {
		p.next()
	}
}

func (p *parser) parseUse() *UseDecl {
	d := &UseDecl{Doc: p.leadComment, Use: p.pos}
	if p.seenDecl {
		p.error(p.pos, "\"use\" must come before every definition, caveat and partial")
	}
	p.next()
	d.Feature = p.ident("feature name after \"use\"")
	p.uses[d.Feature.Name] = true
	return d
}

func (p *parser) parseImport() *ImportDecl {
	d := &ImportDecl{Doc: p.leadComment, Import: p.pos}
	p.next()
	if p.tok != STRING {
		p.errorExpected(`quoted file name after "import"`)
		p.syncDecl()
		return d
	}
	d.PathPos, d.Lit, d.Path = p.pos, p.lit, p.lit[1:len(p.lit)-1]
	p.next()
	return d
}

func (p *parser) parsePartial() *PartialDecl {
	d := &PartialDecl{Doc: p.leadComment, Keyword: p.pos}
	p.next()
	d.Name = p.ident("partial name")
	d.Lbrace, d.Members, d.Rbrace = p.parseBody()
	return d
}

func (p *parser) parsePartialRef() *PartialRef {
	d := &PartialRef{Doc: p.leadComment, Ellipsis: p.pos}
	p.next()
	d.Name = p.ident("partial name after \"...\"")
	if !p.atMemberEnd() {
		p.errorExpected("the end of the partial reference")
		p.syncMember()
	}
	return d
}

func (p *parser) parseTypeName(what string) *TypeName {
	t := &TypeName{Name: p.ident(what)}
	for p.tok == SLASH {
		p.next()
		t.Prefixes = append(t.Prefixes, t.Name)
		t.Name = p.ident("type name after \"/\"")
	}
	return t
}

func (p *parser) parseDefinition() *DefinitionDecl {
	d := &DefinitionDecl{Doc: p.leadComment, Keyword: p.pos}
	p.next()
	d.Name = p.parseTypeName("definition name")
	d.Lbrace, d.Members, d.Rbrace = p.parseBody()
	return d
}

// parseBody parses "{ members }" of a definition or partial.
func (p *parser) parseBody() (lbrace Pos, members []Member, rbrace Pos) {
	if p.tok != LBRACE {
		p.errorExpected(`"{"`)
		p.syncDecl()
		return p.pos, nil, p.pos
	}
	lbrace = p.pos
	p.next()
	for p.tok != RBRACE && p.tok != EOF {
		switch p.tok {
		case RELATION:
			members = append(members, p.parseRelation())
		case PERMISSION:
			members = append(members, p.parsePermission())
		case ELLIPSIS:
			members = append(members, p.parsePartialRef())
		case AT:
			if m := p.parseAnnotated(); m != nil {
				members = append(members, m)
			}
		case SEMICOLON:
			p.next()
		case DEFINITION, CAVEAT:
			p.errorExpected(`"}"`)
			return lbrace, members, p.pos
		default:
			if p.atWord("partial") || p.atWord("import") {
				p.errorExpected(`"}"`)
				return lbrace, members, p.pos
			}
			if p.atInvariant() {
				members = append(members, p.parseInvariant())
				continue
			}
			if p.tok == IDENT && p.lit == "invariant" {
				p.error(p.pos, `"invariant" needs "use invariants" at the top of the file`)
				p.next()
				p.syncMember()
				continue
			}
			p.errorExpected(`"relation" or "permission"`)
			p.next()
			p.syncMember()
		}
	}
	rbrace = p.pos
	if p.tok == EOF {
		p.errorExpected(`"}"`)
		return lbrace, members, rbrace
	}
	p.next()
	return lbrace, members, rbrace
}

// parseAnnotated parses annotations and the relation or permission they
// annotate; nil when no member follows them.
func (p *parser) parseAnnotated() Member {
	doc := p.leadComment
	var list []*Annotation
	for p.tok == AT {
		list = append(list, p.parseAnnotation())
	}
	switch p.tok {
	case RELATION:
		d := p.parseRelation()
		d.Doc, d.Annotations = doc, list
		return d
	case PERMISSION:
		d := p.parsePermission()
		d.Doc, d.Annotations = doc, list
		return d
	}
	p.errorExpected(`"relation" or "permission" after an annotation`)
	if p.tok != RBRACE && p.tok != EOF {
		p.next()
	}
	p.syncMember()
	return nil
}

// parseAnnotation parses "@name" or "@name(arg, ...)", each argument a
// name or a quoted string.
func (p *parser) parseAnnotation() *Annotation {
	a := &Annotation{At: p.pos}
	p.next()
	a.Name = p.ident("annotation name after \"@\"")
	if p.tok != LPAREN {
		return a
	}
	a.Lparen = p.pos
	p.next()
	for p.tok == IDENT || p.tok == STRING {
		a.Args = append(a.Args, &AnnotationArg{ValuePos: p.pos, Lit: p.lit})
		p.next()
		if p.tok != COMMA {
			break
		}
		p.next()
	}
	a.Rparen = p.pos
	if p.tok != RPAREN {
		p.errorExpected(`name, quoted string or ")" in the annotation`)
		return a
	}
	p.next()
	return a
}

func (p *parser) parseRelation() *RelationDecl {
	d := &RelationDecl{Doc: p.leadComment, Keyword: p.pos}
	p.next()
	d.Name = p.ident("relation name")
	if p.tok != COLON {
		p.errorExpected(`":"`)
		p.syncMember()
		return d
	}
	d.Colon = p.pos
	p.next()
	for {
		t, ok := p.parseTypeRef()
		if !ok {
			p.syncMember()
			return d
		}
		d.Types = append(d.Types, t)
		if p.tok != PIPE {
			break
		}
		p.next()
	}
	if !p.atMemberEnd() {
		p.errorExpected(`"|" or the end of the relation`)
		p.syncMember()
	}
	return d
}

func (p *parser) parseTypeRef() (*TypeRef, bool) {
	if p.tok != IDENT {
		p.errorExpected("subject type")
		return nil, false
	}
	t := &TypeRef{Type: p.parseTypeName("subject type")}
	t.EndPos = t.Type.End()
	for {
		switch p.tok {
		case COLON:
			p.next()
			if p.tok != STAR {
				p.errorExpected(`"*" after ":"`)
				return nil, false
			}
			if t.Wildcard.IsValid() {
				p.error(p.pos, "duplicate wildcard")
			}
			t.Wildcard = p.pos
			t.EndPos = p.pos + 1
			p.next()
			continue
		case HASH:
			p.next()
			if p.tok == ELLIPSIS {
				// type#... is SpiceDB's spelling of the plain type.
				t.EndPos = p.pos + 3
				p.next()
				continue
			}
			if t.Relation != nil {
				p.error(p.pos, "a subject type has at most one relation")
			}
			t.Relation = p.ident("relation name after \"#\"")
			t.EndPos = t.Relation.End()
			continue
		}
		break
	}
	if p.tok == IDENT && p.lit == "with" {
		p.next()
		if p.tok != IDENT {
			p.errorExpected(`caveat name or "expiration" after "with"`)
			return nil, false
		}
		if p.lit == "expiration" {
			t.Expiration = &Ident{NamePos: p.pos, Name: p.lit}
			t.EndPos = t.Expiration.End()
			p.next()
			return t, true
		}
		t.Caveat = p.parseTypeName("caveat name")
		t.EndPos = t.Caveat.End()
		if p.tok == IDENT && p.lit == "and" {
			p.next()
			if p.tok != IDENT || p.lit != "expiration" {
				p.errorExpected(`"expiration" after "and"`)
				return nil, false
			}
			t.Expiration = &Ident{NamePos: p.pos, Name: p.lit}
			t.EndPos = t.Expiration.End()
			p.next()
		}
	}
	return t, true
}

func (p *parser) parsePermission() *PermissionDecl {
	d := &PermissionDecl{Doc: p.leadComment, Keyword: p.pos}
	p.next()
	d.Name = p.ident("permission name")
	if p.tok == COLON {
		// A type annotation: "permission view: user | team = ...".
		d.Colon = p.pos
		p.next()
		for {
			if p.tok != IDENT {
				p.errorExpected("type name in the annotation")
				p.syncMember()
				return d
			}
			d.Types = append(d.Types, p.parseTypeName("type name in the annotation"))
			if p.tok != PIPE {
				break
			}
			p.next()
		}
	}
	if p.tok != ASSIGN {
		p.errorExpected(`"="`)
		p.syncMember()
		return d
	}
	d.Assign = p.pos
	p.next()
	p.tooDeep = false
	p.operators = 0
	d.Expr = p.parseBinary(1)
	if !p.atMemberEnd() {
		p.errorExpected(`"+", "&", "-" or the end of the permission`)
		p.syncMember()
	}
	return d
}

// parseBinary parses operators of precedence prec1 or higher, left to right
// (precedence climbing): a - b - c is (a - b) - c.
func (p *parser) parseBinary(prec1 int) Expr {
	x := p.parseOperand()
	for {
		op := p.tok
		prec := op.precedence()
		if prec < prec1 {
			return x
		}
		opPos := p.pos
		if p.operators++; p.operators > MaxOperators {
			p.error(opPos, fmt.Sprintf("permission has more than %d operators: split it into several permissions", MaxOperators))
			p.tooDeep = true
			p.syncMember()
			return &BadExpr{From: x.Pos(), To: p.pos}
		}
		p.next()
		y := p.parseBinary(prec + 1)
		x = &BinaryExpr{X: x, OpPos: opPos, Op: op, Y: y}
	}
}

func (p *parser) parseOperand() Expr {
	switch p.tok {
	case NIL:
		x := &NilExpr{NilPos: p.pos}
		p.next()
		return x
	case LPAREN:
		x := &ParenExpr{Lparen: p.pos}
		if p.depth >= maxNesting {
			p.error(p.pos, fmt.Sprintf("expression nested more than %d levels deep", maxNesting))
			p.tooDeep = true
			p.syncMember()
			return &BadExpr{From: x.Lparen, To: p.pos}
		}
		p.depth++
		defer func() { p.depth-- }()
		p.next()
		x.X = p.parseBinary(1)
		x.Rparen = p.pos
		if p.tok != RPAREN {
			if !p.tooDeep {
				p.errorExpected(`")"`)
			}
			return x
		}
		p.next()
		return x
	case IDENT:
		if p.atWord("self") {
			x := &SelfExpr{SelfPos: p.pos}
			p.next()
			return x
		}
		id := &Ident{NamePos: p.pos, Name: p.lit}
		p.next()
		switch p.tok {
		case ARROW:
			x := &ArrowExpr{Left: id, OpPos: p.pos}
			p.next()
			x.Target = p.ident("relation or permission name after \"->\"")
			if p.tok == ARROW || p.tok == DOT {
				p.error(p.pos, "arrows cannot be chained; point the arrow at a permission that follows the next relation")
			}
			return x
		case DOT:
			x := &ArrowExpr{Left: id, OpPos: p.pos}
			p.next()
			if p.tok != IDENT || (p.lit != "any" && p.lit != "all") {
				p.errorExpected(`"any" or "all" after "."`)
				x.Target = &Ident{NamePos: p.pos, Name: "_"}
				return x
			}
			x.Func = p.lit
			p.next()
			p.expect(LPAREN)
			x.Target = p.ident("relation or permission name")
			x.Rparen = p.pos
			if p.tok == RPAREN {
				p.next()
			} else {
				p.errorExpected(`")"`)
			}
			return x
		}
		return id
	}
	p.errorExpected("relation, permission, arrow, \"nil\" or \"(\"")
	x := &BadExpr{From: p.pos, To: p.tokEnd()}
	if !p.atMemberEnd() && p.tok != RPAREN {
		p.next()
	}
	return x
}

func (p *parser) parseCaveat() *CaveatDecl {
	d := &CaveatDecl{Doc: p.leadComment, Keyword: p.pos}
	p.next()
	d.Name = p.parseTypeName("caveat name")
	if p.tok != LPAREN {
		p.errorExpected(`"("`)
		p.syncDecl()
		d.Rbrace = p.pos
		return d
	}
	d.Lparen = p.pos
	p.next()
	for p.tok != RPAREN && p.tok != EOF {
		prm := &ParamDecl{Name: p.ident("parameter name")}
		if p.tok != IDENT {
			p.errorExpected("parameter type")
			p.syncDecl()
			d.Rbrace = p.pos
			return d
		}
		prm.Type = p.parseTypeExpr()
		d.Params = append(d.Params, prm)
		if p.tok != COMMA {
			break
		}
		p.next()
	}
	d.Rparen = p.pos
	if p.tok != RPAREN {
		p.errorExpected(`"," or ")"`)
		p.syncDecl()
		d.Rbrace = p.pos
		return d
	}
	p.next()
	if p.tok != LBRACE {
		p.errorExpected(`"{"`)
		p.syncDecl()
		d.Rbrace = p.pos
		return d
	}
	d.Lbrace = p.pos
	// The scanner stands just past "{": read the CEL body raw.
	d.ExprPos, d.Expr, d.Rbrace, _ = p.sc.ScanCEL()
	p.pos, p.tok, p.lit = d.Rbrace, RBRACE, ""
	p.next()
	return d
}

func (p *parser) parseTypeExpr() *TypeExpr {
	t := &TypeExpr{Name: p.ident("type")}
	t.EndPos = t.Name.End()
	if p.tok != LT {
		return t
	}
	t.Lt = p.pos
	if p.depth >= maxNesting {
		p.error(p.pos, fmt.Sprintf("type nested more than %d levels deep", maxNesting))
		return t
	}
	p.depth++
	defer func() { p.depth-- }()
	p.next()
	for {
		if p.tok != IDENT {
			p.errorExpected("type argument")
			return t
		}
		t.Args = append(t.Args, p.parseTypeExpr())
		if p.tok != COMMA {
			break
		}
		p.next()
	}
	t.Gt = p.pos
	if p.tok != GT {
		p.errorExpected(`">"`)
		return t
	}
	t.EndPos = p.pos + 1
	p.next()
	return t
}
