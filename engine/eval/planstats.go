package eval

import (
	"cmp"
	"slices"
	"sync/atomic"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// The planner reads the store's statistics (store.StatsReader), when it
// keeps them, to choose a walk's direction without probing:
//
//   - An arrow, or a relation's subject sets of one kind, whose resource
//     side is wide on average (a mean fan-out per object of at least
//     defaultStatsFanout relationships, as documents in thousands of
//     folders) is decided from the subject's side at once, without first
//     reading defaultArrowProbe relationships to find that out.
//   - When the subject side is wide on average (subjects of the kind
//     asked about are named by more relationships each than a reverse
//     walk's budget), the walk up from the subject is not tried: it would
//     give up over budget after reading that much.
//   - Otherwise the probe decides, per object, as without statistics.
//   - The children of unions and intersections that may fan out are
//     evaluated cheapest first by the relationships they are estimated to
//     read (childOrder), after the point reads as before, so that an
//     intersection's cheap "no" or a union's cheap "yes" comes first.
//   - An exclusion whose subtraction is estimated to read at most half
//     what its base reads evaluates the subtraction first, where the
//     base cannot fail (exclusion.go).
//   - A relation whose objects hold few relationships each on average
//     (at most defaultNarrowFanout) is read whole in one scan when a
//     check would read it twice, by key for the subject and again for
//     its subject sets (narrowRead): each read is a seek, and on a store
//     larger than its caches a seek is most of a check's cost.
//
// Statistics are approximate and may be older than the snapshot; they
// only choose between plans that give the same answer.

// defaultStatsFanout is the mean fan-out per object from which the
// statistics decide a walk from the subject's side without a probe: four
// probes' worth, so that an object of the kind is unlikely to be narrow.
const defaultStatsFanout = 4 * defaultArrowProbe

// defaultNarrowFanout is the mean fan-out per object up to which a
// relation is narrow (narrowRead), and narrowLimit the most relationships
// narrowRead reads of one object before it leaves the object to the two
// reads.
const (
	defaultNarrowFanout = 4
	narrowLimit         = defaultArrowProbe
)

// statsChoice is what the statistics say about one walk.
type statsChoice uint8

const (
	statsProbe    statsChoice = iota // no opinion: probe
	statsSubject                     // the resource side is wide: walk up from the subject
	statsResource                    // the subject side is wide: walk down from the resource
)

// statsPlan consults the request's statistics about the relationships of
// relation rel on resources of type typ, for subject sub.
func (rq *request) statsPlan(typ, rel string, sub tuple.SubjectRef) statsChoice {
	st := rq.stats
	if st == nil || rq.e.statsFanout <= 0 {
		return statsProbe
	}
	if st.Subject(sub.Type, sub.Relation).Fanout() > float64(rq.e.reverseBudget) {
		return statsResource
	}
	if st.Resource(typ, rel).Fanout() >= rq.e.statsFanout {
		return statsSubject
	}
	return statsProbe
}

// Plan names a decision of the planner that departs from the plain
// top-down walk, for PlanCounters.
type Plan uint8

// Plans counted.
const (
	// PlanArrowSubjectProbe: an arrow decided from the subject's side
	// after its probe found the tupleset wide.
	PlanArrowSubjectProbe Plan = iota
	// PlanArrowSubjectStats: an arrow decided from the subject's side
	// because the statistics say its tuplesets are wide, without a probe.
	PlanArrowSubjectStats
	// PlanSubjectSetsSubjectProbe and PlanSubjectSetsSubjectStats: the
	// same for a relation's subject sets of one kind.
	PlanSubjectSetsSubjectProbe
	PlanSubjectSetsSubjectStats
	// PlanResourceStats: an arrow or subject sets walked from the
	// resource without a probe because the statistics say the subject's
	// side is wider than a reverse walk's budget.
	PlanResourceStats
	// PlanUnionSubject: a union of many branches (subject sets, arrow
	// subjects) decided by one walk up from the subject.
	PlanUnionSubject
	// PlanChildrenStatistics: a union or intersection whose children
	// were evaluated in the order the statistics gave (cheapest first),
	// not the schema's.
	PlanChildrenStatistics
	// PlanExclusionSubtractionFirst: an exclusion whose subtraction was
	// evaluated before its base (see exclusion.go).
	PlanExclusionSubtractionFirst
	// PlanExclusionBaseSkipped: of those, one whose subtraction held,
	// so that the base was not evaluated.
	PlanExclusionBaseSkipped
	// PlanNarrowRead: a relation of a check read whole in one scan,
	// point reads and subject sets together, because the statistics say
	// its objects hold few relationships each (narrowRead).
	PlanNarrowRead
	// PlanNestedMemory: closure rows of the nested-group index read from
	// memory (Options.Closures) instead of the store.
	PlanNestedMemory
	numPlans
)

var planNames = [numPlans]string{"arrow_subject_probe", "arrow_subject_statistics",
	"subject_sets_subject_probe", "subject_sets_subject_statistics", "resource_statistics", "union_subject",
	"children_statistics", "exclusion_subtraction_first", "exclusion_base_skipped", "narrow_read",
	"nested_index_memory"}

func (p Plan) String() string {
	if p < numPlans {
		return planNames[p]
	}
	return "unknown"
}

// PlanCounters counts the planner's decisions (Options.Plans), for a
// debug metric. It is safe for concurrent use; one may be shared by
// several evaluators.
type PlanCounters struct {
	n [numPlans]atomic.Uint64
}

// Counts returns the decisions so far by plan name (Plan.String), every
// plan included.
func (p *PlanCounters) Counts() map[string]uint64 {
	out := make(map[string]uint64, numPlans)
	for i := range p.n {
		out[Plan(i).String()] = p.n[i].Load()
	}
	return out
}

// count records plan p for the request's evaluator.
func (rq *request) count(p Plan) {
	if c := rq.e.opts.Plans; c != nil {
		c.n[p].Add(1)
	}
}

// statsOrders are the orders of the children of unions and intersections
// that the statistics in st change (see orderByStats): computed once per
// Statistics value an evaluator sees.
type statsOrders struct {
	st     *store.Statistics
	orders map[*schema.Rewrite][]int
	// subtract marks the exclusions to evaluate subtraction first
	// (subtractByStats).
	subtract map[*schema.Rewrite]bool
	// narrow marks, by relation index, the relations narrowRead reads
	// whole (narrowByStats).
	narrow []bool
}

// childOrder returns the order in which to evaluate w's children: the
// analysis's plan (point reads first), with its fan-outs sorted cheapest
// first by the request's statistics when it has them. The order of a fold
// changes none of its answers: a deciding branch wins over failed ones,
// wherever they are.
func (rq *request) childOrder(w *schema.Rewrite, p plan) []int {
	if rq.stats == nil {
		return p.order
	}
	if o, ok := rq.statsOrders().orders[w]; ok {
		rq.count(PlanChildrenStatistics)
		return o
	}
	return p.order
}

// statsOrders returns the orders that the request's statistics (not
// nil) give, computed once per Statistics value the evaluator sees.
func (rq *request) statsOrders() *statsOrders {
	so := rq.e.orders.Load()
	if so == nil || so.st != rq.stats {
		so = &statsOrders{st: rq.stats, orders: rq.e.an.orderByStats(rq.stats), subtract: rq.e.an.subtractByStats(rq.stats),
			narrow: rq.e.narrowByStats(rq.stats)}
		rq.e.orders.Store(so)
	}
	return so
}

// narrowByStats marks, by relation index, the relations with subject
// sets whose objects hold at most e.narrowFanout relationships each on
// average, and fewer than the statistics' threshold for a walk from the
// subject's side (statsPlan), which narrowRead would pre-empt.
func (e *Evaluator) narrowByStats(st *store.Statistics) []bool {
	out := make([]bool, e.s.NumRelations)
	for _, d := range e.s.Definitions {
		for _, r := range d.Relations {
			if r.IsPermission || len(e.an.direct[r.Index].usersets) == 0 {
				continue
			}
			c := st.Resource(d.Name, r.Name)
			fan := c.Fanout()
			out[r.Index] = c.Objects > 0 && fan <= e.narrowFanout && (e.statsFanout <= 0 || fan < e.statsFanout)
		}
	}
	return out
}

// orderByStats sorts, in every plan, the children that may fan out by
// their estimated cost (rewriteCost), keeping the point reads first; it
// returns the orders that differ from the plans'.
func (a *analysis) orderByStats(st *store.Statistics) map[*schema.Rewrite][]int {
	out := map[*schema.Rewrite][]int{}
	for w, p := range a.plans {
		light := 0
		for _, i := range p.order {
			if a.heavyRewrite(w.Children[i]) {
				break
			}
			light++
		}
		if len(p.order)-light < 2 {
			continue
		}
		order := slices.Clone(p.order)
		cost := make(map[int]float64, len(order))
		for _, i := range order[light:] {
			cost[i] = a.rewriteCost(w.Children[i], st, 3)
		}
		slices.SortStableFunc(order[light:], func(x, y int) int { return cmp.Compare(cost[x], cost[y]) })
		if !slices.Equal(order, p.order) {
			out[w] = order
		}
	}
	return out
}

// rewriteCost estimates the relationships read to evaluate w from the
// statistics: a relation's own relationships per object (its subject sets
// followed one level), an arrow's tupleset fan-out times its target's
// cost; depth bounds the recursion through computed references.
func (a *analysis) rewriteCost(w *schema.Rewrite, st *store.Statistics, depth int) float64 {
	if depth <= 0 {
		return 1
	}
	switch w.Kind {
	case schema.RewriteNil, schema.RewriteSelf:
		return 0
	case schema.RewriteComputed:
		return a.relationCost(w.Relation, st, depth-1)
	case schema.RewriteArrow:
		fan := st.Resource(w.Relation.Definition.Name, w.Relation.Name).Fanout()
		target := 1.0
		for _, t := range w.Targets {
			target = max(target, a.relationCost(t, st, depth-1))
		}
		return 1 + fan*target
	}
	sum := 0.0
	for _, c := range w.Children {
		sum += a.rewriteCost(c, st, depth)
	}
	return sum
}

// relationCost is rewriteCost for relation r on one object.
func (a *analysis) relationCost(r *schema.Relation, st *store.Statistics, depth int) float64 {
	if r == nil {
		return 0
	}
	if r.Rewrite != nil {
		return a.rewriteCost(r.Rewrite, st, depth)
	}
	if len(a.direct[r.Index].usersets) == 0 {
		return 1 // point reads
	}
	return 1 + st.Resource(r.Definition.Name, r.Name).Fanout()
}
