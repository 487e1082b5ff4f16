package schema

import "sort"

// SubjectTypes lists, sorted, the object types of the plain subjects r
// can hold: the plain and wildcard types of relations, followed through
// subject sets, computed references and arrows, and for "self" the type
// of the object it stands for.
func (r *Relation) SubjectTypes() []string {
	types := map[string]bool{}
	seen := map[*Relation]bool{}
	var rel func(r *Relation)
	var rw func(owner *Relation, w *Rewrite)
	rel = func(r *Relation) {
		if r == nil || seen[r] {
			return
		}
		seen[r] = true
		if r.Rewrite != nil {
			rw(r, r.Rewrite)
			return
		}
		for _, a := range r.Allowed {
			if a.Relation != "" && !a.Wildcard {
				rel(a.Target)
				continue
			}
			types[a.Type] = true
		}
	}
	rw = func(owner *Relation, w *Rewrite) {
		switch w.Kind {
		case RewriteSelf:
			types[owner.Definition.Name] = true
		case RewriteComputed:
			rel(w.Relation)
		case RewriteArrow:
			for _, t := range w.Targets {
				rel(t)
			}
		case RewriteUnion, RewriteIntersection, RewriteExclusion:
			for _, ch := range w.Children {
				rw(owner, ch)
			}
		}
	}
	rel(r)
	out := make([]string, 0, len(types))
	for t := range types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
