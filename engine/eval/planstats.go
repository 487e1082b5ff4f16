package eval

import (
	"sync/atomic"

	"github.com/pemba-authz/pemba/engine/tuple"
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
//
// Statistics are approximate and may be older than the snapshot; they
// only choose between plans that give the same answer.

// defaultStatsFanout is the mean fan-out per object from which the
// statistics decide a walk from the subject's side without a probe: four
// probes' worth, so that an object of the kind is unlikely to be narrow.
const defaultStatsFanout = 4 * defaultArrowProbe

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
	numPlans
)

var planNames = [numPlans]string{"arrow_subject_probe", "arrow_subject_statistics",
	"subject_sets_subject_probe", "subject_sets_subject_statistics", "resource_statistics", "union_subject"}

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
