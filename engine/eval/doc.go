// Package eval answers permission questions over a compiled schema and a
// store snapshot: Check, CheckBulk, Expand, LookupResources and
// LookupSubjects.
//
// # Model
//
// A relation of an object is the set of its stored subjects: plain objects
// (user:anne), wildcards (user:* holds every user) and subject sets
// (group:eng#member holds the members of group:eng's member). A permission
// is a rewrite of other relations: union, intersection, exclusion, computed
// references on the same object and arrows (parent->view, and
// parent.all(view), which requires every parent). A subject set contains
// itself: group:eng#member is in group:eng's member.
//
// Answers are three-valued. A relationship with a caveat holds, does not
// hold, or is conditional on caveat parameters the request did not supply;
// Kleene logic carries the condition up (union: yes if any branch is yes;
// intersection: no if any is no; exclusion: no if the base is no or the
// subtraction yes) together with the sorted names of the missing
// parameters. A caveat is evaluated with the request's context overlaid by
// the context stored on the relationship. An arrow's relationship gates its
// branch: parent->view is the disjunction, over the parent relationships,
// of "the relationship's caveat holds and the parent has view";
// parent.all(view) is their conjunction, and no when there is no parent
// (SpiceDB's meaning: a parent whose caveat is false makes it no).
// Relationships whose expiration has passed (at Params.Now) are invisible.
//
// # Evaluation
//
// Check walks the rewrite trees depth first. Unions stop at the first yes
// and intersections at the first no; an exclusion skips its subtraction
// when the base is no. Branches that may fan out run concurrently within a
// per-request goroutine budget (Options.Concurrency); point reads run
// inline; only the top levels run in parallel. The schema is analysed once
// in New: the subject kinds each relation can contain prune branches that
// cannot lead to the subject.
//
// Some questions are cheaper from the subject's side. A relation that is
// recursive through subject sets (department#member holding
// department#member) and pure — unions, computed references and arrows
// only, no caveat reachable — is decided by one walk up the store's reverse
// index from the subject, done once per request and shared by every object
// the request asks about; so is a union over 16 or more subject sets or
// arrow subjects whose targets are pure. The walk has a budget (512
// objects); past it the evaluator walks down from the resource as usual.
//
// The direction of an arrow's walk is planned per object: its tupleset
// relationships are read up to that same threshold, and when there are
// more (a document in thousands of folders) a plain arrow over pure
// targets is decided by the walk up from the subject followed by one point
// read of the tupleset relationship per object the walk found, without
// reading the rest; so are a relation's subject sets of one kind
// (doc#viewer holding thousands of group#member).
// CheckResult.SubjectSidePlans counts the decisions so made.
//
// When the store keeps statistics (store.StatsReader: relationships and
// distinct objects per resource relation and subject relation), they decide
// without the probe where the averages are clear: a tupleset or subject-set
// relation with 64 or more relationships per object goes up from the
// subject at once; a subject kind named by more relationships per subject
// than the walk's budget is walked top-down without trying. They also
// order the fan-outs of unions and intersections cheapest first, and
// put an exclusion's subtraction before its base where it is estimated to
// read at most half as much (without statistics: where it is point reads
// and the base fans out) and the base cannot fail (no caveat reaches it,
// its paths are bounded within the depth limit): a subtraction that
// holds then answers "no" without the base. Every such choice is between
// plans with the same answer, the same conditional answers and the same
// failures on the depth limit; Options.Plans counts them
// (pemba_engine_check_plans_total) and Explain shows them
// (ExplainNode.Plan). See planstats.go and exclusion.go.
//
// # Depth
//
// Options.MaxDepth bounds the relations on one path of an answer, counted
// from the relation asked about (itself included) to the one whose
// relationship names the subject: one per computed reference, arrow or
// subject set followed. Every walk counts the same way. The top-down walk
// counts its frames; the walks up from the subject (LookupResources,
// reverse checks, fan-outs) and forward over the resource's graph
// (LookupSubjects) are breadth first and record, for each relation they
// reach, the length of the shortest path to the subject. A grant whose
// shortest path is within the bound is an answer; one only deeper is left
// to the top-down walk, which fails on that path exactly as Check does, so
// every operation grants or every one fails with the same *MaxDepthError.
// An answer carries the height it needed (result.h: for a grant, the path
// that proves it; otherwise every branch it had to rule out), and a
// memoized, cached or remote answer is reused only at a depth where a
// fresh evaluation would also fit. A "no" that a walk up from the subject
// proves (nothing reaches it) holds at any depth.
//
// Cycles in the data (group A in B in A) are answered by their least
// fixpoint: coming back to a node on the current path counts as "no" there,
// and any result that relied on that assumption is kept away from caches
// until the node it assumed has been decided. Nesting deeper than
// Options.MaxDepth fails with a *MaxDepthError, never with a "no"; the
// error names the path and whether the evaluation came back to a node on
// it (a cycle beside the deep path).
//
// # Sharing and caching
//
// Every subproblem (relation index, object, subject) goes through a chain of
// dispatchers. The first shares work within a request: a finished answer is
// reused, and an identical evaluation in flight is waited for when the wait
// cannot deadlock (see memoLayer); the items of CheckBulk share this table.
// With Options.Tracer set, the next records a span per subproblem below a
// recording span of the caller's (traceLayer; cache hits and cluster
// dispatches get spans too; without a tracer the layer is absent and
// tracing costs nothing). With Options.Router set, the next sends permissions owned by other nodes
// of a cluster to them (see remoteLayer). The last before evaluation, when
// Options.Cache is set, keeps answers across requests (cacheLayer, the only
// reader and writer of the cache), keyed by revision, schema, relation
// index, object, subject and — only for relations a caveat can reach — a
// hash of the request context. An entry records the clock interval in
// which it holds: from the Now it was computed at until the earliest
// expiration among the relationships it read. An answer is never served for
// another revision or outside that interval. The root of a check asks the
// chain first for a settled answer (dispatchChain.settled), which the cache
// layer gives without any request state being allocated: a warm Check
// allocates nothing.
//
// # Lookups
//
// LookupResources walks the schema backwards from the subject over the
// store's reverse index: relationships naming the subject (or its
// wildcard), then subject sets and arrows leading to them, up to the
// requested permission. Resources reached only through unions of
// uncaveated relationships are answers; those reached through an
// intersection, exclusion, arrow-all or caveat are candidates, confirmed
// with Check. Results stream in ascending ID order, so After is a cursor.
//
// LookupSubjects walks forward from the resource, collecting every subject
// of the requested type any branch mentions, and decides each with Check.
// A wildcard is reported as "*" with the subjects an exclusion removes from
// it in ExcludedIDs.
//
// Both walks read the nested-group index (nested.go) of the relations it
// covers, at revisions where it is complete and for calls whose contextual
// relationships add no edge of the relation (nestedlookup.go): the walk up
// reaches every object above T:y#r from one reverse read of y's closure
// rows, the forward walk reads the member sets of T:x#r at every depth in
// one read, each at the depth and height the breadth-first walk would give
// it, so the depth limit decides the same requests.
//
// Expand returns the rewrite tree with each relation's stored subjects;
// each node carries the caveat and expiry of the relationship through which
// its parent reached it, so that the tree, evaluated as Check evaluates the
// schema, gives Check's answers.
package eval
