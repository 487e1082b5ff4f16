package schema

import "strings"

// This file defines the syntax tree produced by Parse. Every node reports
// its extent with Pos (first byte) and End (just past the last byte); use
// File.Position to turn a Pos into line and column.

// Node is any node of the syntax tree.
type Node interface {
	Pos() Pos
	End() Pos
}

// Comment is one // or /* */ comment.
type Comment struct {
	Slash Pos    // position of the first "/"
	Text  string // including the comment markers
}

// Pos returns the position of the comment's first byte.
func (c *Comment) Pos() Pos { return c.Slash }

// End returns the position just past the comment.
func (c *Comment) End() Pos { return c.Slash + Pos(len(c.Text)) }

// CommentGroup is a run of comments with no blank line between them.
type CommentGroup struct {
	List []*Comment
}

// Pos returns the position of the first comment.
func (g *CommentGroup) Pos() Pos { return g.List[0].Pos() }

// End returns the position just past the last comment.
func (g *CommentGroup) End() Pos { return g.List[len(g.List)-1].End() }

// Text returns the comments' text without markers, one comment per line
// (a block comment may span several), trimmed of surrounding blank space.
func (g *CommentGroup) Text() string {
	if g == nil {
		return ""
	}
	var lines []string
	for _, c := range g.List {
		t := c.Text
		if strings.HasPrefix(t, "//") {
			lines = append(lines, strings.TrimSpace(t[2:]))
			continue
		}
		t = strings.TrimSuffix(strings.TrimPrefix(t, "/*"), "*/")
		for _, l := range strings.Split(t, "\n") {
			lines = append(lines, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "*")))
		}
	}
	// Drop leading and trailing blank lines.
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}

// File is a parsed schema source file.
type File struct {
	Name     string
	Decls    []Decl          // definitions, caveats and use directives, in order
	Comments []*CommentGroup // every comment of the file, in order

	src   string
	lines *lineTable
	// imported lists the files this file's imports resolved to, in order
	// (set by LoadFiles; a file imported twice appears under the first).
	imported []*File
}

// Position expands a Pos of this file into file name, line and column.
func (f *File) Position(p Pos) Position { return f.lines.position(p) }

// Source returns the text the file was parsed from.
func (f *File) Source() string { return f.src }

// Decl is a top-level declaration: *DefinitionDecl, *CaveatDecl, *UseDecl,
// *ImportDecl or *PartialDecl.
type Decl interface {
	Node
	declNode()
}

// Member is a declaration inside a definition or partial: *RelationDecl,
// *PermissionDecl or *PartialRef.
type Member interface {
	Node
	memberNode()
	// MemberName returns the declared name.
	MemberName() *Ident
}

// Expr is a permission expression: *Ident, *NilExpr, *SelfExpr,
// *ArrowExpr, *BinaryExpr, *ParenExpr or *BadExpr.
type Expr interface {
	Node
	exprNode()
}

// Ident is a name.
type Ident struct {
	NamePos Pos
	Name    string
}

// Pos returns the position of the name.
func (x *Ident) Pos() Pos { return x.NamePos }

// End returns the position just past the name.
func (x *Ident) End() Pos { return x.NamePos + Pos(len(x.Name)) }

// TypeName is an object type or caveat name, optionally prefixed by any
// number of segments: document, tenant/document, org/identity_team/group.
type TypeName struct {
	Prefixes []*Ident // nil when unprefixed; org, identity_team above
	Name     *Ident   // the last segment
}

// Pos returns the position of the first name.
func (t *TypeName) Pos() Pos {
	if len(t.Prefixes) > 0 {
		return t.Prefixes[0].Pos()
	}
	return t.Name.Pos()
}

// End returns the position just past the type name.
func (t *TypeName) End() Pos { return t.Name.End() }

// String renders the type name as written, prefix/.../name.
func (t *TypeName) String() string {
	if len(t.Prefixes) == 0 {
		return t.Name.Name
	}
	var b strings.Builder
	for _, p := range t.Prefixes {
		b.WriteString(p.Name)
		b.WriteByte('/')
	}
	b.WriteString(t.Name.Name)
	return b.String()
}

// UseDecl is a "use <feature>" directive, such as "use expiration".
type UseDecl struct {
	Doc     *CommentGroup
	Use     Pos
	Feature *Ident
}

// ImportDecl is `import "path"`: the declarations of another file, named
// relative to this one (needs "use import").
type ImportDecl struct {
	Doc     *CommentGroup
	Import  Pos
	PathPos Pos    // position of the opening quote
	Lit     string // the literal as written, quotes included
	Path    string // the path, without quotes
}

// PartialDecl is "partial name { members }": members that definitions and
// other partials copy in with "...name" (needs "use partial").
type PartialDecl struct {
	Doc     *CommentGroup
	Keyword Pos
	Name    *Ident
	Lbrace  Pos
	Members []Member
	Rbrace  Pos
}

// PartialRef is "...name" inside a definition or partial: the members of
// partial name, in place.
type PartialRef struct {
	Doc      *CommentGroup
	Ellipsis Pos
	Name     *Ident
}

// DefinitionDecl is "definition name { members }".
type DefinitionDecl struct {
	Doc     *CommentGroup
	Keyword Pos
	Name    *TypeName
	Lbrace  Pos
	Members []Member
	Rbrace  Pos
}

// RelationDecl is "relation name: type | type ...", optionally after
// annotations (@deprecated, @renamed_from(old)).
type RelationDecl struct {
	Doc         *CommentGroup
	Annotations []*Annotation
	Keyword     Pos
	Name        *Ident
	Colon       Pos
	Types       []*TypeRef
}

// TypeRef is one entry of a relation's type list: user, group#member,
// user:*, user with caveat, user with expiration, user with caveat and
// expiration.
type TypeRef struct {
	Type       *TypeName
	Relation   *Ident    // after "#"; nil when absent
	Wildcard   Pos       // position of "*" in "type:*"; NoPos when absent
	Caveat     *TypeName // after "with"; nil when absent
	Expiration *Ident    // the "expiration" word; nil when absent
	EndPos     Pos
}

// PermissionDecl is "permission name = expression", or with a type
// annotation (checked under "use typechecking") "permission name: user |
// team = expression".
type PermissionDecl struct {
	Doc         *CommentGroup
	Annotations []*Annotation
	Keyword     Pos
	Name        *Ident
	Colon       Pos         // NoPos without annotation
	Types       []*TypeName // the annotation's types
	Assign      Pos
	Expr        Expr
}

// Annotation is "@name" or "@name(arg, ...)" on the line(s) before a
// relation or permission: @deprecated, @deprecated("use owner"),
// @renamed_from(admin). The checker decides which names and arguments
// mean something.
type Annotation struct {
	At     Pos
	Name   *Ident
	Lparen Pos // NoPos without arguments
	Args   []*AnnotationArg
	Rparen Pos
}

// AnnotationArg is one argument of an annotation: a name or a quoted
// string.
type AnnotationArg struct {
	ValuePos Pos
	Lit      string // as written, quotes included for a string
}

// IsString reports whether the argument is a quoted string.
func (a *AnnotationArg) IsString() bool {
	return strings.HasPrefix(a.Lit, "\"") || strings.HasPrefix(a.Lit, "'")
}

// Value returns the argument without quotes.
func (a *AnnotationArg) Value() string {
	if a.IsString() {
		return a.Lit[1 : len(a.Lit)-1]
	}
	return a.Lit
}

// String renders the annotation canonically: @deprecated("use owner").
func (a *Annotation) String() string {
	s := "@" + a.Name.Name
	if a.Lparen.IsValid() {
		args := make([]string, len(a.Args))
		for i, x := range a.Args {
			args[i] = x.Lit
		}
		s += "(" + strings.Join(args, ", ") + ")"
	}
	return s
}

// Pos returns the position of "@".
func (a *Annotation) Pos() Pos { return a.At }

// End returns the position just past the annotation.
func (a *Annotation) End() Pos {
	if a.Rparen.IsValid() {
		return a.Rparen + 1
	}
	return a.Name.End()
}

// NilExpr is the empty set, "nil".
type NilExpr struct {
	NilPos Pos
}

// SelfExpr is "self" (needs "use self"): the object itself, as a subject.
type SelfExpr struct {
	SelfPos Pos
}

// ArrowExpr is "left->target", "left.any(target)" or "left.all(target)".
type ArrowExpr struct {
	Left   *Ident
	OpPos  Pos    // position of "->" or "."
	Func   string // "" for "->"; "any" or "all"
	Target *Ident
	Rparen Pos // closing ")" of .any/.all; NoPos for "->"
}

// BinaryExpr is "x op y" with op one of + & -.
type BinaryExpr struct {
	X     Expr
	OpPos Pos
	Op    Token // PLUS, AMP or MINUS
	Y     Expr
}

// ParenExpr is a parenthesised expression.
type ParenExpr struct {
	Lparen Pos
	X      Expr
	Rparen Pos
}

// BadExpr stands in for an expression with a syntax error.
type BadExpr struct {
	From, To Pos
}

// CaveatDecl is "caveat name(param type, ...) { expression }".
type CaveatDecl struct {
	Doc     *CommentGroup
	Keyword Pos
	Name    *TypeName
	Lparen  Pos
	Params  []*ParamDecl
	Rparen  Pos
	Lbrace  Pos
	ExprPos Pos    // first byte of the raw expression text
	Expr    string // the CEL expression, raw, between the braces
	Rbrace  Pos
}

// ParamDecl is one caveat parameter, "name type".
type ParamDecl struct {
	Name *Ident
	Type *TypeExpr
}

// TypeExpr is a caveat parameter type: int, list<string>, map<int>.
type TypeExpr struct {
	Name   *Ident
	Lt     Pos // NoPos without type arguments
	Args   []*TypeExpr
	Gt     Pos
	EndPos Pos
}

// String renders the type canonically: list<map<int>>.
func (t *TypeExpr) String() string {
	if t == nil {
		return ""
	}
	if len(t.Args) == 0 {
		return t.Name.Name
	}
	var b strings.Builder
	b.WriteString(t.Name.Name)
	b.WriteByte('<')
	for i, a := range t.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	b.WriteByte('>')
	return b.String()
}

// Positions.

// Pos returns the position of "use".
func (d *UseDecl) Pos() Pos { return d.Use }

// End returns the position just past the feature name.
func (d *UseDecl) End() Pos {
	if d.Feature != nil {
		return d.Feature.End()
	}
	return d.Use + 3
}

// Pos returns the position of "import".
func (d *ImportDecl) Pos() Pos { return d.Import }

// End returns the position just past the path.
func (d *ImportDecl) End() Pos {
	if d.PathPos.IsValid() {
		return d.PathPos + Pos(len(d.Lit))
	}
	return d.Import + 6
}

// Pos returns the position of "partial".
func (d *PartialDecl) Pos() Pos { return d.Keyword }

// End returns the position just past "}".
func (d *PartialDecl) End() Pos { return d.Rbrace + 1 }

// Pos returns the position of "...".
func (d *PartialRef) Pos() Pos { return d.Ellipsis }

// End returns the position just past the name.
func (d *PartialRef) End() Pos { return d.Name.End() }

// MemberName returns the name of the partial.
func (d *PartialRef) MemberName() *Ident { return d.Name }

// Pos returns the position of "self".
func (x *SelfExpr) Pos() Pos { return x.SelfPos }

// End returns the position just past "self".
func (x *SelfExpr) End() Pos { return x.SelfPos + 4 }

// Pos returns the position of "definition".
func (d *DefinitionDecl) Pos() Pos { return d.Keyword }

// End returns the position just past "}".
func (d *DefinitionDecl) End() Pos { return d.Rbrace + 1 }

// Pos returns the position of the first annotation, or of "relation".
func (d *RelationDecl) Pos() Pos {
	if len(d.Annotations) > 0 {
		return d.Annotations[0].Pos()
	}
	return d.Keyword
}

// End returns the position just past the last type.
func (d *RelationDecl) End() Pos {
	if n := len(d.Types); n > 0 {
		return d.Types[n-1].End()
	}
	if d.Colon.IsValid() {
		return d.Colon + 1
	}
	return d.Name.End()
}

// MemberName returns the relation's name.
func (d *RelationDecl) MemberName() *Ident { return d.Name }

// Pos returns the position of the type name.
func (t *TypeRef) Pos() Pos { return t.Type.Pos() }

// End returns the position just past the entry.
func (t *TypeRef) End() Pos { return t.EndPos }

// Pos returns the position of the first annotation, or of "permission".
func (d *PermissionDecl) Pos() Pos {
	if len(d.Annotations) > 0 {
		return d.Annotations[0].Pos()
	}
	return d.Keyword
}

// End returns the position just past the expression.
func (d *PermissionDecl) End() Pos {
	if d.Expr != nil {
		return d.Expr.End()
	}
	return d.Name.End()
}

// MemberName returns the permission's name.
func (d *PermissionDecl) MemberName() *Ident { return d.Name }

// Pos returns the position of "nil".
func (x *NilExpr) Pos() Pos { return x.NilPos }

// End returns the position just past "nil".
func (x *NilExpr) End() Pos { return x.NilPos + 3 }

// Pos returns the position of the left name.
func (x *ArrowExpr) Pos() Pos { return x.Left.Pos() }

// End returns the position just past the target or ")".
func (x *ArrowExpr) End() Pos {
	if x.Rparen.IsValid() {
		return x.Rparen + 1
	}
	return x.Target.End()
}

// Pos returns the position of the left operand.
func (x *BinaryExpr) Pos() Pos { return x.X.Pos() }

// End returns the position just past the right operand.
func (x *BinaryExpr) End() Pos { return x.Y.End() }

// Pos returns the position of "(".
func (x *ParenExpr) Pos() Pos { return x.Lparen }

// End returns the position just past ")".
func (x *ParenExpr) End() Pos { return x.Rparen + 1 }

// Pos returns the start of the bad text.
func (x *BadExpr) Pos() Pos { return x.From }

// End returns the end of the bad text.
func (x *BadExpr) End() Pos { return x.To }

// Pos returns the position of "caveat".
func (d *CaveatDecl) Pos() Pos { return d.Keyword }

// End returns the position just past "}".
func (d *CaveatDecl) End() Pos { return d.Rbrace + 1 }

// Pos returns the position of the parameter name.
func (p *ParamDecl) Pos() Pos { return p.Name.Pos() }

// End returns the position just past the type.
func (p *ParamDecl) End() Pos {
	if p.Type != nil {
		return p.Type.End()
	}
	return p.Name.End()
}

// Pos returns the position of the type name.
func (t *TypeExpr) Pos() Pos { return t.Name.Pos() }

// End returns the position just past the type.
func (t *TypeExpr) End() Pos { return t.EndPos }

func (*UseDecl) declNode()        {}
func (*DefinitionDecl) declNode() {}
func (*CaveatDecl) declNode()     {}
func (*ImportDecl) declNode()     {}
func (*PartialDecl) declNode()    {}

func (*RelationDecl) memberNode()   {}
func (*PermissionDecl) memberNode() {}
func (*PartialRef) memberNode()     {}

func (*Ident) exprNode()      {}
func (*NilExpr) exprNode()    {}
func (*SelfExpr) exprNode()   {}
func (*ArrowExpr) exprNode()  {}
func (*BinaryExpr) exprNode() {}
func (*ParenExpr) exprNode()  {}
func (*BadExpr) exprNode()    {}
