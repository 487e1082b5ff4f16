package eval

import (
	"maps"
	"slices"
	"sync"

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
//
// Building it is linear in the schema's size (relations, allowed subject
// types and rewrite nodes): every fixpoint is a walk over a graph of the
// relations' references, and nothing is an n-by-n table. What is
// quadratic in the worst case (which subject kinds a relation can
// contain, which relations a lookup's goal can be reached from) is
// computed on first use, one kind or one goal at a time, and kept
// (closures.go): a chain of 10,000 definitions costs its walk only for
// the goals and subject kinds that requests ask about.
type analysis struct {
	rels []*schema.Relation
	// owned lists, by relation, the subject kinds its own type list and
	// rewrite admit (its own subject set, allowed types, self); a
	// relation contains a kind when it reaches an owner of it through
	// positive references (see canContain).
	owned [][]kind
	// owners is owned inverted: the relations owning each kind.
	owners map[kind][]int32
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
	// exclusions says, for each exclusion node, whether and how its
	// subtraction may be evaluated first (see exclusion.go).
	exclusions map[*schema.Rewrite]exclusionPlan

	// positiveRefs[r] lists the relations that can add members to r
	// (positiveReferences, as indices), allRefs[r] every relation r's
	// value is computed from (allReferences).
	positiveRefs, allRefs [][]int32
	// relevant(g) marks the relations from which g can be reached by the
	// reverse walk (the forward closure of g over positiveRefs), and
	// influenced(g) the relations whose relationships can alter g (the
	// forward closure over allRefs); both computed on first use.
	relevant, influenced *closures
	// contains memoizes canContain by subject kind, walking revPositive
	// (positiveRefs reversed, built on first use).
	contains    kindSets
	revOnce     sync.Once
	revPositive [][]int32

	// positive is the reverse graph above (usersetParents,
	// computedParents, arrowParents), walked by LookupResources.
	positive reverseGraph
	// influence is the reverse graph of every reference: positive ones,
	// operands in negative positions (an intersection's later children,
	// an exclusion's subtracted one) and arrows' tuplesets, so that a
	// walk up from a changed relation reaches every permission whose
	// value it can alter (see AffectedResources).
	influence reverseGraph
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
		owned:           make([][]kind, n),
		owners:          map[kind][]int32{},
		caveated:        make([]bool, n),
		direct:          make([]directInfo, n),
		heavy:           make([]bool, n),
		usersetParents:  make([][]parentEdge, n),
		computedParents: make([][]parentEdge, n),
		arrowParents:    make([][]parentEdge, n),
		plainParents:    map[string][]*schema.Relation{},
		wildcardParents: map[string][]*schema.Relation{},
		selfParents:     map[string][]parentEdge{},
		plans:           map[*schema.Rewrite]plan{},
		reverseCheck:    make([]bool, n),
		pure:            make([]bool, n),
		positiveRefs:    make([][]int32, n),
		allRefs:         make([][]int32, n),
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
	// Relations are visited in index order, so a kind's owners end with
	// i when i already owns it: constant-time deduplication.
	own := func(i int, k kind) {
		if o := a.owners[k]; len(o) == 0 || o[len(o)-1] != int32(i) {
			a.owned[i] = append(a.owned[i], k)
			a.owners[k] = append(a.owners[k], int32(i))
		}
	}
	for i, r := range a.rels {
		if r == nil {
			continue
		}
		own(i, kind{r.Definition.Name, r.Name})
		d := directInfo{plain: map[string]bool{}, wildcard: map[string]bool{}, sets: map[kind]bool{}}
		for _, as := range r.Allowed {
			if as.Caveat != nil {
				a.caveated[i] = true
			}
			switch {
			case as.Wildcard:
				d.wildcard[as.Type] = true
				own(i, kind{as.Type, ""})
				if ps := a.wildcardParents[as.Type]; len(ps) == 0 || ps[len(ps)-1] != r {
					a.wildcardParents[as.Type] = append(a.wildcardParents[as.Type], r)
				}
			case as.Relation == "":
				d.plain[as.Type] = true
				own(i, kind{as.Type, ""})
				if ps := a.plainParents[as.Type]; len(ps) == 0 || ps[len(ps)-1] != r {
					a.plainParents[as.Type] = append(a.plainParents[as.Type], r)
				}
			default:
				k := kind{as.Type, as.Relation}
				own(i, k)
				if !d.sets[k] && as.Target != nil {
					d.sets[k] = true
					d.usersets = append(d.usersets, userset{typ: as.Type, rel: as.Relation, target: as.Target})
					t := as.Target.Index
					a.usersetParents[t] = append(a.usersetParents[t], parentEdge{parent: r, exact: true})
				}
			}
		}
		if hasSelf(r.Rewrite) {
			own(i, kind{r.Definition.Name, ""}) // the object itself
		}
		a.direct[i] = d
		a.heavy[i] = r.Rewrite != nil || len(d.usersets) > 0
		if r.Rewrite != nil {
			a.reverseEdges(r, r.Rewrite, true, arrowsSeen{})
		}
		a.positiveRefs[i] = indices(positiveReferences(r))
		a.allRefs[i] = indices(allReferences(r))
	}

	// caveated flows from every referenced relation: a walk up the
	// reversed references from the relations whose types name a caveat.
	a.caveated = reachedBackward(a.allRefs, a.caveated)
	// Impure: reaches, through positive references, a rewrite that is not
	// monotone.
	nonMonotone := make([]bool, n)
	for i, r := range a.rels {
		nonMonotone[i] = r != nil && !monotone(r.Rewrite)
	}
	impure := reachedBackward(a.positiveRefs, nonMonotone)
	for i, r := range a.rels {
		a.pure[i] = r != nil && !a.caveated[i] && !impure[i]
	}

	for _, r := range a.rels {
		if r != nil && r.Rewrite != nil {
			a.plan(r.Rewrite)
		}
	}
	a.dependents = dependentsOf(a.rels)
	a.exclusions = a.exclusionPlans()

	// A pure relation without a rewrite is recursive through a subject
	// set when the set's relation reaches it again: the relation reaches
	// the set's relation directly, so both lie in one strongly connected
	// component of the positive references.
	comp := schema.Components(a.positiveRefs)
	for i, r := range a.rels {
		if r == nil || !a.pure[i] || r.Rewrite != nil {
			continue
		}
		for _, us := range a.direct[i].usersets {
			if comp[us.target.Index] == comp[i] {
				a.reverseCheck[i] = true
			}
		}
	}
	a.relevant = newClosures(a.positiveRefs)
	a.influenced = newClosures(a.allRefs)
	a.positive = reverseGraph{userset: a.usersetParents, computed: a.computedParents, arrow: a.arrowParents}
	a.influenceGraph()
	return a
}

// indices lists the relations' indices.
func indices(rels []*schema.Relation) []int32 {
	if len(rels) == 0 {
		return nil
	}
	out := make([]int32, len(rels))
	for i, r := range rels {
		out[i] = int32(r.Index)
	}
	return out
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
func (a *analysis) reverseEdges(r *schema.Relation, w *schema.Rewrite, exact bool, seen arrowsSeen) {
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
		if !seen.first(w, exact && !w.ArrowAll) {
			return
		}
		for _, typ := range slices.Sorted(maps.Keys(w.Targets)) {
			t := w.Targets[typ].Index
			a.arrowParents[t] = append(a.arrowParents[t], parentEdge{parent: r, tupleset: w.Relation, exact: exact && !w.ArrowAll})
		}
	case schema.RewriteUnion:
		for _, c := range w.Children {
			a.reverseEdges(r, c, exact, seen)
		}
	case schema.RewriteIntersection, schema.RewriteExclusion:
		// Every result of an intersection is in its first child, and of
		// an exclusion in its base: candidates come from there.
		if len(w.Children) > 0 {
			a.reverseEdges(r, w.Children[0], false, seen)
		}
	}
}

// influenceGraph derives influence. Subject sets count
// wherever they stand, so the userset edges are the positive graph's.
func (a *analysis) influenceGraph() {
	n := len(a.rels)
	g := reverseGraph{userset: a.usersetParents, computed: make([][]parentEdge, n), arrow: make([][]parentEdge, n)}
	var seen arrowsSeen
	var walk func(r *schema.Relation, w *schema.Rewrite)
	walk = func(r *schema.Relation, w *schema.Rewrite) {
		switch w.Kind {
		case schema.RewriteComputed:
			if w.Relation != nil {
				g.computed[w.Relation.Index] = append(g.computed[w.Relation.Index], parentEdge{parent: r})
			}
		case schema.RewriteArrow:
			if !seen.first(w, true) {
				return
			}
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
	for _, r := range a.rels {
		if r != nil && r.Rewrite != nil {
			seen = arrowsSeen{}
			walk(r, r.Rewrite)
		}
	}
	a.influence = g
}

// positiveReferences lists the relations that can add members to r's
// value: subject-set targets, and for permissions the relations in
// positive positions of the rewrite (a union's children, the first child
// of an intersection, the base of an exclusion, an arrow's targets).
func positiveReferences(r *schema.Relation) []*schema.Relation {
	out := subjectSetTargets(r)
	seen := arrowsSeen{}
	eachOperand(r.Rewrite, func(w *schema.Rewrite, adds bool) {
		switch {
		case !adds:
		case w.Kind == schema.RewriteArrow:
			if seen.first(w, true) {
				out = appendArrowTargets(out, w)
			}
		case w.Relation != nil:
			out = append(out, w.Relation)
		}
	})
	return dedupe(out)
}

// allReferences lists every relation r's value is computed from: those of
// positiveReferences, the operands in negative positions, and the
// tupleset relations arrows read.
func allReferences(r *schema.Relation) []*schema.Relation {
	out := subjectSetTargets(r)
	seen := arrowsSeen{}
	eachOperand(r.Rewrite, func(w *schema.Rewrite, _ bool) {
		if w.Relation != nil {
			out = append(out, w.Relation)
		}
		if w.Kind == schema.RewriteArrow && seen.first(w, true) {
			out = appendArrowTargets(out, w)
		}
	})
	return dedupe(out)
}

// arrowsSeen records the arrows of one relation's rewrite already
// followed: an arrow repeated in a permission (r->member + r->member + ...)
// leads to the same targets, so it is followed once, and the analysis
// stays linear in the schema's size instead of in arrows times types.
type arrowsSeen map[arrowUse]bool

type arrowUse struct {
	tupleset *schema.Relation
	target   string
	exact    bool
}

// first reports whether w (in a position of the given exactness) is seen
// for the first time, and marks it.
func (s arrowsSeen) first(w *schema.Rewrite, exact bool) bool {
	k := arrowUse{w.Relation, w.TargetName, exact}
	if s[k] {
		return false
	}
	s[k] = true
	return true
}

// dedupe drops repeated relations, keeping the first of each.
func dedupe(rels []*schema.Relation) []*schema.Relation {
	if len(rels) < 2 {
		return rels
	}
	seen := make(map[*schema.Relation]bool, len(rels))
	out := rels[:0]
	for _, r := range rels {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
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
	return a.contains.has(a, kind{typ, srel}, rel.Index)
}

// AnalysisWork counts what New's analysis of s walks and keeps: one unit
// per relation, allowed subject type and rewrite node, and one per target
// of each distinct arrow of a relation (an arrow leads to its target on
// every object type its tupleset allows: this is where a schema's size
// can multiply). The analysis's time and memory grow linearly with it;
// callers bound it before calling New.
func AnalysisWork(s *schema.Schema) int {
	n := 0
	for _, def := range s.Definitions {
		for _, r := range def.Ordered {
			n += 1 + len(r.Allowed)
			seen := arrowsSeen{}
			stack := []*schema.Rewrite{r.Rewrite}
			for len(stack) > 0 {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if w == nil {
					continue
				}
				n++
				if w.Kind == schema.RewriteArrow && seen.first(w, true) {
					n += len(w.Targets)
				}
				stack = append(stack, w.Children...)
			}
		}
	}
	return n
}
