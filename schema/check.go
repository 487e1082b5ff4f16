package schema

import (
	"fmt"
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
	c := &checker{
		f:    f,
		s:    &Schema{Definitions: map[string]*Definition{}, Caveats: map[string]*Caveat{}, Source: f.src},
		defs: map[string]*DefinitionDecl{},
	}
	c.collect()
	c.resolveRelations()
	c.resolvePermissions()
	c.findCycles()
	c.compileCaveats()
	if len(c.errs) > 0 {
		c.errs.Sort()
		return nil, c.errs
	}
	return c.s, nil
}

type checker struct {
	f    *File
	s    *Schema
	errs ErrorList

	defs     map[string]*DefinitionDecl // declarations by name, first wins
	caveats  []*caveatDecl              // declared caveats, in order
	members  map[*Relation]Member       // each compiled relation's declaration
	relDefs  []*Definition              // compiled definitions, in order
	defDecls []*DefinitionDecl          // their declarations, parallel to relDefs
}

type caveatDecl struct {
	decl   *CaveatDecl
	caveat *Caveat
	types  []*paramType // nil entries for invalid types
}

func (c *checker) errorf(pos Pos, format string, args ...any) {
	c.errs.Add(c.f.Position(pos), fmt.Sprintf(format, args...))
}

// at renders a position as line:col for "first declared at" notes.
func (c *checker) at(pos Pos) string {
	p := c.f.Position(pos)
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

// collect declares every definition, relation, permission and caveat,
// reporting invalid and duplicate names.
func (c *checker) collect() {
	c.members = map[*Relation]Member{}
	caveatsSeen := map[string]*CaveatDecl{}
	uses := map[string]bool{}
	for _, d := range c.f.Decls {
		switch d := d.(type) {
		case *UseDecl:
			if d.Feature.Name != "expiration" {
				c.errorf(d.Feature.Pos(), "unknown feature %q after \"use\" (known: expiration)", d.Feature.Name)
			} else if uses[d.Feature.Name] {
				c.errorf(d.Feature.Pos(), "duplicate \"use %s\"", d.Feature.Name)
			}
			uses[d.Feature.Name] = true
		case *CaveatDecl:
			c.checkTypeName(d.Name, "caveat")
			cname := d.Name.String()
			if first, ok := caveatsSeen[cname]; ok {
				c.errorf(d.Name.Pos(), "duplicate caveat %q (first declared at %s)", cname, c.at(first.Name.Pos()))
				continue
			}
			caveatsSeen[cname] = d
			cv := &Caveat{Name: cname, Expression: strings.TrimSpace(d.Expr), Pos: c.f.Position(d.Name.Pos())}
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
			c.defs[name] = d
			def := &Definition{Name: name, Relations: map[string]*Relation{}, Doc: d.Doc.Text(), Pos: c.f.Position(d.Name.Pos())}
			c.s.Definitions[name] = def
			c.relDefs = append(c.relDefs, def)
			c.defDecls = append(c.defDecls, d)
			for _, m := range d.Members {
				id := m.MemberName()
				_, isPerm := m.(*PermissionDecl)
				kind := kindName(isPerm)
				c.checkName(id, kind)
				if prev, ok := def.Relations[id.Name]; ok {
					if prev.IsPermission == isPerm {
						c.errorf(id.Pos(), "duplicate %s %q on definition %q (first declared at %d:%d)", kind, id.Name, name, prev.Pos.Line, prev.Pos.Column)
					} else {
						c.errorf(id.Pos(), "%s %q has the same name as the %s declared at %d:%d on definition %q", kind, id.Name, kindName(prev.IsPermission), prev.Pos.Line, prev.Pos.Column, name)
					}
					continue
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
					Pos:          c.f.Position(id.Pos()),
				}
				c.s.NumRelations++
				def.Relations[r.Name] = r
				def.Ordered = append(def.Ordered, r)
				c.members[r] = m
			}
		}
	}
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
		}
	}
}

func (c *checker) rewrite(def *Definition, x Expr) *Rewrite {
	switch x := x.(type) {
	case *ParenExpr:
		return c.rewrite(def, x.X)
	case *NilExpr:
		return &Rewrite{Kind: RewriteNil, Pos: c.f.Position(x.Pos())}
	case *Ident:
		rel := def.Relations[x.Name]
		if rel == nil {
			c.errorf(x.Pos(), "unknown relation %q on definition %q", x.Name, def.Name)
			return nil
		}
		return &Rewrite{Kind: RewriteComputed, Relation: rel, Pos: c.f.Position(x.Pos())}
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
		n := &Rewrite{Kind: kind, Pos: c.f.Position(x.OpPos)}
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
	n := &Rewrite{
		Kind:       RewriteArrow,
		Relation:   rel,
		TargetName: x.Target.Name,
		Targets:    map[string]*Relation{},
		ArrowAll:   x.Func == "all",
		Pos:        c.f.Position(x.Left.Pos()),
	}
	rd := c.members[rel].(*RelationDecl)
	if len(rel.Allowed) != len(rd.Types) {
		return nil // a type of the relation did not resolve; already reported
	}
	var types []string
	for _, a := range rel.Allowed {
		if a.Wildcard {
			continue // a wildcard names no object to follow
		}
		sub := c.s.Definitions[a.Type]
		if _, done := n.Targets[a.Type]; done || sub == nil {
			continue
		}
		types = append(types, a.Type)
		if t := sub.Relations[x.Target.Name]; t != nil {
			n.Targets[a.Type] = t
		}
	}
	if len(n.Targets) == 0 {
		if len(types) == 0 {
			c.errorf(x.Left.Pos(), "arrow %s follows relation %q, which allows only wildcard subjects", spelled, rel.Name)
		} else {
			c.errorf(x.Target.Pos(), "%q is not a relation or permission on any subject type of %q (%s)", x.Target.Name, rel.Name, strings.Join(types, ", "))
		}
		return nil
	}
	return n
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
		reported := map[*Relation]bool{}
		for _, r := range def.Ordered {
			if !r.IsPermission || reported[r] {
				continue
			}
			path := cyclePath(r, edges)
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
// final start), or nil when start does not reach itself.
func cyclePath(start *Relation, edges map[*Relation][]*Relation) []*Relation {
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
			if !seen[m] {
				seen[m] = true
				prev[m] = n
				queue = append(queue, m)
			}
		}
	}
	return nil
}
