package schema

import (
	"fmt"
	"strconv"
	"strings"
)

// This file holds write-time invariants, "invariant name = condition"
// inside a definition (needs "use invariants"): syntax, checking and the
// compiled form. The engine evaluates them inside every write that could
// break them (engine/invariant.go). The condition is one line in a small
// language of its own, read raw by the scanner as a caveat's CEL body is:
//
//	condition := [relation "requires"] test
//	test      := "count(" relation ")" op bound    cardinality
//	           | relation                          at least one subject
//	           | relation "within" name            containment: every subject of
//	                                               relation has permission name
//	op        := "==" | "<=" | ">="
//	bound     := integer | "value(" relation ")"

// InvariantDecl is "invariant name = condition" inside a definition or
// partial.
type InvariantDecl struct {
	Doc     *CommentGroup
	Keyword Pos
	Name    *Ident
	Assign  Pos
	BodyPos Pos    // first byte of the raw condition
	Body    string // the condition as written, trimmed
	Cond    *InvariantCond
}

// InvariantCond is the parsed condition of an invariant; nil in an
// InvariantDecl whose condition has a syntax error.
type InvariantCond struct {
	Guard *Ident // before "requires"; nil when unconditional
	Kind  InvariantKind
	// Relation is the counted relation (count), the relation that must be
	// non-empty (non-empty), or the relation whose subjects are checked
	// (within).
	Relation *Ident
	Op       string // "==", "<=" or ">=" (count)
	N        int    // the bound when Value is nil (count)
	Value    *Ident // value(relation) bound; nil for a number (count)
	Target   *Ident // the permission or relation of within
}

// Pos returns the position of "invariant".
func (d *InvariantDecl) Pos() Pos { return d.Keyword }

// End returns the position just past the condition.
func (d *InvariantDecl) End() Pos {
	if d.BodyPos.IsValid() {
		return d.BodyPos + Pos(len(d.Body))
	}
	return d.Name.End()
}

// MemberName returns the invariant's name.
func (d *InvariantDecl) MemberName() *Ident { return d.Name }

func (*InvariantDecl) memberNode() {}

// InvariantKind is the kind of test of an invariant.
type InvariantKind uint8

// Invariant kinds.
const (
	// InvariantCount compares the number of subjects of a relation with a
	// bound: "count(creator) == 1", "count(seat) <= value(seat_limit)".
	InvariantCount InvariantKind = iota + 1
	// InvariantNonEmpty requires at least one subject: "approved".
	InvariantNonEmpty
	// InvariantWithin requires every subject of a relation to hold a
	// permission on the same object: "owner within account_orders".
	InvariantWithin
)

// Invariant is a compiled write-time invariant of a definition. It holds
// for an object that has no relationship at all (a non-existent object)
// and, when Guard is set, for an object without a Guard relationship.
type Invariant struct {
	Name       string
	Definition *Definition
	// Text is the condition, canonically formatted.
	Text  string
	Guard *Relation // nil when unconditional
	Kind  InvariantKind
	// Relation: the counted relation, the relation that must have a
	// subject, or the relation whose subjects must hold Target.
	Relation *Relation
	Op       string    // count: "==", "<=" or ">="
	N        int       // count: the bound when Value is nil
	Value    *Relation // count: value(Value) is the bound
	Target   *Relation // within: a permission or relation of Definition
	Doc      string
	Pos      Position
}

// String renders "definition.name (condition)".
func (inv *Invariant) String() string {
	return fmt.Sprintf("%s.%s (%s)", inv.Definition.Name, inv.Name, inv.Text)
}

// String renders the condition canonically.
func (c *InvariantCond) String() string {
	var b strings.Builder
	if c.Guard != nil {
		b.WriteString(c.Guard.Name + " requires ")
	}
	switch c.Kind {
	case InvariantCount:
		b.WriteString("count(" + c.Relation.Name + ") " + c.Op + " ")
		if c.Value != nil {
			b.WriteString("value(" + c.Value.Name + ")")
		} else {
			b.WriteString(strconv.Itoa(c.N))
		}
	case InvariantNonEmpty:
		b.WriteString(c.Relation.Name)
	case InvariantWithin:
		b.WriteString(c.Relation.Name + " within " + c.Target.Name)
	}
	return b.String()
}

// scanInvariantBody reads the rest of the line, just after an invariant's
// "=", up to a newline, ";", "}" or a comment, none of which it consumes.
func (s *Scanner) scanInvariantBody() (pos Pos, body string) {
	for s.off < len(s.src) && (s.src[s.off] == ' ' || s.src[s.off] == '\t') {
		s.off++
	}
	start := s.off
	for s.off < len(s.src) {
		c := s.src[s.off]
		if c == '\n' || c == '\r' || c == ';' || c == '}' {
			break
		}
		if c == '/' && s.off+1 < len(s.src) && (s.src[s.off+1] == '/' || s.src[s.off+1] == '*') {
			break
		}
		s.off++
	}
	body = strings.TrimRight(s.src[start:s.off], " \t")
	s.off = start + len(body)
	return s.at(start), body
}

func (p *parser) parseInvariant() *InvariantDecl {
	d := &InvariantDecl{Doc: p.leadComment, Keyword: p.pos}
	p.next()
	d.Name = p.ident("invariant name")
	if p.tok != ASSIGN {
		p.errorExpected(`"="`)
		p.syncMember()
		return d
	}
	d.Assign = p.pos
	// The scanner stands just past "=": read the condition raw.
	d.BodyPos, d.Body = p.sc.scanInvariantBody()
	if d.Body == "" {
		p.error(d.BodyPos, `expected a condition after "="`)
	} else {
		d.Cond = parseInvariantCond(d.BodyPos, d.Body, p.error)
	}
	p.next()
	if !p.atMemberEnd() {
		p.errorExpected("the end of the invariant")
		p.syncMember()
	}
	return d
}

// invTok is a token of an invariant condition.
type invTok struct {
	pos  Pos
	text string // a word, a number, "(", ")", "==", "<=", ">="; "" at the end
}

// parseInvariantCond parses the condition text that starts at base,
// reporting errors through errf.
func parseInvariantCond(base Pos, text string, errf func(Pos, string)) *InvariantCond {
	var toks []invTok
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case isLetter(c) || isDigit(c):
			j := i
			for j < len(text) && (isLetter(text[j]) || isDigit(text[j])) {
				j++
			}
			toks = append(toks, invTok{base + Pos(i), text[i:j]})
			i = j
		case c == '(' || c == ')':
			toks = append(toks, invTok{base + Pos(i), text[i : i+1]})
			i++
		case (c == '=' || c == '<' || c == '>') && i+1 < len(text) && text[i+1] == '=':
			toks = append(toks, invTok{base + Pos(i), text[i : i+2]})
			i += 2
		default:
			errf(base+Pos(i), fmt.Sprintf("invalid character %q in invariant condition (use count(relation) ==, <= or >= a number or value(relation); relation; relation within permission; each optionally after \"relation requires\")", string(c)))
			return nil
		}
	}
	toks = append(toks, invTok{base + Pos(len(text)), ""})
	ip := &invParser{toks: toks, errf: errf}
	cond := ip.cond()
	if ip.failed {
		return nil
	}
	return cond
}

type invParser struct {
	toks   []invTok
	i      int
	errf   func(Pos, string)
	failed bool
}

func (ip *invParser) peek() invTok { return ip.toks[ip.i] }

func (ip *invParser) expect(what string) {
	if ip.failed {
		return
	}
	t := ip.peek()
	found := "end of the condition"
	if t.text != "" {
		found = fmt.Sprintf("%q", t.text)
	}
	ip.errf(t.pos, fmt.Sprintf("expected %s in invariant condition, found %s", what, found))
	ip.failed = true
}

// name consumes a relation or permission name.
func (ip *invParser) name(what string) *Ident {
	t := ip.peek()
	if t.text == "" || !isLetter(t.text[0]) || isInvariantWord(t.text) {
		ip.expect(what)
		return &Ident{NamePos: t.pos, Name: "_"}
	}
	ip.i++
	return &Ident{NamePos: t.pos, Name: t.text}
}

func (ip *invParser) punct(p string) {
	if ip.peek().text != p {
		ip.expect(fmt.Sprintf("%q", p))
		return
	}
	ip.i++
}

func isInvariantWord(s string) bool {
	switch s {
	case "count", "value", "requires", "within":
		return true
	}
	return false
}

func (ip *invParser) cond() *InvariantCond {
	c := &InvariantCond{}
	// A guard is a name followed by "requires".
	if ip.i+1 < len(ip.toks) && ip.toks[ip.i+1].text == "requires" {
		c.Guard = ip.name("relation name")
		ip.i++ // "requires"
	}
	if ip.peek().text == "count" {
		ip.i++
		c.Kind = InvariantCount
		ip.punct("(")
		c.Relation = ip.name("relation name")
		ip.punct(")")
		switch op := ip.peek().text; op {
		case "==", "<=", ">=":
			c.Op = op
			ip.i++
		default:
			ip.expect(`"==", "<=" or ">="`)
			return c
		}
		t := ip.peek()
		switch {
		case t.text == "value":
			ip.i++
			ip.punct("(")
			c.Value = ip.name("relation name")
			ip.punct(")")
		case t.text != "" && isDigit(t.text[0]):
			n, err := strconv.Atoi(t.text)
			if err != nil || n > 1_000_000_000 {
				ip.errf(t.pos, fmt.Sprintf("invalid bound %q: use a decimal number up to 1000000000", t.text))
				ip.failed = true
				return c
			}
			c.N = n
			ip.i++
		default:
			ip.expect("a number or value(relation)")
			return c
		}
	} else {
		c.Relation = ip.name(`relation name or "count"`)
		c.Kind = InvariantNonEmpty
		if ip.peek().text == "within" {
			ip.i++
			c.Kind = InvariantWithin
			c.Target = ip.name("permission name after \"within\"")
		}
	}
	if !ip.failed && ip.peek().text != "" {
		ip.expect("the end of the condition")
	}
	return c
}

// declareInvariant adds an invariant to def, reporting a duplicate name.
// Its names are resolved by resolveInvariants, once every member of every
// definition is declared.
func (c *checker) declareInvariant(def *Definition, d *InvariantDecl, via *PartialRef) {
	if !c.uses["invariants"] {
		// The parser only builds an InvariantDecl under "use invariants".
		return
	}
	c.checkName(d.Name, "invariant")
	at := d.Name.Pos()
	if via != nil {
		at = via.Name.Pos()
	}
	for _, prev := range def.Invariants {
		if prev.Name == d.Name.Name {
			c.errorf(at, "duplicate invariant %q on definition %q (first declared at %s)", d.Name.Name, def.Name, c.atPosition(prev.Pos))
			return
		}
	}
	inv := &Invariant{Name: d.Name.Name, Definition: def, Doc: d.Doc.Text(), Pos: c.position(d.Name.Pos())}
	def.Invariants = append(def.Invariants, inv)
	if c.invDecls == nil {
		c.invDecls = map[*Invariant]*InvariantDecl{}
	}
	c.invDecls[inv] = d
}

// resolveInvariants resolves the names of every invariant's condition.
func (c *checker) resolveInvariants() {
	for _, def := range c.relDefs {
		for _, inv := range def.Invariants {
			d := c.invDecls[inv]
			if d.Cond == nil {
				continue // a syntax error, already reported
			}
			cond := d.Cond
			inv.Text = cond.String()
			inv.Kind, inv.Op, inv.N = cond.Kind, cond.Op, cond.N
			relation := func(id *Ident, role string) *Relation {
				r := def.Relations[id.Name]
				switch {
				case r == nil:
					c.errorf(id.Pos(), "unknown relation %q on definition %q in invariant %q", id.Name, def.Name, inv.Name)
				case r.IsPermission:
					c.errorf(id.Pos(), "%s must be a relation, and %q is a permission on definition %q (invariants read stored relationships)", role, id.Name, def.Name)
					return nil
				}
				return r
			}
			if cond.Guard != nil {
				inv.Guard = relation(cond.Guard, "the relation before \"requires\"")
			}
			switch cond.Kind {
			case InvariantCount:
				inv.Relation = relation(cond.Relation, "the counted relation")
				if cond.Value != nil {
					inv.Value = relation(cond.Value, "the relation of value()")
					if inv.Value != nil {
						c.checkValueRelation(cond.Value, inv.Value)
					}
				}
			case InvariantNonEmpty:
				inv.Relation = relation(cond.Relation, "the required relation")
			case InvariantWithin:
				inv.Relation = relation(cond.Relation, "the relation before \"within\"")
				inv.Target = def.Relations[cond.Target.Name]
				if inv.Target == nil {
					c.errorf(cond.Target.Pos(), "unknown permission or relation %q on definition %q in invariant %q", cond.Target.Name, def.Name, inv.Name)
				}
			}
		}
	}
}

// checkValueRelation requires the relation of value() to hold plain
// objects, whose ids are the numbers.
func (c *checker) checkValueRelation(id *Ident, r *Relation) {
	for _, a := range r.Allowed {
		if a.Wildcard || a.Relation != "" || a.Caveat != nil {
			c.errorf(id.Pos(), "relation %q of value() must allow only plain objects (their ids are the numbers), not %s", r.Name, subjectKey(a))
			return
		}
	}
}

// atInvariant reports whether the current token is the word "invariant"
// in a file that declared "use invariants".
func (p *parser) atInvariant() bool {
	return p.tok == IDENT && p.lit == "invariant" && p.uses["invariants"]
}

// invariant prints an invariant with its condition in canonical form (as
// written when it does not parse).
func (p *printer) invariant(d *InvariantDecl) {
	p.b.WriteString("invariant ")
	p.b.WriteString(d.Name.Name)
	p.b.WriteString(" = ")
	if d.Cond != nil {
		p.b.WriteString(d.Cond.String())
	} else {
		p.b.WriteString(d.Body)
	}
}

// diffInvariants appends the invariants added, removed and changed from od
// to nd (either may be nil), in source order.
func diffInvariants(out []Change, od, nd *Definition) []Change {
	find := func(d *Definition, name string) *Invariant {
		if d == nil {
			return nil
		}
		for _, inv := range d.Invariants {
			if inv.Name == name {
				return inv
			}
		}
		return nil
	}
	if od != nil {
		for _, o := range od.Invariants {
			switch n := find(nd, o.Name); {
			case n == nil:
				out = append(out, Change{Kind: InvariantRemoved, Definition: od.Name, Name: o.Name, Detail: o.Text})
			case n.Text != o.Text:
				out = append(out, Change{Kind: InvariantChanged, Definition: od.Name, Name: o.Name, Detail: o.Text + " => " + n.Text})
			}
		}
	}
	if nd != nil {
		for _, n := range nd.Invariants {
			if find(od, n.Name) == nil {
				out = append(out, Change{Kind: InvariantAdded, Definition: nd.Name, Name: n.Name, Detail: n.Text})
			}
		}
	}
	return out
}
