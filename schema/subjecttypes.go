package schema

import "sort"

// SubjectTypes lists, sorted, the object types of the plain subjects r
// can hold: the plain and wildcard types of relations, followed through
// subject sets, computed references and arrows, and for "self" the type
// of the object it stands for. The walk keeps its own stack: a chain of
// definitions does not recurse once per definition.
func (r *Relation) SubjectTypes() []string {
	type item struct {
		owner *Relation // the relation whose rewrite w is
		w     *Rewrite
		rel   *Relation
	}
	types := map[string]bool{}
	seen := map[*Relation]bool{}
	stack := []item{{rel: r}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.w != nil {
			switch w := it.w; w.Kind {
			case RewriteSelf:
				types[it.owner.Definition.Name] = true
			case RewriteComputed:
				stack = append(stack, item{rel: w.Relation})
			case RewriteArrow:
				for _, t := range w.Targets {
					stack = append(stack, item{rel: t})
				}
			case RewriteUnion, RewriteIntersection, RewriteExclusion:
				for _, ch := range w.Children {
					stack = append(stack, item{owner: it.owner, w: ch})
				}
			}
			continue
		}
		x := it.rel
		if x == nil || seen[x] {
			continue
		}
		seen[x] = true
		if x.Rewrite != nil {
			stack = append(stack, item{owner: x, w: x.Rewrite})
			continue
		}
		for _, a := range x.Allowed {
			if a.Relation != "" && !a.Wildcard {
				stack = append(stack, item{rel: a.Target})
				continue
			}
			types[a.Type] = true
		}
	}
	out := make([]string, 0, len(types))
	for t := range types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
