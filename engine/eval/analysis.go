package eval

import (
	"maps"
	"slices"

	"github.com/pemba-authz/pemba/schema"
)

// kind is a class of subjects: plain objects of a type (rel ""), or the
// subject sets type#rel.
type kind struct {
	typ, rel string
}

// userset is one subject-set type a relation accepts, deduplicated.
type userset struct {
	typ, rel string
	target   *schema.Relation
}

// directInfo summarises a relation's type list for direct lookups.
type directInfo struct {
	plain    map[string]bool // plain object types
	wildcard map[string]bool // types accepted as type:*
	sets     map[kind]bool   // subject-set kinds
	usersets []userset
}

// parentEdge is an edge of the reverse graph walked by LookupResources:
// reaching child on an object reaches parent.
type parentEdge struct {
	parent *schema.Relation
	// tupleset is set for arrows: the parent's relation whose subjects are
	// the child's objects.
	tupleset *schema.Relation
	// exact is false when the parent holds only if more than this edge
	// holds (intersection, exclusion, arrow-all): the result is then a
	// candidate that Check must confirm.
	exact bool
}

// analysis is what the evaluator derives from a schema once, in New.
// Slices are indexed by schema.Relation.Index.
type analysis struct {
	rels []*schema.Relation
	// contains: the subject kinds that can be members of a relation; a
	// check for any other kind is answered "no" without reading.
	contains []map[kind]bool
	// caveated: a caveat can influence the relation's value, so cached
	// results must be keyed by the request context.
	caveated []bool
	direct   []directInfo
	// heavy: evaluating the relation may fan out; worth a goroutine.
	heavy []bool

	// Reverse graph, for LookupResources.
	usersetParents  [][]parentEdge // relations accepting rel's subject set
	computedParents [][]parentEdge // permissions using rel on the same object
	arrowParents    [][]parentEdge // permissions reaching rel through an arrow
	plainParents    map[string][]*schema.Relation
	wildcardParents map[string][]*schema.Relation
	// selfParents: by object type, the permissions of that type using
	// self, where reaching the plain object type:id reaches them on id.
	selfParents map[string][]parentEdge
	// pure: no caveat can reach the relation and everything it is built
	// from is unions, computed references and arrows (no intersection,
	// exclusion or arrow-all), so walking up from a subject decides
	// membership exactly (see reverseMembers).
	pure []bool
	// reverseCheck: a pure relation that is recursive through subject
	// sets; a check walks up from the subject instead of down the whole
	// nested set.
	reverseCheck []bool
	// plans orders the children of unions and intersections cheapest
	// first and says whether to evaluate them in parallel.
	plans map[*schema.Rewrite]plan
	// relevant[g] marks the relations from which g can be reached by the
	// reverse walk (the forward closure of g over positive positions).
	relevant [][]bool

	// positive is the reverse graph above (usersetParents,
	// computedParents, arrowParents), walked by LookupResources.
	positive reverseGraph
	// influence is the reverse graph of every reference: positive ones,
	// operands in negative positions (an intersection's later children,
	// an exclusion's subtracted one) and arrows' tuplesets, so that a
	// walk up from a changed relation reaches every permission whose
	// value it can alter (see AffectedResources).
	influence reverseGraph
	// influenced[g] marks the relations whose relationships can alter g
	// (the forward closure of g over allReferences).
	influenced [][]bool
	// dependents[r] lists the relations whose value is computed directly
	// from r's (see allReferences), for reaching.
	dependents [][]int
}

// reverseGraph is the edges a reverse walk follows, indexed by the child
// relation's Index.
type reverseGraph struct {
	userset, computed, arrow [][]parentEdge
}

func analyze(s *schema.Schema) *analysis {
	n := s.NumRelations
	a := &analysis{
		rels:            make([]*schema.Relation, n),
		contains:        make([]map[kind]bool, n),
		caveated:        make([]bool, n),
		direct:          make([]directInfo, n),
		heavy:           make([]bool, n),
		usersetParents:  make([][]parentEdge, n),
		computedParents: make([][]parentEdge, n),
		arrowParents:    make([][]parentEdge, n),
		plainParents:    map[string][]*schema.Relation{},
		wildcardParents: map[string][]*schema.Relation{},
		selfParents:     map[string][]parentEdge{},
		relevant:        make([][]bool, n),
		plans:           map[*schema.Rewrite]plan{},
		reverseCheck:    make([]bool, n),
		pure:            make([]bool, n),
	}
	// Sorted definition names keep every derived list deterministic.
	names := make([]string, 0, len(s.Definitions))
	for name := range s.Definitions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, r := range s.Definitions[name].Ordered {
			if r.Index >= 0 && r.Index < n {
				a.rels[r.Index] = r
			}
		}
	}
	for i, r := range a.rels {
		if r == nil {
			continue
		}
		a.contains[i] = map[kind]bool{{r.Definition.Name, r.Name}: true}
		d := directInfo{plain: map[string]bool{}, wildcard: map[string]bool{}, sets: map[kind]bool{}}
		for _, as := range r.Allowed {
			if as.Caveat != nil {
				a.caveated[i] = true
			}
			switch {
			case as.Wildcard:
				d.wildcard[as.Type] = true
				a.contains[i][kind{as.Type, ""}] = true
				if !slices.Contains(a.wildcardParents[as.Type], r) {
					a.wildcardParents[as.Type] = append(a.wildcardParents[as.Type], r)
				}
			case as.Relation == "":
				d.plain[as.Type] = true
				a.contains[i][kind{as.Type, ""}] = true
				if !slices.Contains(a.plainParents[as.Type], r) {
					a.plainParents[as.Type] = append(a.plainParents[as.Type], r)
				}
			default:
				k := kind{as.Type, as.Relation}
				a.contains[i][k] = true
				if !d.sets[k] && as.Target != nil {
					d.sets[k] = true
					d.usersets = append(d.usersets, userset{typ: as.Type, rel: as.Relation, target: as.Target})
					t := as.Target.Index
					a.usersetParents[t] = append(a.usersetParents[t], parentEdge{parent: r, exact: true})
				}
			}
		}
		if hasSelf(r.Rewrite) {
			a.contains[i][kind{r.Definition.Name, ""}] = true // the object itself
		}
		a.direct[i] = d
		a.heavy[i] = r.Rewrite != nil || len(d.usersets) > 0
		if r.Rewrite != nil {
			a.reverseEdges(r, r.Rewrite, true)
		}
	}

	// Fixpoints: contains and caveated flow from referenced relations.
	for changed := true; changed; {
		changed = false
		for i, r := range a.rels {
			if r == nil {
				continue
			}
			for _, ref := range positiveReferences(r) {
				for k := range a.contains[ref.Index] {
					if !a.contains[i][k] {
						a.contains[i][k] = true
						changed = true
					}
				}
			}
			if !a.caveated[i] {
				for _, ref := range allReferences(r) {
					if a.caveated[ref.Index] {
						a.caveated[i] = true
						changed = true
						break
					}
				}
			}
		}
	}

	for _, r := range a.rels {
		if r != nil && r.Rewrite != nil {
			a.plan(r.Rewrite)
		}
	}
	a.dependents = dependentsOf(a.rels)

	for i, r := range a.rels {
		if r == nil {
			continue
		}
		rel := make([]bool, n)
		stack := []*schema.Relation{r}
		rel[i] = true
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, ref := range positiveReferences(x) {
				if !rel[ref.Index] {
					rel[ref.Index] = true
					stack = append(stack, ref)
				}
			}
		}
		a.relevant[i] = rel
	}
	a.positive = reverseGraph{userset: a.usersetParents, computed: a.computedParents, arrow: a.arrowParents}
	a.influenceGraph()
	for i, r := range a.rels {
		if r == nil || a.caveated[i] {
			continue
		}
		pure := true
		for j, in := range a.relevant[i] {
			if in && !monotone(a.rels[j].Rewrite) {
				pure = false
			}
		}
		a.pure[i] = pure
	}
	for i, r := range a.rels {
		if r == nil || !a.pure[i] || r.Rewrite != nil {
			continue
		}
		for _, us := range a.direct[i].usersets {
			if a.relevant[us.target.Index][i] {
				a.reverseCheck[i] = true
			}
		}
	}
	return a
}

// monotone reports whether a rewrite uses only unions, computed references
// and plain arrows (nil for a relation's stored tuples).
func monotone(w *schema.Rewrite) bool {
	if w == nil {
		return true
	}
	switch w.Kind {
	case schema.RewriteNil, schema.RewriteComputed, schema.RewriteSelf:
		return true
	case schema.RewriteArrow:
		return !w.ArrowAll
	case schema.RewriteUnion:
		for _, c := range w.Children {
			if !monotone(c) {
				return false
			}
		}
		return true
	}
	return false
}

// plan is how to evaluate the children of a union or intersection.
type plan struct {
	order    []int // child indices, point reads first
	parallel bool  // at least two children may fan out
}

func (a *analysis) plan(w *schema.Rewrite) {
	for _, c := range w.Children {
		a.plan(c)
	}
	if w.Kind != schema.RewriteUnion && w.Kind != schema.RewriteIntersection {
		return
	}
	var p plan
	heavy := 0
	for i, c := range w.Children {
		if !a.heavyRewrite(c) {
			p.order = append(p.order, i)
		}
	}
	for i, c := range w.Children {
		if a.heavyRewrite(c) {
			p.order = append(p.order, i)
			heavy++
		}
	}
	p.parallel = heavy >= 2
	a.plans[w] = p
}

// heavyRewrite reports whether a rewrite node may fan out (worth running
// on its own goroutine); a computed reference to a relation without subject
// sets is one or two point reads.
func (a *analysis) heavyRewrite(w *schema.Rewrite) bool {
	switch w.Kind {
	case schema.RewriteNil, schema.RewriteSelf:
		return false
	case schema.RewriteComputed:
		return w.Relation != nil && a.heavy[w.Relation.Index]
	}
	return true
}

// reverseEdges records, for every relation that r's rewrite reaches in a
// positive position, the edge back to r.
func (a *analysis) reverseEdges(r *schema.Relation, w *schema.Rewrite, exact bool) {
	switch w.Kind {
	case schema.RewriteSelf:
		t := r.Definition.Name
		a.selfParents[t] = append(a.selfParents[t], parentEdge{parent: r, exact: exact})
	case schema.RewriteComputed:
		if w.Relation != nil {
			t := w.Relation.Index
			a.computedParents[t] = append(a.computedParents[t], parentEdge{parent: r, exact: exact})
		}
	case schema.RewriteArrow:
		for _, typ := range slices.Sorted(maps.Keys(w.Targets)) {
			t := w.Targets[typ].Index
			a.arrowParents[t] = append(a.arrowParents[t], parentEdge{parent: r, tupleset: w.Relation, exact: exact && !w.ArrowAll})
		}
	case schema.RewriteUnion:
		for _, c := range w.Children {
			a.reverseEdges(r, c, exact)
		}
	case schema.RewriteIntersection, schema.RewriteExclusion:
		// Every result of an intersection is in its first child, and of
		// an exclusion in its base: candidates come from there.
		if len(w.Children) > 0 {
			a.reverseEdges(r, w.Children[0], false)
		}
	}
}

// influenceGraph derives influence and influenced. Subject sets count
// wherever they stand, so the userset edges are the positive graph's.
func (a *analysis) influenceGraph() {
	n := len(a.rels)
	g := reverseGraph{userset: a.usersetParents, computed: make([][]parentEdge, n), arrow: make([][]parentEdge, n)}
	var walk func(r *schema.Relation, w *schema.Rewrite)
	walk = func(r *schema.Relation, w *schema.Rewrite) {
		switch w.Kind {
		case schema.RewriteComputed:
			if w.Relation != nil {
				g.computed[w.Relation.Index] = append(g.computed[w.Relation.Index], parentEdge{parent: r})
			}
		case schema.RewriteArrow:
			// A tupleset relationship added or removed on an object
			// changes the arrow on that same object.
			g.computed[w.Relation.Index] = append(g.computed[w.Relation.Index], parentEdge{parent: r})
			for _, typ := range slices.Sorted(maps.Keys(w.Targets)) {
				t := w.Targets[typ].Index
				g.arrow[t] = append(g.arrow[t], parentEdge{parent: r, tupleset: w.Relation})
			}
		case schema.RewriteUnion, schema.RewriteIntersection, schema.RewriteExclusion:
			for _, c := range w.Children {
				walk(r, c)
			}
		}
	}
	a.influenced = make([][]bool, n)
	for i, r := range a.rels {
		if r == nil {
			continue
		}
		if r.Rewrite != nil {
			walk(r, r.Rewrite)
		}
		in := make([]bool, n)
		in[i] = true
		stack := []*schema.Relation{r}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, ref := range allReferences(x) {
				if !in[ref.Index] {
					in[ref.Index] = true
					stack = append(stack, ref)
				}
			}
		}
		a.influenced[i] = in
	}
	a.influence = g
}

// positiveReferences lists the relations that can add members to r's
// value: subject-set targets, and for permissions the relations in
// positive positions of the rewrite (a union's children, the first child
// of an intersection, the base of an exclusion, an arrow's targets).
func positiveReferences(r *schema.Relation) []*schema.Relation {
	out := subjectSetTargets(r)
	eachOperand(r.Rewrite, func(w *schema.Rewrite, adds bool) {
		switch {
		case !adds:
		case w.Kind == schema.RewriteArrow:
			out = appendArrowTargets(out, w)
		case w.Relation != nil:
			out = append(out, w.Relation)
		}
	})
	return out
}

// allReferences lists every relation r's value is computed from: those of
// positiveReferences, the operands in negative positions, and the
// tupleset relations arrows read.
func allReferences(r *schema.Relation) []*schema.Relation {
	out := subjectSetTargets(r)
	eachOperand(r.Rewrite, func(w *schema.Rewrite, _ bool) {
		if w.Relation != nil {
			out = append(out, w.Relation)
		}
		if w.Kind == schema.RewriteArrow {
			out = appendArrowTargets(out, w)
		}
	})
	return out
}

// eachOperand calls visit for each computed relation and arrow in w, with
// whether it stands where it can add members to w's value: not below an
// intersection's later children or an exclusion's subtracted ones.
func eachOperand(w *schema.Rewrite, visit func(op *schema.Rewrite, adds bool)) {
	var walk func(w *schema.Rewrite, adds bool)
	walk = func(w *schema.Rewrite, adds bool) {
		if w == nil {
			return
		}
		switch w.Kind {
		case schema.RewriteComputed, schema.RewriteArrow:
			visit(w, adds)
		case schema.RewriteUnion:
			for _, c := range w.Children {
				walk(c, adds)
			}
		case schema.RewriteIntersection, schema.RewriteExclusion:
			for i, c := range w.Children {
				walk(c, adds && i == 0)
			}
		}
	}
	walk(w, true)
}

// subjectSetTargets lists the relations of r's allowed subject sets.
func subjectSetTargets(r *schema.Relation) []*schema.Relation {
	var out []*schema.Relation
	for _, as := range r.Allowed {
		if as.Target != nil {
			out = append(out, as.Target)
		}
	}
	return out
}

// appendArrowTargets appends the arrow's target relation on each type its
// tupleset names, in type order.
func appendArrowTargets(out []*schema.Relation, w *schema.Rewrite) []*schema.Relation {
	for _, typ := range slices.Sorted(maps.Keys(w.Targets)) {
		out = append(out, w.Targets[typ])
	}
	return out
}

// canContain reports whether subjects of sub's kind can be in rel at all.
func (a *analysis) canContain(rel *schema.Relation, typ, srel string) bool {
	return a.contains[rel.Index][kind{typ, srel}]
}
