package schema

import (
	"fmt"
	"sort"
	"strings"
)

// dump renders a compiled schema as deterministic text: everything the
// evaluator sees, without source positions. Two schemas with equal dumps
// evaluate identically. Tests and the fuzzer compare schemas with it.
func dump(s *Schema) string {
	var b strings.Builder
	fmt.Fprintf(&b, "relations %d\n", s.NumRelations)
	names := make([]string, 0, len(s.Definitions))
	for n := range s.Definitions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := s.Definitions[n]
		fmt.Fprintf(&b, "definition %s doc=%q\n", d.Name, d.Doc)
		for _, r := range d.Ordered {
			if d.Relations[r.Name] != r || r.Definition != d {
				fmt.Fprintf(&b, "  INCONSISTENT %s\n", r.Name)
			}
			var ann string
			if r.Deprecated {
				ann += fmt.Sprintf(" deprecated=%q", r.DeprecationMessage)
			}
			if r.RenamedFrom != "" {
				ann += " renamed_from=" + r.RenamedFrom
				if d.RenamedFrom[r.RenamedFrom] != r {
					ann += " INCONSISTENT"
				}
			}
			if r.IsPermission {
				fmt.Fprintf(&b, "  permission %s #%d doc=%q%s = %s\n", r.Name, r.Index, r.Doc, ann, dumpRewrite(r.Rewrite))
				continue
			}
			fmt.Fprintf(&b, "  relation %s #%d doc=%q%s:", r.Name, r.Index, r.Doc, ann)
			for _, a := range r.Allowed {
				b.WriteString(" [" + subjectKey(a))
				if a.Target != nil {
					fmt.Fprintf(&b, " ->%s#%s", a.Target.Definition.Name, a.Target.Name)
				}
				b.WriteString("]")
			}
			b.WriteByte('\n')
		}
	}
	names = names[:0]
	for n := range s.Caveats {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := s.Caveats[n]
		fmt.Fprintf(&b, "caveat %s(", c.Name)
		for i, p := range c.Params {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(p.Name + " " + p.Type)
		}
		fmt.Fprintf(&b, ") %q compiled=%t\n", c.Expression, c.program != nil)
	}
	return b.String()
}

func dumpRewrite(rw *Rewrite) string {
	if rw == nil {
		return "<nil>"
	}
	switch rw.Kind {
	case RewriteNil:
		return "nil"
	case RewriteSelf:
		return "self"
	case RewriteComputed:
		return rw.Relation.Name
	case RewriteArrow:
		fn := "any"
		if rw.ArrowAll {
			fn = "all"
		}
		ts := make([]string, 0, len(rw.Targets))
		for t, r := range rw.Targets {
			ts = append(ts, t+"#"+r.Name)
		}
		sort.Strings(ts)
		return fmt.Sprintf("%s.%s(%s)[%s]", rw.Relation.Name, fn, rw.TargetName, strings.Join(ts, " "))
	}
	op := map[RewriteKind]string{RewriteUnion: "+", RewriteIntersection: "&", RewriteExclusion: "-"}[rw.Kind]
	parts := make([]string, len(rw.Children))
	for i, c := range rw.Children {
		parts[i] = dumpRewrite(c)
	}
	return "(" + op + " " + strings.Join(parts, " ") + ")"
}
