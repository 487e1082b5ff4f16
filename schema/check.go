package schema

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pemba-authz/pemba/schema/names"
)

// Compile parses, checks and compiles schema source. Its error is an
// ErrorList holding every syntax and semantic error, sorted by position.
// Semantic checks run only when the source parses without error.
func Compile(filename, src string) (*Schema, error) {
	f, err := Parse(filename, src)
	if err != nil {
		return nil, err
	}
	return Check(f)
}

// Check resolves every name of a parsed file, rejects what cannot be
// evaluated, and builds the compiled Schema. Its error is an ErrorList with
// one error per problem, each with a one-sentence reason. It is meant for a
// File that parsed without errors; on a partial tree it does not panic but
// may report consequences of the syntax errors.
func Check(f *File) (*Schema, error) {
	return check([]*File{f}, f.src, false)
}

// check compiles the declarations of files (a root file and the files it
// imports, or one file). With imports false, an import declaration is an
// error: only LoadFiles can resolve one.
func check(files []*File, source string, imports bool) (*Schema, error) {
	c := &checker{
		files:    files,
		imports:  imports,
		s:        &Schema{Definitions: map[string]*Definition{}, Caveats: map[string]*Caveat{}, Source: source},
		defs:     map[string]*DefinitionDecl{},
		partials: map[string]*PartialDecl{},
		uses:     map[string]bool{},
	}
	c.collect()
	c.resolveRelations()
	c.resolveAnnotations()
	c.resolvePermissions()
	c.resolveInvariants()
	c.findCycles()
	c.typecheck()
	c.compileCaveats()
	if len(c.errs) > 0 {
		c.errs.Sort()
		return nil, c.errs
	}
	return c.s, nil
}

type checker struct {
	files   []*File
	imports bool // import declarations were resolved by LoadFiles
	s       *Schema
	errs    ErrorList

	uses     map[string]bool            // features declared by any file
	defs     map[string]*DefinitionDecl // declarations by name, first wins
	partials map[string]*PartialDecl    // partials by name, first wins
	cycles   map[*PartialRef]bool       // references closing a reported cycle
	caveats  []*caveatDecl              // declared caveats, in order
	members  map[*Relation]Member       // each compiled relation's declaration
	relDefs  []*Definition              // compiled definitions, in order
	defDecls []*DefinitionDecl          // their declarations, parallel to relDefs
	invDecls map[*Invariant]*InvariantDecl
	// arrows memoizes where an arrow over a relation leads, by target
	// name: arrows that repeat one (r->member in many permissions) share
	// one Targets map, so checking them is linear in the schema's size,
	// not in arrows times the relation's types.
	arrows map[arrowKey]*arrowTargetsOf
	// expanded counts the members expandMembers produced, against
	// maxExpandedMembers; tooManyMembers is set once that is reported.
	expanded       int
	tooManyMembers bool
}

type arrowKey struct {
	rel    *Relation
	target string
}

type arrowTargetsOf struct {
	targets map[string]*Relation
	types   []string // the object types followed, for the error
}

type caveatDecl struct {
	decl   *CaveatDecl
	caveat *Caveat
	types  []*paramType // nil entries for invalid types
}

// position expands p in whichever file it belongs to.
func (c *checker) position(p Pos) Position {
	for _, f := range c.files {
		if f.lines.contains(p) {
			return f.Position(p)
		}
	}
	return c.files[0].Position(p)
}

func (c *checker) errorf(pos Pos, format string, args ...any) {
	switch n := len(c.errs); {
	case n > maxCheckErrors:
		return
	case n == maxCheckErrors:
		c.errs.Add(c.position(pos), fmt.Sprintf("more than %d errors; the rest are not reported", maxCheckErrors))
		return
	}
	c.errs.Add(c.position(pos), fmt.Sprintf(format, args...))
}

// maxCheckErrors bounds the errors the checker reports: a schema with
// more is not worth listing further, and a hostile one could make the
// list larger than the schema.
const maxCheckErrors = 1000

// at renders a position as line:col for "first declared at" notes, with
// the file name when the schema spans several files.
func (c *checker) at(pos Pos) string {
	p := c.position(pos)
	if len(c.files) > 1 {
		return p.String()
	}
	return fmt.Sprintf("%d:%d", p.Line, p.Column)
}

// checkName reports an invalid relation, permission, parameter or last
// segment of a type or caveat name (the rules live in package names).
func (c *checker) checkName(id *Ident, what string) {
	if names.CheckName(id.Name) != nil {
		c.errorf(id.Pos(), "invalid %s name %q: use lowercase letters, digits and \"_\", start with a letter, do not end with \"_\", at most %d characters", what, id.Name, names.MaxNameLen)
	}
}

// checkTypeName reports invalid segments of a type or caveat name, and a
// name longer than names.MaxTypeLen.
func (c *checker) checkTypeName(t *TypeName, what string) {
	for _, p := range t.Prefixes {
		if names.CheckPrefix(p.Name) != nil {
			c.errorf(p.Pos(), "invalid prefix %q of %s name %q: use lowercase letters, digits and \"_\", start with a letter, do not end with \"_\", at most %d characters", p.Name, what, t.String(), names.MaxPrefixLen)
		}
	}
	c.checkName(t.Name, what)
	if s := t.String(); len(s) > names.MaxTypeLen {
		c.errorf(t.Pos(), "%s name %q is longer than %d characters", what, s, names.MaxTypeLen)
	}
}

// knownFeatures are the words "use" accepts.
const knownFeatures = "expiration, import, invariants, partial, self, typechecking"

// decls lists the declarations of every file, each file's imports before
// it, as SpiceDB hoists them.
func (c *checker) decls() []Decl {
	var out []Decl
	for _, f := range declOrder(c.files) {
		out = append(out, f.Decls...)
	}
	return out
}

// collect declares every definition, relation, permission and caveat,
// reporting invalid and duplicate names.
func (c *checker) collect() {
	c.members = map[*Relation]Member{}
	caveatsSeen := map[string]*CaveatDecl{}
	decls := c.decls()
	for _, f := range c.files {
		seen := map[string]bool{}
		for _, d := range f.Decls {
			d, ok := d.(*UseDecl)
			if !ok {
				continue
			}
			switch name := d.Feature.Name; {
			case !strings.Contains(", "+knownFeatures+",", ", "+name+","):
				c.errorf(d.Feature.Pos(), "unknown feature %q after \"use\" (known: %s)", name, knownFeatures)
			case seen[name]:
				c.errorf(d.Feature.Pos(), "duplicate \"use %s\"", name)
			}
			seen[d.Feature.Name] = true
			c.uses[d.Feature.Name] = true
		}
	}
	for _, d := range decls {
		switch d := d.(type) {
		case *ImportDecl:
			if !c.imports {
				c.errorf(d.Pos(), "import %s cannot be resolved in a schema given as one text: compile it from its file (pemba validate, pemba schema write FILE), which reads the imported files", d.Lit)
			}
		case *PartialDecl:
			c.checkName(d.Name, "partial")
			if first, ok := c.partials[d.Name.Name]; ok {
				c.errorf(d.Name.Pos(), "duplicate partial %q (first declared at %s)", d.Name.Name, c.at(first.Name.Pos()))
				continue
			}
			c.partials[d.Name.Name] = d
		}
	}
	for _, d := range decls {
		switch d := d.(type) {
		case *CaveatDecl:
			c.checkTypeName(d.Name, "caveat")
			cname := d.Name.String()
			if first, ok := caveatsSeen[cname]; ok {
				c.errorf(d.Name.Pos(), "duplicate caveat %q (first declared at %s)", cname, c.at(first.Name.Pos()))
				continue
			}
			if p, ok := c.partials[cname]; ok {
				c.errorf(d.Name.Pos(), "caveat %q has the same name as the partial declared at %s", cname, c.at(p.Name.Pos()))
			}
			caveatsSeen[cname] = d
			cv := &Caveat{Name: cname, Expression: strings.TrimSpace(d.Expr), Pos: c.position(d.Name.Pos())}
			cd := &caveatDecl{decl: d, caveat: cv}
			params := map[string]*Ident{}
			for _, p := range d.Params {
				if first, ok := params[p.Name.Name]; ok {
					c.errorf(p.Name.Pos(), "duplicate parameter %q in caveat %q (first declared at %s)", p.Name.Name, cname, c.at(first.Pos()))
					continue
				}
				params[p.Name.Name] = p.Name
				pt, err := resolveParamType(p.Type)
				if err != nil {
					c.errorf(err.pos, "%s", err.msg)
				}
				cv.Params = append(cv.Params, CaveatParam{Name: p.Name.Name, Type: p.Type.String()})
				cd.types = append(cd.types, pt)
			}
			c.caveats = append(c.caveats, cd)
			c.s.Caveats[cv.Name] = cv
		case *DefinitionDecl:
			name := d.Name.String()
			c.checkTypeName(d.Name, "definition")
			if first, ok := c.defs[name]; ok {
				c.errorf(d.Name.Pos(), "duplicate definition %q (first declared at %s)", name, c.at(first.Name.Pos()))
				continue
			}
			if p, ok := c.partials[name]; ok {
				c.errorf(d.Name.Pos(), "definition %q has the same name as the partial declared at %s", name, c.at(p.Name.Pos()))
			}
			c.defs[name] = d
			def := &Definition{Name: name, Relations: map[string]*Relation{}, Doc: d.Doc.Text(), Pos: c.position(d.Name.Pos())}
			c.s.Definitions[name] = def
			c.relDefs = append(c.relDefs, def)
			c.defDecls = append(c.defDecls, d)
			for _, em := range c.expandMembers(nil, d.Members, nil, nil) {
				if inv, ok := em.m.(*InvariantDecl); ok {
					c.declareInvariant(def, inv, em.via)
					continue
				}
				c.declareMember(def, em)
			}
		}
	}
}

// expandedMember is a member of a definition, with the outermost partial
// reference it came through (nil when written in the definition).
type expandedMember struct {
	m   Member
	via *PartialRef
}

// Bounds of partial expansion: a partial that includes another twice, and
// so on n times over, expands to 2^n members from a few hundred bytes.
const (
	maxExpandedMembers = 500_000 // members of all definitions, expanded
	maxPartialNesting  = 100
)

// expandMembers appends to out the members ms, partial references
// replaced by the members of their partials, recursively (at most
// maxPartialNesting deep); stack holds the partials being expanded, to
// report cycles.
func (c *checker) expandMembers(out []expandedMember, ms []Member, via *PartialRef, stack []*PartialDecl) []expandedMember {
	for _, m := range ms {
		// Members and references both count: partials that only include
		// others can multiply too.
		if c.expanded++; c.expanded > maxExpandedMembers {
			if !c.tooManyMembers {
				c.tooManyMembers = true
				c.errorf(m.Pos(), "the schema has more than %d members once partials are expanded: a partial included many times over, directly or through others, multiplies", maxExpandedMembers)
			}
			return out
		}
		ref, ok := m.(*PartialRef)
		if !ok {
			out = append(out, expandedMember{m, via})
			continue
		}
		if len(stack) >= maxPartialNesting {
			c.errorf(ref.Name.Pos(), "partials nested more than %d deep", maxPartialNesting)
			continue
		}
		p := c.partials[ref.Name.Name]
		if p == nil {
			what := "partial"
			if c.defs[ref.Name.Name] != nil || c.s.Caveats[ref.Name.Name] != nil {
				what = "partial (only a partial can be referenced with \"...\")"
			}
			c.errorf(ref.Name.Pos(), "unknown %s %q", what, ref.Name.Name)
			continue
		}
		if i := slicesIndex(stack, p); i >= 0 {
			names := make([]string, 0, len(stack)-i+1)
			for _, q := range stack[i:] {
				names = append(names, q.Name.Name)
			}
			names = append(names, p.Name.Name)
			if !c.cycles[ref] { // once, however many definitions use it
				if c.cycles == nil {
					c.cycles = map[*PartialRef]bool{}
				}
				c.cycles[ref] = true
				c.errorf(ref.Name.Pos(), "partial %q includes itself (%s)", p.Name.Name, strings.Join(names, " -> "))
			}
			continue
		}
		outer := via
		if outer == nil {
			outer = ref
		}
		out = c.expandMembers(out, p.Members, outer, append(stack, p))
	}
	return out
}

func slicesIndex(s []*PartialDecl, p *PartialDecl) int {
	for i, q := range s {
		if q == p {
			return i
		}
	}
	return -1
}

// declareMember adds a relation or permission to def.
func (c *checker) declareMember(def *Definition, em expandedMember) {
	m := em.m
	id := m.MemberName()
	_, isPerm := m.(*PermissionDecl)
	kind := kindName(isPerm)
	c.checkName(id, kind)
	if id.Name == "self" && c.uses["self"] {
		c.errorf(id.Pos(), "%q is a keyword after \"use self\" and cannot name a %s", id.Name, kind)
	}
	// An error about a member brought in by a partial is reported at the
	// reference in the definition, which is what a reader must change.
	at, from := id.Pos(), ""
	if em.via != nil {
		at, from = em.via.Name.Pos(), fmt.Sprintf(" (from partial %q)", em.via.Name.Name)
	}
	if prev, ok := def.Relations[id.Name]; ok {
		if prev.IsPermission == isPerm {
			c.errorf(at, "duplicate %s %q%s on definition %q (first declared at %s)", kind, id.Name, from, def.Name, c.atPosition(prev.Pos))
		} else {
			c.errorf(at, "%s %q%s has the same name as the %s declared at %s on definition %q", kind, id.Name, from, kindName(prev.IsPermission), c.atPosition(prev.Pos), def.Name)
		}
		return
	}
	var doc *CommentGroup
	switch m := m.(type) {
	case *RelationDecl:
		doc = m.Doc
	case *PermissionDecl:
		doc = m.Doc
	}
	r := &Relation{
		Name:         id.Name,
		Definition:   def,
		Index:        c.s.NumRelations,
		IsPermission: isPerm,
		Doc:          doc.Text(),
		Pos:          c.position(id.Pos()),
	}
	c.s.NumRelations++
	def.Relations[r.Name] = r
	def.Ordered = append(def.Ordered, r)
	c.members[r] = m
}

// atPosition renders an expanded position as at does.
func (c *checker) atPosition(p Position) string {
	if len(c.files) > 1 {
		return p.String()
	}
	return fmt.Sprintf("%d:%d", p.Line, p.Column)
}

func kindName(isPerm bool) string {
	if isPerm {
		return "permission"
	}
	return "relation"
}

// resolveRelations resolves every relation's type list.
func (c *checker) resolveRelations() {
	for _, def := range c.relDefs {
		for _, r := range def.Ordered {
			rd, ok := c.members[r].(*RelationDecl)
			if !ok {
				continue
			}
			seen := map[string]bool{}
			for _, t := range rd.Types {
				a := c.resolveTypeRef(r, t)
				if a == nil {
					continue
				}
				key := subjectKey(a)
				if seen[key] {
					c.errorf(t.Pos(), "duplicate subject type %q in relation %q", key, r.Name)
					continue
				}
				seen[key] = true
				r.Allowed = append(r.Allowed, a)
			}
		}
	}
}

// subjectKey renders an allowed subject as written canonically:
// user, group#member, user:*, user with c and expiration.
func subjectKey(a *AllowedSubject) string {
	s := a.Type
	if a.Wildcard {
		s += ":*"
	}
	if a.Relation != "" {
		s += "#" + a.Relation
	}
	switch {
	case a.Caveat != nil && a.Expiration:
		s += " with " + a.Caveat.Name + " and expiration"
	case a.Caveat != nil:
		s += " with " + a.Caveat.Name
	case a.Expiration:
		s += " with expiration"
	}
	return s
}

func (c *checker) resolveTypeRef(r *Relation, t *TypeRef) *AllowedSubject {
	typ := t.Type.String()
	a := &AllowedSubject{Type: typ, Wildcard: t.Wildcard.IsValid(), Expiration: t.Expiration != nil}
	ok := true
	def := c.s.Definitions[typ]
	if def == nil {
		c.errorf(t.Type.Pos(), "unknown definition %q in the type list of relation %q", typ, r.Name)
		ok = false
	}
	if t.Relation != nil {
		a.Relation = t.Relation.Name
		if a.Wildcard {
			c.errorf(t.Relation.Pos(), "wildcard subject %s:* cannot have a relation (#%s)", typ, a.Relation)
			ok = false
		} else if def != nil {
			a.Target = def.Relations[a.Relation]
			if a.Target == nil {
				c.errorf(t.Relation.Pos(), "unknown relation %q on definition %q", a.Relation, typ)
				ok = false
			}
		}
	}
	if t.Caveat != nil {
		a.Caveat = c.s.Caveats[t.Caveat.String()]
		if a.Caveat == nil {
			c.errorf(t.Caveat.Pos(), "unknown caveat %q", t.Caveat.String())
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return a
}

// resolvePermissions builds every permission's rewrite tree.
func (c *checker) resolvePermissions() {
	for _, def := range c.relDefs {
		for _, r := range def.Ordered {
			pd, ok := c.members[r].(*PermissionDecl)
			if !ok || pd.Expr == nil {
				continue
			}
			r.Rewrite = c.rewrite(def, pd.Expr)
			if c.uses["typechecking"] {
				for _, t := range pd.Types {
					r.TypeAnnotation = append(r.TypeAnnotation, t.String())
				}
			}
		}
	}
}

func (c *checker) rewrite(def *Definition, x Expr) *Rewrite {
	switch x := x.(type) {
	case *ParenExpr:
		return c.rewrite(def, x.X)
	case *NilExpr:
		return &Rewrite{Kind: RewriteNil, Pos: c.position(x.Pos())}
	case *SelfExpr:
		return &Rewrite{Kind: RewriteSelf, Pos: c.position(x.Pos())}
	case *Ident:
		rel := def.Relations[x.Name]
		if rel == nil {
			hint := ""
			if x.Name == "self" {
				hint = " (to mean the object itself, declare \"use self\" at the top of the file)"
			}
			c.errorf(x.Pos(), "unknown relation %q on definition %q%s", x.Name, def.Name, hint)
			return nil
		}
		return &Rewrite{Kind: RewriteComputed, Relation: rel, Pos: c.position(x.Pos())}
	case *ArrowExpr:
		return c.arrow(def, x)
	case *BinaryExpr:
		var kind RewriteKind
		switch x.Op {
		case PLUS:
			kind = RewriteUnion
		case AMP:
			kind = RewriteIntersection
		default:
			kind = RewriteExclusion
		}
		l, r := c.rewrite(def, x.X), c.rewrite(def, x.Y)
		if l == nil || r == nil {
			return nil
		}
		n := &Rewrite{Kind: kind, Pos: c.position(x.OpPos)}
		// Union and intersection are associative: flatten nested nodes of
		// the same kind so the evaluator sees one n-ary node.
		for _, ch := range []*Rewrite{l, r} {
			if kind != RewriteExclusion && ch.Kind == kind {
				n.Children = append(n.Children, ch.Children...)
			} else {
				n.Children = append(n.Children, ch)
			}
		}
		return n
	}
	return nil // BadExpr: already reported by the parser
}

func (c *checker) arrow(def *Definition, x *ArrowExpr) *Rewrite {
	rel := def.Relations[x.Left.Name]
	spelled := x.Left.Name + "->" + x.Target.Name
	if x.Func != "" {
		spelled = x.Left.Name + "." + x.Func + "(" + x.Target.Name + ")"
	}
	if rel == nil {
		c.errorf(x.Left.Pos(), "unknown relation %q on definition %q", x.Left.Name, def.Name)
		return nil
	}
	if rel.IsPermission {
		c.errorf(x.Left.Pos(), "the left side of arrow %s must be a relation, not permission %q", spelled, rel.Name)
		return nil
	}
	rd := c.members[rel].(*RelationDecl)
	if len(rel.Allowed) != len(rd.Types) {
		return nil // a type of the relation did not resolve; already reported
	}
	key := arrowKey{rel, x.Target.Name}
	at := c.arrows[key]
	if at == nil {
		at = &arrowTargetsOf{targets: map[string]*Relation{}}
		for _, a := range rel.Allowed {
			if a.Wildcard {
				continue // a wildcard names no object to follow
			}
			sub := c.s.Definitions[a.Type]
			if _, done := at.targets[a.Type]; done || sub == nil {
				continue
			}
			at.types = append(at.types, a.Type)
			if t := sub.Relations[x.Target.Name]; t != nil {
				at.targets[a.Type] = t
			}
		}
		if c.arrows == nil {
			c.arrows = map[arrowKey]*arrowTargetsOf{}
		}
		c.arrows[key] = at
	}
	if len(at.targets) == 0 {
		if len(at.types) == 0 {
			c.errorf(x.Left.Pos(), "arrow %s follows relation %q, which allows only wildcard subjects", spelled, rel.Name)
		} else {
			c.errorf(x.Target.Pos(), "%q is not a relation or permission on any subject type of %q (%s)", x.Target.Name, rel.Name, strings.Join(at.types, ", "))
		}
		return nil
	}
	return &Rewrite{
		Kind:       RewriteArrow,
		Relation:   rel,
		TargetName: x.Target.Name,
		Targets:    at.targets, // shared with every arrow of key: read only
		ArrowAll:   x.Func == "all",
		Pos:        c.position(x.Left.Pos()),
	}
}

// findCycles rejects permissions that depend on themselves through
// references on the same object only (a = b; b = a): such a permission has
// no meaning. Recursion through arrows is legitimate (folder parent->view)
// and is not a cycle here.
func (c *checker) findCycles() {
	for _, def := range c.relDefs {
		edges := map[*Relation][]*Relation{}
		for _, r := range def.Ordered {
			if r.Rewrite != nil {
				edges[r] = computedPermissions(r.Rewrite, nil)
			}
		}
		// Only a permission in a strongly connected component of two or
		// more, or naming itself, lies on a cycle; the search for its
		// shortest cycle stays inside its component. A chain of 20,000
		// permissions (p1 = p0, p2 = p1, ...) searched from each one took
		// minutes.
		comp, size := components(def.Ordered, edges)
		reported := map[*Relation]bool{}
		n := 0
		for _, r := range def.Ordered {
			if !r.IsPermission || reported[r] || (size[comp[r]] < 2 && !slices.Contains(edges[r], r)) {
				continue
			}
			if n++; n > maxCycleReports {
				break
			}
			path := cyclePath(r, edges, comp)
			if path == nil {
				continue
			}
			for _, p := range path {
				reported[p] = true
			}
			names := make([]string, 0, len(path)+1)
			for _, p := range path {
				names = append(names, p.Name)
			}
			names = append(names, r.Name)
			c.errs.Add(r.Pos, fmt.Sprintf("permission %q refers to itself (%s); a permission cannot be defined in terms of itself", r.Name, strings.Join(names, " -> ")))
		}
	}
}

// maxCycleReports bounds the self-referring permissions reported per
// definition: each report searches the permission's component.
const maxCycleReports = 100

// components numbers the strongly connected components of the graph of
// nodes and edges (Components over the nodes' indexes), and returns each
// component's size.
func components(nodes []*Relation, edges map[*Relation][]*Relation) (map[*Relation]int, []int) {
	at := make(map[*Relation]int32, len(nodes))
	for i, r := range nodes {
		at[r] = int32(i)
	}
	out := make([][]int32, len(nodes))
	for i, r := range nodes {
		for _, w := range edges[r] {
			if j, ok := at[w]; ok {
				out[i] = append(out[i], j)
			}
		}
	}
	ids := Components(out)
	comp := make(map[*Relation]int, len(nodes))
	var size []int
	for i, r := range nodes {
		id := int(ids[i])
		comp[r] = id
		for len(size) <= id {
			size = append(size, 0)
		}
		size[id]++
	}
	return comp, size
}

// computedPermissions appends the permissions of the same object that rw
// references directly (not through arrows).
func computedPermissions(rw *Rewrite, out []*Relation) []*Relation {
	switch rw.Kind {
	case RewriteComputed:
		if rw.Relation.IsPermission {
			out = append(out, rw.Relation)
		}
	case RewriteUnion, RewriteIntersection, RewriteExclusion:
		for _, ch := range rw.Children {
			out = computedPermissions(ch, out)
		}
	}
	return out
}

// cyclePath returns a shortest path start -> ... -> start (without the
// final start), or nil when start does not reach itself. The path lies in
// start's strongly connected component (comp), so the search stays there.
func cyclePath(start *Relation, edges map[*Relation][]*Relation, comp map[*Relation]int) []*Relation {
	prev := map[*Relation]*Relation{}
	queue := []*Relation{start}
	seen := map[*Relation]bool{}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range edges[n] {
			if m == start {
				var path []*Relation
				for x := n; x != nil; x = prev[x] {
					path = append(path, x)
					if x == start {
						break
					}
				}
				for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
					path[i], path[j] = path[j], path[i]
				}
				return path
			}
			if !seen[m] && comp[m] == comp[start] {
				seen[m] = true
				prev[m] = n
				queue = append(queue, m)
			}
		}
	}
	return nil
}

// typecheck enforces, under "use typechecking", that the type annotation
// of a permission ("permission view: user | team = ...") lists every
// subject type the permission can reach, as SpiceDB does: the terminal
// types of its relations, followed through subject sets and arrows. As in
// SpiceDB, self contributes no type, and an annotation naming a type that
// is not reachable (or not defined) is accepted. Without "use
// typechecking", annotations are parsed and ignored.
func (c *checker) typecheck() {
	if !c.uses["typechecking"] {
		return
	}
	budget := typecheckSteps
	for _, def := range c.relDefs {
		for _, r := range def.Ordered {
			if len(r.TypeAnnotation) == 0 {
				continue
			}
			types, ok := terminalTypes(r, &budget)
			if !ok {
				pd := c.members[r].(*PermissionDecl)
				c.errorf(pd.Colon, "type annotations take more than %d steps to check (at permission %q of definition %q): annotate fewer permissions, or drop \"use typechecking\"", typecheckSteps, r.Name, def.Name)
				return
			}
			for _, typ := range types {
				if !slicesContains(r.TypeAnnotation, typ) {
					pd := c.members[r].(*PermissionDecl)
					c.errorf(pd.Colon, "incomplete type annotation on permission %q of definition %q: subject type %q is reachable but not listed (%s)", r.Name, def.Name, typ, strings.Join(r.TypeAnnotation, " | "))
					break
				}
			}
		}
	}
}

// maxTypecheckSteps bounds the relations and rewrite nodes that checking
// a schema's type annotations visits, all annotated permissions together:
// each annotation is checked by a walk over what its permission reaches,
// so many annotated permissions over a long chain multiply.
const maxTypecheckSteps = 30_000_000

// typecheckSteps is maxTypecheckSteps; tests lower it.
var typecheckSteps = maxTypecheckSteps

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// terminalTypes lists, in order of discovery, the object types of the
// subjects r can hold: plain and wildcard types of relations, reached
// through subject sets, computed references and arrows. The walk keeps
// its own stack (a chain of definitions must not recurse once per
// definition) in the order a recursive walk would take, and spends one of
// *budget per step; it stops, returning false, when the budget is spent.
func terminalTypes(r *Relation, budget *int) ([]string, bool) {
	type item struct {
		rel *Relation
		rw  *Rewrite
		typ string
	}
	var out []string
	seenType := map[string]bool{}
	seen := map[*Relation]bool{}
	stack := []item{{rel: r}}
	for len(stack) > 0 {
		if *budget--; *budget < 0 {
			return nil, false
		}
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch {
		case it.rw != nil:
			switch w := it.rw; w.Kind {
			case RewriteComputed:
				stack = append(stack, item{rel: w.Relation})
			case RewriteArrow:
				for i := len(w.Relation.Allowed) - 1; i >= 0; i-- {
					if t := w.Targets[w.Relation.Allowed[i].Type]; t != nil {
						stack = append(stack, item{rel: t})
					}
				}
			case RewriteUnion, RewriteIntersection, RewriteExclusion:
				for i := len(w.Children) - 1; i >= 0; i-- {
					stack = append(stack, item{rw: w.Children[i]})
				}
			}
		case it.rel != nil:
			x := it.rel
			if seen[x] {
				continue
			}
			seen[x] = true
			if x.Rewrite != nil {
				stack = append(stack, item{rw: x.Rewrite})
				continue
			}
			for i := len(x.Allowed) - 1; i >= 0; i-- {
				a := x.Allowed[i]
				if a.Relation != "" && !a.Wildcard {
					if a.Target != nil {
						stack = append(stack, item{rel: a.Target})
					}
					continue
				}
				stack = append(stack, item{typ: a.Type})
			}
		default:
			if !seenType[it.typ] {
				seenType[it.typ] = true
				out = append(out, it.typ)
			}
		}
	}
	return out, true
}
