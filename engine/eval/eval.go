package eval

import (
	"context"
	"hash/fnv"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Defaults for Options.
const (
	// DefaultMaxDepth counts as SpiceDB's default dispatch depth of 50
	// does (one unit per relation visited, the requested one included),
	// so data SpiceDB answers at its default is answered here too.
	DefaultMaxDepth    = 50
	DefaultConcurrency = 4
)

// Options configure an Evaluator. The zero value is usable.
type Options struct {
	// MaxDepth bounds the relations (object and relation pairs) on one
	// path of an answer: from the relation asked about, itself included,
	// to the one whose relationship names the subject. Each computed
	// reference, arrow or subject set followed adds one; a subject set is
	// in itself without a step. A grant counts only through a path
	// within the bound, in every operation and in either direction of
	// walking; an answer that needs a longer path fails with a
	// *MaxDepthError (ErrMaxDepth), never with a "no". 0 means
	// DefaultMaxDepth.
	MaxDepth int
	// Concurrency is the number of goroutines one request may use to
	// evaluate branches in parallel, the caller's included. 0 means
	// DefaultConcurrency; 1 evaluates sequentially.
	Concurrency int
	// Cache keeps subproblem results across requests (NewCache); nil
	// disables the cross-request cache (requests still share work within
	// themselves). One cache must serve one store: keys hold revisions,
	// not store IDs.
	Cache *Cache
	// Router, when set, sends permissions owned by other nodes of a
	// cluster to them (see Router); nil evaluates everything here.
	Router Router
	// Tracer, when set, records a span per subproblem evaluated, cluster
	// dispatch and cache hit below the caller's span, when that span is
	// recording (see trace.go); nil records nothing and costs nothing.
	Tracer trace.Tracer
	// Memory, when set, is the budget of bytes that requests in flight
	// hold, shared with every evaluator given the same one (memory.go);
	// nil: unbounded.
	Memory *Memory
	// MaxLookupNodes bounds the (object, relation) nodes the walk of one
	// LookupResources or LookupSubjects reaches and holds in memory;
	// past it the lookup fails with a *LookupTooLargeError. 0 means no
	// bound.
	MaxLookupNodes int
	// Plans, when set, counts the planner's decisions (see PlanCounters).
	Plans *PlanCounters
	// NestedIndex lets checks and lookups of the relations NestedRelations
	// names, and checks of the recursive permissions NestedArrows names,
	// read the nested-group index (see nested.go, nestedlookup.go,
	// nestedarrow.go) at revisions where it is complete; the engine
	// maintains it. false evaluates them by walking.
	NestedIndex bool
	// Closures, when set with NestedIndex, serves the index's closure
	// rows from memory (closureindex.go) to the checks of nested
	// relations and recursive arrows; nil reads them from the store.
	Closures ClosureSource
}

// Evaluator answers permission questions over one compiled schema. It is
// safe for concurrent use; each call reads through the store.Reader it is
// given, so all of a call's answers come from one revision.
type Evaluator struct {
	s     *schema.Schema
	opts  Options
	an    *analysis
	chain dispatchChain
	// Thresholds of the subject-side strategies (tests lower them to
	// exercise both paths on small data).
	wideFanout    int
	reverseBudget int
	// arrowProbe is how many tupleset relationships an arrow reads before
	// the planner decides it from the subject's side; 0 turns the
	// planner off (every arrow walks from the resource).
	arrowProbe int
	// statsFanout is the mean fan-out from which the store's statistics
	// decide a walk from the subject's side without a probe (see
	// planstats.go); 0 ignores the statistics.
	statsFanout float64
	// narrowFanout is the mean fan-out up to which the statistics make a
	// relation narrow (narrowRead); 0 turns the plan off.
	narrowFanout float64
	// orders caches childOrder's orders for the latest statistics seen.
	orders atomic.Pointer[statsOrders]
	// explainNodes bounds the steps of an explanation outside a witness
	// (see defaultExplainNodes).
	explainNodes int
	// scopeBudget, scopeChecks and scopeCheckCost steer the scoped
	// lookups' planner (see lookupThrough, subjectCandidates).
	scopeBudget    int
	scopeChecks    int
	scopeCheckCost int
	// walkOnly turns the streamed lookups (stream.go) off, for tests
	// that compare them with the walks.
	walkOnly bool
	// subtractMode steers the exclusions' planner (exclusion.go), for
	// tests: subtractPlanned (the zero value) decides by cost,
	// subtractNever evaluates every base first (the walk),
	// subtractAlways every subtraction first where the base cannot fail.
	subtractMode subtractMode
	// streamed counts the lookups that took the streamed plan, for the
	// tests that must exercise it.
	streamed atomic.Uint64
	// streamedWalks counts the streamed lookups that walked up to an
	// intermediate set first (streamplan.go), for the same tests.
	streamedWalks atomic.Uint64
	// streamedSubjectWalks counts the streamed LookupSubjects that
	// walked forward to intermediate nodes first (streamsubjects.go).
	streamedSubjectWalks atomic.Uint64
	// streamedSubjectWilds counts those of them that held the wildcard.
	streamedSubjectWilds atomic.Uint64
	// streamedThrough and streamedWithin count the scoped lookups
	// (Through, Within) that streamed (scope.go), for the tests; of the
	// latter, streamedWithinSet those whose candidates came from the
	// subject set's side.
	streamedThrough, streamedWithin, streamedWithinSet atomic.Uint64
	// streamedArrows counts the streamed lookups of a recursive arrow
	// that read the index's closure (streamarrow.go), for the tests.
	streamedArrows atomic.Uint64
	// nestedArrowWalks counts the closure reads of recursive arrows by
	// the forward walks (nestedlookup.go), for the tests.
	nestedArrowWalks atomic.Uint64
	// nestedLookups counts the closure reads of the lookups' walks
	// (nestedlookup.go), for the tests that must exercise them.
	nestedLookups atomic.Uint64
	// schemaID distinguishes cache entries of different schemas that
	// share a cache and a revision numbering.
	schemaID uint64
	// nested marks, by relation index, the relations checked through the
	// nested-group index; nestedState caches whether the index is
	// complete at the last revision read.
	nested      []bool
	nestedState []atomic.Pointer[nestedState]
	// nestedClosure is the closure relation of each indexed relation.
	nestedClosure []string
	// requests recycles the requests of single checks (takeRequest).
	requests sync.Pool
	// nestedArrows holds, by relation index, the permissions whose
	// recursion checks read from the index (nestedarrow.go); nil when
	// the index is off.
	nestedArrows []*NestedArrow
	// nestedArrowAnswers counts the checks nestedArrowCheck answered, for
	// the tests that must exercise it.
	nestedArrowAnswers atomic.Uint64
}

// New returns an evaluator for s.
func New(s *schema.Schema, opts Options) *Evaluator {
	return newEvaluator(s, opts, nil)
}

// newEvaluator is New with the cross-request cache ac, when not nil, in
// place of opts.Cache.
func newEvaluator(s *schema.Schema, opts Options, ac answerCache) *Evaluator {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	h := fnv.New64a()
	h.Write([]byte(s.Source))
	e := &Evaluator{s: s, opts: opts, an: analyze(s), schemaID: h.Sum64(),
		wideFanout: defaultWideFanout, reverseBudget: defaultReverseBudget, arrowProbe: defaultArrowProbe, statsFanout: defaultStatsFanout, narrowFanout: defaultNarrowFanout,
		explainNodes: defaultExplainNodes, scopeBudget: defaultScopeBudget, scopeChecks: defaultScopeChecks, scopeCheckCost: defaultScopeCheckCost}
	e.nested, e.nestedState = newNested(s, opts.NestedIndex)
	e.nestedClosure = nestedClosureNames(s, e.nested)
	e.nestedArrows = newNestedArrows(s, opts.NestedIndex)
	e.chain = newChain(e, opts, ac)
	return e
}

// Schema returns the schema the evaluator was built for.
func (e *Evaluator) Schema() *schema.Schema { return e.s }

// Params are the per-call inputs shared by every operation.
type Params struct {
	// Reader is the snapshot to evaluate at. Required.
	Reader store.Reader
	// Now is the clock for expiring relationships: those expired at Now
	// are invisible. The zero value means time.Now().
	Now time.Time
	// Context is the caveat context of the request. Values stored on a
	// relationship take precedence over these.
	Context map[string]any
	// Contextual are relationships that hold for this call only, as if
	// touched on top of Reader's revision (see store.Overlay): they may
	// carry caveats and expirations and must fit the schema (the caller
	// validates them, as a write would) with no key twice. Subproblems
	// whose relation can reach a relation they name bypass the
	// cross-request cache and are never routed to another node; every
	// other subproblem is cached as usual (see contextual.go).
	Contextual []tuple.Relationship
}

// CheckRequest asks whether Subject has Permission on Resource.
type CheckRequest struct {
	Resource   tuple.ObjectRef
	Permission string // a permission or relation of Resource.Type
	Subject    tuple.SubjectRef
}

// Permissionship is the answer to a check.
type Permissionship uint8

// Permissionship values.
const (
	// NoPermission: the subject does not have the permission.
	NoPermission Permissionship = iota
	// HasPermission: the subject has the permission.
	HasPermission
	// ConditionalPermission: the answer depends on caveat parameters the
	// request did not supply (see CheckResult.MissingContext).
	ConditionalPermission
)

func (p Permissionship) String() string {
	switch p {
	case NoPermission:
		return "NO_PERMISSION"
	case HasPermission:
		return "HAS_PERMISSION"
	case ConditionalPermission:
		return "CONDITIONAL_PERMISSION"
	}
	return "UNKNOWN"
}

// CheckResult is the outcome of a check.
type CheckResult struct {
	Permissionship Permissionship
	// MissingContext lists, sorted, the caveat parameters whose values
	// would decide a conditional answer.
	MissingContext []string
	// Dispatches is the number of subproblems dispatched while answering
	// the check, counting those answered by the in-request memo or the
	// cache; a root answered from the cache counts 1.
	Dispatches int
	// Depth is the deepest nesting reached: 1 for the root subproblem,
	// 0 when the root was answered from the cache (or trivially, without
	// dispatching anything).
	Depth int
	// SubjectSidePlans is how many arrows and sets of subject sets the
	// planner decided from the subject's side (a walk up from the subject
	// and point reads) because the resource side was wide; the rest were
	// walked from the resource.
	SubjectSidePlans int
}

// BulkResult is one item of CheckBulk: a result or an error.
type BulkResult struct {
	CheckResult
	Err error
}

// TreeKind is the node type of an expansion tree.
type TreeKind uint8

// Tree kinds.
const (
	// Leaf: the stored subjects of a relation (Subjects), with the
	// expansions of its subject sets as Children.
	Leaf TreeKind = iota
	// Union: any child.
	Union
	// Intersection: every child.
	Intersection
	// Exclusion: the first child minus the second.
	Exclusion
)

func (k TreeKind) String() string {
	switch k {
	case Leaf:
		return "leaf"
	case Union:
		return "union"
	case Intersection:
		return "intersection"
	case Exclusion:
		return "exclusion"
	}
	return "unknown"
}

// Tree is an expansion of a relation or permission on one object.
type Tree struct {
	Kind     TreeKind
	Object   tuple.ObjectRef
	Relation string
	// Subjects are the stored subjects of a relation (Leaf), including
	// subject sets and wildcards; on an arrow's node, the relationships of
	// the tupleset relation that the arrow followed.
	Subjects []Subject
	// Children are the operands of a set operation, the expansions of a
	// leaf's subject sets, or an arrow's target on each object it
	// followed (in the order of Subjects; a wildcard is not followed, and
	// an object whose type lacks the target relation is an empty leaf).
	Children []*Tree
	// Caveat and Expiration are those of the relationship through which
	// the parent reached this node (the leaf's subject set, or the
	// arrow's tupleset relationship): the node counts only while they
	// hold. Nil and zero at the root, below set operations, and where
	// that relationship is unconditional.
	Caveat     *tuple.Caveat
	Expiration time.Time
	// Truncated is set where expansion stopped: the depth requested was
	// reached, or the node repeats one of its ancestors (a cycle).
	Truncated bool
}

// Subject is one stored subject of a relation, with the conditions under
// which it holds.
type Subject struct {
	Subject    tuple.SubjectRef
	Caveat     *tuple.Caveat
	Expiration time.Time
}

// LookupResourcesRequest asks which resources of ResourceType Subject has
// Permission on.
type LookupResourcesRequest struct {
	ResourceType string
	Permission   string
	Subject      tuple.SubjectRef
	// Limit stops after this many results; 0 means no limit.
	Limit int
	// After resumes strictly after this resource ID (a cursor).
	After string
	// Through, when set, limits the answer to the resources that reach
	// an object by stored relationships (see Through).
	Through *Through
}

// ResourceResult is one resource found by LookupResources.
type ResourceResult struct {
	ResourceID     string
	Permissionship Permissionship
	MissingContext []string
}

// LookupSubjectsRequest asks which subjects of SubjectType (with
// SubjectRelation, when set) have Permission on Resource.
type LookupSubjectsRequest struct {
	Resource        tuple.ObjectRef
	Permission      string
	SubjectType     string
	SubjectRelation string // "" for plain subjects
	// Limit stops after this many results; 0 means no limit.
	Limit int
	// After resumes strictly after this subject ID (a cursor), in the
	// order of the results: "*" before every ID.
	After string
	// Within, when set, limits the answer to the members of this subject
	// set (TYPE:ID#RELATION, a relation or a permission): each subject's
	// permissionship is then the conjunction of its permission and its
	// membership, as two Checks would give.
	Within *tuple.SubjectRef
}

// SubjectResult is one subject found by LookupSubjects.
type SubjectResult struct {
	// SubjectID may be "*": every subject of the type except ExcludedIDs,
	// with this Permissionship. Subjects listed by their own ID carry
	// their own answer.
	SubjectID      string
	ExcludedIDs    []string
	Permissionship Permissionship
	MissingContext []string
}

// Check reports whether req.Subject has req.Permission on req.Resource at
// the revision of p.Reader.
func (e *Evaluator) Check(ctx context.Context, p Params, req CheckRequest) (CheckResult, error) {
	if p.Reader != nil && len(p.Context) == 0 && !p.Now.IsZero() {
		// A warm check is answered from the dispatch chain's cache
		// before any request state is allocated, also with contextual
		// relationships the permission cannot reach.
		rel, err := e.root(req)
		if err != nil {
			return CheckResult{}, err
		}
		var uncached []bool
		if len(p.Contextual) > 0 {
			uncached = e.an.reaching(p.Contextual)
		}
		if e.an.canContain(rel, req.Subject.Type, req.Subject.Relation) && (uncached == nil || !uncached[rel.Index]) {
			sp := subproblem{rel: rel.Index, id: req.Resource.ID, sub: req.Subject}
			if res, ok := e.chain.settled(p.Reader.Revision(), p.Now, &sp, nil); ok {
				traceCacheHit(ctx, e.opts.Tracer, rel, req.Resource.ID, 1, res.perm)
				cr := res.checkResult()
				cr.Dispatches = 1 // the root, a cache hit; Depth stays 0
				return cr, nil
			}
		}
		rq, err := e.takeRequest(p, uncached)
		if err != nil {
			return CheckResult{}, err
		}
		res, err := rq.checkRel(ctx, rel, req)
		e.releaseRequest(rq)
		return res, err
	}
	rq, err := e.takeRequest(p, nil)
	if err != nil {
		return CheckResult{}, err
	}
	res, err := rq.checkRoot(ctx, req)
	e.releaseRequest(rq)
	return res, err
}

// CheckBulk runs many checks at one revision. Items share subproblems: a
// subproblem evaluated for one item is reused by the others. The result at
// index i answers reqs[i]; a failure of one item does not fail the others.
func (e *Evaluator) CheckBulk(ctx context.Context, p Params, reqs []CheckRequest) []BulkResult {
	out := make([]BulkResult, len(reqs))
	var uncached []bool
	if len(p.Contextual) > 0 {
		uncached = e.an.reaching(p.Contextual)
	}
	pending := reqs
	var index []int // pending[j] is reqs[index[j]]; nil: pending is reqs
	if p.Reader != nil && len(p.Context) == 0 && !p.Now.IsZero() {
		// Warm items (a permission set drawn again) are answered from
		// the cache, as a warm Check is, before a request exists.
		var settled bool
		if index, settled = e.settleBulk(p.Reader.Revision(), p.Now, reqs, uncached, out); settled {
			if len(index) == 0 {
				return out
			}
			pending = make([]CheckRequest, len(index))
			for j, i := range index {
				pending[j] = reqs[i]
			}
		} else {
			index = nil
		}
	}
	rq, err := e.newRequestReaching(p, uncached)
	if err != nil {
		for j := range pending {
			out[at(index, j)].Err = err
		}
		return out
	}
	defer rq.done()
	if index == nil {
		rq.bulk(ctx, reqs, out)
		return out
	}
	res := make([]BulkResult, len(pending))
	rq.bulk(ctx, pending, res)
	for j, r := range res {
		out[index[j]] = r
	}
	return out
}

// at returns index[j], or j when index is nil.
func at(index []int, j int) int {
	if index == nil {
		return j
	}
	return index[j]
}

// settleBulk answers into out the items of reqs whose root is cached at
// revision rev and clock now (and that no contextual relationship reaches:
// uncached), reports whether it answered any, and returns the indexes in
// reqs of the others. Nothing is allocated when every item is answered.
func (e *Evaluator) settleBulk(rev store.Revision, now time.Time, reqs []CheckRequest, uncached []bool, out []BulkResult) (unsettled []int, some bool) {
	for i, req := range reqs {
		rel, err := e.root(req)
		if err == nil && e.an.canContain(rel, req.Subject.Type, req.Subject.Relation) && (uncached == nil || !uncached[rel.Index]) {
			sp := subproblem{rel: rel.Index, id: req.Resource.ID, sub: req.Subject}
			if res, ok := e.chain.settled(rev, now, &sp, nil); ok {
				out[i].CheckResult = res.checkResult()
				out[i].Dispatches = 1 // the root, a cache hit; Depth stays 0
				some = true
				continue
			}
		}
		unsettled = append(unsettled, i)
	}
	return unsettled, some
}

// LookupResources yields the resources of req.ResourceType on which
// req.Subject has req.Permission, in ascending ID order, each with the
// permissionship Check would give. An error ends the sequence. The
// lookup streams (streamplan.go): it walks up from the subject to the
// intermediate objects only (the groups holding it, the parents on which
// an arrow's target holds), then merges ordered store scans of the
// resources as the sequence is read, and a page (Limit, After) resumes
// them after the cursor. A shape recursive on the resource type, or one
// needing too many scans, is walked in full before the first result.
func (e *Evaluator) LookupResources(ctx context.Context, p Params, req LookupResourcesRequest) iter.Seq2[ResourceResult, error] {
	return func(yield func(ResourceResult, error) bool) {
		rq, err := e.newRequest(p)
		if err != nil {
			yield(ResourceResult{}, err)
			return
		}
		defer rq.done()
		rq.lookupResources(ctx, req, yield)
	}
}

// LookupSubjects yields the subjects of req.SubjectType that have
// req.Permission on req.Resource, in ascending ID order ("*" first), each
// with the permissionship Check would give. An error ends the sequence.
// A page (Limit, After) confirms only the subjects it needs; the walk that
// finds the candidates is done in full each time, unless the permission is
// streamed (stream.go: a union of relations naming the subjects directly),
// when a page reads only its own results.
func (e *Evaluator) LookupSubjects(ctx context.Context, p Params, req LookupSubjectsRequest) iter.Seq2[SubjectResult, error] {
	return func(yield func(SubjectResult, error) bool) {
		rq, err := e.newRequest(p)
		if err != nil {
			yield(SubjectResult{}, err)
			return
		}
		defer rq.done()
		rq.lookupSubjects(ctx, req, yield)
	}
}

// ExpandRequest asks for the tree of subjects behind Permission on
// Resource.
type ExpandRequest struct {
	Resource   tuple.ObjectRef
	Permission string
	// Depth bounds the tree: 0 expands fully (stopping at cycles); n
	// stops n relations below the root, marking the cut nodes Truncated.
	Depth int
}

// Expand returns the tree of relationships and rewrites that make up
// req.Permission on req.Resource.
func (e *Evaluator) Expand(ctx context.Context, p Params, req ExpandRequest) (*Tree, error) {
	rq, err := e.newRequest(p)
	if err != nil {
		return nil, err
	}
	defer rq.done()
	return rq.expand(ctx, req)
}
