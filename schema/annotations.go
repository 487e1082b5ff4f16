package schema

import (
	"fmt"
	"strings"

	"github.com/pemba-authz/pemba/schema/names"
)

// This file checks annotations: "@deprecated", "@deprecated(\"message\")"
// on relations and permissions, and "@renamed_from(old)" on relations.

// knownAnnotations are the annotation names the checker accepts.
const knownAnnotations = "@deprecated, @renamed_from"

// resolveAnnotations checks every member's annotations and records them
// on the compiled relations. It runs after every member is declared, so
// that an old name can be checked against the definition's members.
func (c *checker) resolveAnnotations() {
	for _, def := range c.relDefs {
		for _, r := range def.Ordered {
			var list []*Annotation
			switch m := c.members[r].(type) {
			case *RelationDecl:
				list = m.Annotations
			case *PermissionDecl:
				list = m.Annotations
			}
			seen := map[string]bool{}
			for _, a := range list {
				if seen[a.Name.Name] {
					c.errorf(a.Name.Pos(), "duplicate annotation @%s on %s %q", a.Name.Name, kindName(r.IsPermission), r.Name)
					continue
				}
				seen[a.Name.Name] = true
				switch a.Name.Name {
				case "deprecated":
					c.deprecated(r, a)
				case "renamed_from":
					c.renamedFrom(def, r, a)
				default:
					c.errorf(a.Name.Pos(), "unknown annotation @%s (known: %s)", a.Name.Name, knownAnnotations)
				}
			}
		}
	}
}

// deprecated records @deprecated or @deprecated("message").
func (c *checker) deprecated(r *Relation, a *Annotation) {
	switch {
	case len(a.Args) > 1:
		c.errorf(a.Args[1].ValuePos, "@deprecated takes at most one argument, a quoted message")
		return
	case len(a.Args) == 1 && !a.Args[0].IsString():
		c.errorf(a.Args[0].ValuePos, "the argument of @deprecated must be a quoted message, as in @deprecated(\"use owner\"), not %s", a.Args[0].Lit)
		return
	}
	r.Deprecated = true
	if len(a.Args) == 1 {
		r.DeprecationMessage = strings.TrimSpace(a.Args[0].Value())
	}
}

// renamedFrom records @renamed_from(old) on a relation: old must be a
// valid name that the definition no longer declares and that no other
// relation of it claims.
func (c *checker) renamedFrom(def *Definition, r *Relation, a *Annotation) {
	if r.IsPermission {
		c.errorf(a.Name.Pos(), "@renamed_from applies to relations only: permission %q stores no relationships to carry over", r.Name)
		return
	}
	if len(a.Args) != 1 || a.Args[0].IsString() {
		at := a.End()
		if len(a.Args) > 0 {
			at = a.Args[0].ValuePos
		}
		c.errorf(at, "@renamed_from takes one argument, the relation's old name, as in @renamed_from(admin)")
		return
	}
	old := a.Args[0]
	switch {
	case names.CheckName(old.Lit) != nil:
		c.errorf(old.ValuePos, "invalid relation name %q in @renamed_from", old.Lit)
		return
	case old.Lit == r.Name:
		c.errorf(old.ValuePos, "relation %q cannot be renamed from itself", r.Name)
		return
	}
	if other := def.Relations[old.Lit]; other != nil {
		c.errorf(old.ValuePos, "@renamed_from(%s) on relation %q: definition %q still declares %s %q (at %s); remove it, or drop the annotation", old.Lit, r.Name, def.Name, kindName(other.IsPermission), old.Lit, c.atPosition(other.Pos))
		return
	}
	if first := def.RenamedFrom[old.Lit]; first != nil {
		c.errorf(old.ValuePos, "@renamed_from(%s) on relation %q: relation %q already claims the old name %q", old.Lit, r.Name, first.Name, old.Lit)
		return
	}
	if def.RenamedFrom == nil {
		def.RenamedFrom = map[string]*Relation{}
	}
	def.RenamedFrom[old.Lit] = r
	r.RenamedFrom = old.Lit
}

// DeprecationNotice names a deprecated relation or permission for a warning:
// "relation document#admin is deprecated: use owner".
func (r *Relation) DeprecationNotice() string {
	s := fmt.Sprintf("%s %s#%s is deprecated", kindName(r.IsPermission), r.Definition.Name, r.Name)
	if r.DeprecationMessage != "" {
		s += ": " + r.DeprecationMessage
	}
	return s
}
