package eval

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Scoped lookups. A list screen asks for "the customers in region north
// that I can view", not for everything the user can view. The scope is
// pushed into the evaluation: the side that is small (usually the scope)
// is enumerated, and only its members are decided (see lookupThrough and
// subjectCandidates), rather than listing everything and filtering. Where
// the scope is large, so can the answer be: the other side is streamed
// (streamplan.go, streamsubjects.go) and each candidate tested for the
// scope as it comes, holding nothing of the answer (lookupThrough,
// streamWithin).

// Through limits LookupResources to the resources that reach Object by
// following stored relationships: resource R is in the scope when a chain
// of one or more relationships R#r1@o1, o1#r2@o2, ..., on#rk@Object
// exists, each ri one of Relations. A chain follows a relationship's
// subject object whatever its subject relation (as an arrow does), never a
// wildcard subject, and only unexpired relationships; caveats on them are
// ignored: a scope says where a resource sits, and the permission itself
// is decided with its caveats as Check decides it.
type Through struct {
	Object tuple.ObjectRef
	// Relations are the relations followed from a resource towards
	// Object, each "relation" (that relation on every definition that has
	// it) or "type#relation". Empty means the relations the schema follows
	// with arrows (parent, folder, region, ...): its hierarchy.
	Relations []string
}

// String formats the scope as "region:north" or
// "folder:x via folder,parent", the form cursors hash.
func (t *Through) String() string {
	if t == nil {
		return ""
	}
	if len(t.Relations) == 0 {
		return t.Object.String()
	}
	return t.Object.String() + " via " + strings.Join(t.Relations, ",")
}

// Defaults of the scope planner.
const (
	// defaultScopeBudget bounds the objects the walk down from a scope
	// visits before the planner decides the scope is the large side and
	// walks from the subject (or the resource) instead.
	defaultScopeBudget = 4096
	// defaultScopeChecks is the number of scope candidates that are
	// checked one by one without walking the other side at all; above
	// it, the other side is walked (within its own budget) and the two
	// are intersected.
	defaultScopeChecks = 64
	// defaultScopeCheckCost is about how many objects a reverse walk
	// reaches in the time of one uncached Check of a candidate (measured
	// on the enterprise data set: ~200 µs against ~12 µs per object).
	// The subject's walk may reach that many objects per candidate
	// before checking the candidates is deemed cheaper.
	defaultScopeCheckCost = 16
)

// throughPlan is a Through compiled against the schema: which relations a
// chain may follow, between which types.
type throughPlan struct {
	obj tuple.ObjectRef
	// down, by subject type: the followed relations whose subjects may be
	// objects of that type, on types a resource can reach (for the walk
	// down from the scope object).
	down map[string][]*schema.Relation
	// up, by resource type: the followed relations on that type whose
	// subjects may lead to the scope object's type (for the walk up from a
	// resource).
	up map[string][]*schema.Relation
	// toObj: the types from which the scope object's type can be reached.
	toObj map[string]bool
}

// compileThrough checks t against the schema for resources of resType and
// compiles it; a scope that no chain of the schema's types can satisfy is
// an error, not an empty answer (it is a mistake in the request).
func (e *Evaluator) compileThrough(resType string, t *Through) (*throughPlan, error) {
	if t.Object.Type == "" || t.Object.ID == "" || t.Object.ID == tuple.Wildcard {
		return nil, invalidRequest("scope object %q needs a type and a concrete id", t.Object.String())
	}
	if e.s.Definitions[t.Object.Type] == nil {
		return nil, &UnknownDefinitionError{Name: t.Object.Type}
	}
	follow, err := e.scopeRelations(t.Relations)
	if err != nil {
		return nil, err
	}
	// Type graph: A -> B when a followed relation on A accepts B objects.
	succ := map[string][]string{}
	pred := map[string][]string{}
	for _, r := range follow {
		for _, a := range r.Allowed {
			if a.Wildcard {
				continue
			}
			succ[r.Definition.Name] = append(succ[r.Definition.Name], a.Type)
			pred[a.Type] = append(pred[a.Type], r.Definition.Name)
		}
	}
	fromRes := closure(resType, succ)
	toObj := closure(t.Object.Type, pred)
	reaches := false
	for _, a := range pred[t.Object.Type] {
		reaches = reaches || fromRes[a]
	}
	if !reaches {
		return nil, invalidRequest("no chain of the relations %s leads from %s to %s",
			relationNames(follow), resType, t.Object.Type)
	}
	p := &throughPlan{obj: t.Object, down: map[string][]*schema.Relation{}, up: map[string][]*schema.Relation{}, toObj: toObj}
	for _, r := range follow {
		a := r.Definition.Name
		if !fromRes[a] {
			continue
		}
		seen := map[string]bool{}
		for _, s := range r.Allowed {
			if s.Wildcard || !toObj[s.Type] || seen[s.Type] {
				continue
			}
			seen[s.Type] = true
			p.down[s.Type] = append(p.down[s.Type], r)
			if len(seen) == 1 {
				p.up[a] = append(p.up[a], r)
			}
		}
	}
	return p, nil
}

// scopeRelations resolves the relation names of a Through; none means the
// schema's arrow tuplesets.
func (e *Evaluator) scopeRelations(names []string) ([]*schema.Relation, error) {
	var out []*schema.Relation
	seen := map[*schema.Relation]bool{}
	add := func(r *schema.Relation) {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	if len(names) == 0 {
		for _, r := range e.an.rels {
			if r.Rewrite != nil {
				arrowTuplesets(r.Rewrite, add)
			}
		}
		if len(out) == 0 {
			return nil, invalidRequest("the schema follows no relation with an arrow: name the relations a scope follows")
		}
	}
	for _, n := range names {
		typ, name, qualified := strings.Cut(n, "#")
		if !qualified {
			typ, name = "", n
		}
		if name == "" || (qualified && typ == "") {
			return nil, invalidRequest("scope relation %q: want RELATION or TYPE#RELATION", n)
		}
		found := false
		for _, def := range slices.Sorted(maps.Keys(e.s.Definitions)) {
			if typ != "" && def != typ {
				continue
			}
			r := e.s.Definitions[def].Relations[name]
			if r == nil {
				continue
			}
			if r.IsPermission || r.Rewrite != nil {
				return nil, invalidRequest("scope relation %s#%s is a permission: a scope follows stored relationships", def, name)
			}
			found = true
			add(r)
		}
		switch {
		case found:
		case typ != "" && e.s.Definitions[typ] == nil:
			return nil, &UnknownDefinitionError{Name: typ}
		case typ != "":
			return nil, &UnknownRelationError{Definition: typ, Relation: name}
		default:
			return nil, invalidRequest("scope relation %q: no definition has it", name)
		}
	}
	slices.SortFunc(out, func(a, b *schema.Relation) int { return a.Index - b.Index })
	return out, nil
}

// arrowTuplesets calls add with the tupleset relation of every arrow in w.
func arrowTuplesets(w *schema.Rewrite, add func(*schema.Relation)) {
	if w.Kind == schema.RewriteArrow && w.Relation != nil {
		add(w.Relation)
	}
	for _, c := range w.Children {
		arrowTuplesets(c, add)
	}
}

func relationNames(rs []*schema.Relation) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Definition.Name + "#" + r.Name
	}
	return "[" + strings.Join(names, " ") + "]"
}

// closure returns start and every type reachable from it over next.
func closure(start string, next map[string][]string) map[string]bool {
	seen := map[string]bool{start: true}
	queue := []string{start}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		for _, n := range next[t] {
			if !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	return seen
}

// scopeMembers walks down from the scope object over the reverse index and
// returns the IDs of the objects of resType that reach it. It fails with
// errBudget after visiting more than budget objects (0: no bound).
func (rq *request) scopeMembers(ctx context.Context, p *throughPlan, resType string, budget int) ([]string, error) {
	visited := map[tuple.ObjectRef]bool{}
	queue := []tuple.ObjectRef{p.obj}
	var ids []string
	for head := 0; head < len(queue); head++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		o := queue[head]
		var err error
		for _, r := range p.down[o.Type] {
			// One read per subject relation r accepts on o's type, each
			// a seek to it and r (see eachArrowSubjectRel): a read naming
			// none would scan every relationship naming o, of every
			// resource type, on every page of a large scope.
			eachArrowSubjectRel(r, o.Type, func(srel string) {
				if err != nil {
					return
				}
				f := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: o.Type, ID: o.ID, Relation: srel}, ResourceType: r.Definition.Name, Relation: r.Name}
				for rel, rerr := range rq.reader.ReverseQueryRelationships(ctx, f, store.QueryOptions{Now: rq.now}) {
					if rerr != nil {
						err = rerr
						return
					}
					res := rel.Resource
					if visited[res] {
						continue
					}
					visited[res] = true
					if budget > 0 && len(visited) > budget {
						err = errBudget
						return
					}
					if res.Type == resType {
						ids = append(ids, res.ID)
					}
					queue = append(queue, res)
				}
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

// scopeTest decides, walking up from resources, whether they reach the
// scope object; it remembers what it learnt across resources, up to
// maxScopeKnown objects (then it starts afresh: a streamed lookup tests
// any number of resources, and must not hold them all). It is safe for
// concurrent use (the tests are serialized).
type scopeTest struct {
	p     *throughPlan
	mu    sync.Mutex
	known map[tuple.ObjectRef]bool
}

// maxScopeKnown bounds the objects a scopeTest remembers.
const maxScopeKnown = 4096

func newScopeTest(p *throughPlan) *scopeTest {
	return &scopeTest{p: p, known: map[tuple.ObjectRef]bool{}}
}

// in reports whether o reaches the scope object by one or more
// relationships, reading through rq (whose memory account the reads are
// charged to).
func (s *scopeTest) in(ctx context.Context, rq *request, o tuple.ObjectRef) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.known[o]; ok {
		return v, nil
	}
	if len(s.known) >= maxScopeKnown {
		clear(s.known)
	}
	visited := map[tuple.ObjectRef]bool{o: true}
	queue := []tuple.ObjectRef{o}
	for head := 0; head < len(queue); head++ {
		cur := queue[head]
		for _, r := range s.p.up[cur.Type] {
			f := tuple.Filter{ResourceType: cur.Type, ResourceID: cur.ID, Relation: r.Name}
			rels, err := rq.query(ctx, f)
			if err != nil {
				return false, err
			}
			for _, rel := range rels {
				sub := tuple.ObjectRef{Type: rel.Subject.Type, ID: rel.Subject.ID}
				if sub.ID == tuple.Wildcard || !s.p.toObj[sub.Type] {
					continue
				}
				if sub == s.p.obj || s.known[sub] {
					s.known[o] = true
					return true, nil
				}
				if _, no := s.known[sub]; no || visited[sub] {
					continue
				}
				visited[sub] = true
				queue = append(queue, sub)
			}
		}
	}
	// The walk saw everything these objects reach: none reaches the scope.
	for v := range visited {
		s.known[v] = false
	}
	return false, nil
}

// lookupThrough is LookupResources limited to req.Through. The planner
// enumerates the scope first, within a budget: when it is small its
// resources are checked one by one; when it is larger, the walk up from
// the subject is tried within a budget that grows with the candidates
// (what checking them would cost) and the two sides intersected (only
// resources in both are decided; past the budget the candidates are
// checked one by one); when the scope is over budget, the answer can be
// large: the subject's side is streamed (streamResources) and each of its
// resources tested for the scope by a walk up from the resource, before
// any Check, so that nothing of the answer is held; where that plan does
// not apply the subject's side is walked in full (within MaxLookupNodes)
// and tested alike.
func (rq *request) lookupThrough(ctx context.Context, req LookupResourcesRequest, goal *schema.Relation, yield func(ResourceResult, error) bool) {
	p, err := rq.e.compileThrough(req.ResourceType, req.Through)
	if err != nil {
		yield(ResourceResult{}, err)
		return
	}
	members, err := rq.scopeMembers(ctx, p, req.ResourceType, rq.e.scopeBudget)
	switch {
	case err == nil:
		ids := afterSorted(members, req.After)
		if len(ids) > rq.e.scopeChecks {
			w := newReverseWalk(rq, goal)
			w.budget = max(rq.e.reverseBudget, rq.e.scopeCheckCost*len(ids))
			switch err := w.run(ctx, req.Subject); {
			case err == nil:
				found := w.vals[goal.Index]
				ids = slices.DeleteFunc(ids, func(id string) bool { _, ok := found[id]; return !ok })
				rq.confirmResources(ctx, req, goal, ids, found, nil, yield)
				return
			case !errors.Is(err, errBudget):
				yield(ResourceResult{}, err)
				return
			}
		}
		rq.confirmResources(ctx, req, goal, ids, nil, nil, yield)
	case errors.Is(err, errBudget):
		st := newScopeTest(p)
		if rq.streamResources(ctx, req, goal, st, yield) {
			return
		}
		w := newReverseWalk(rq, goal)
		w.budget = rq.e.opts.MaxLookupNodes
		if err := w.run(ctx, req.Subject); err != nil {
			if errors.Is(err, errBudget) {
				err = &LookupTooLargeError{Max: w.budget}
			}
			yield(ResourceResult{}, err)
			return
		}
		found := w.vals[goal.Index]
		keep := func(ctx context.Context, id string) (bool, error) {
			return st.in(ctx, rq, tuple.ObjectRef{Type: req.ResourceType, ID: id})
		}
		rq.confirmResources(ctx, req, goal, afterSorted(slices.Collect(maps.Keys(found)), req.After), found, keep, yield)
	default:
		yield(ResourceResult{}, err)
	}
}

// afterSorted sorts ids and drops those not after after ("" keeps all).
func afterSorted(ids []string, after string) []string {
	out := ids[:0:0]
	for _, id := range ids {
		if after == "" || id > after {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// validateWithin checks the subject set of a scoped LookupSubjects.
func (e *Evaluator) validateWithin(w *tuple.SubjectRef) (*schema.Relation, error) {
	if w.Type == "" || w.ID == "" || w.ID == tuple.Wildcard || w.Relation == "" {
		return nil, invalidRequest("scope %q must be a subject set TYPE:ID#RELATION with a concrete id", w.String())
	}
	return e.resolve(w.Type, w.Relation)
}

// subjectSide is one side of a LookupSubjects: the subjects of a relation
// on an object. mentioned, when the side was walked, holds every subject
// that can be in it (see forwardWalk); nil means Check decides alone.
type subjectSide struct {
	rel       *schema.Relation
	id        string
	mentioned map[string]int32
	// over: the side's walk ran over the scope budget (mentioned is nil).
	over bool
}

// sure reports whether id is in the side without a Check: the side was
// walked, is pure, and met id within the depth limit.
func (s *subjectSide) sure(e *Evaluator, id string) bool {
	if s.mentioned == nil || !e.an.pure[s.rel.Index] {
		return false
	}
	d, ok := s.mentioned[id]
	return ok && int(d) <= e.opts.MaxDepth
}

// withinSide walks the Within subject set of a scoped LookupSubjects
// within the scope budget, on a request of its own: a walk that ends over
// budget keeps nothing, so what it charged is given back at once (a large
// subject set costs the budget's reads, never its members); a complete
// one keeps its members (at most the budget) until the lookup calls
// release. The side's over is set when the walk ran over the budget.
func (rq *request) withinSide(ctx context.Context, req LookupSubjectsRequest) (within *subjectSide, release func(), err error) {
	wrel, err := rq.e.validateWithin(req.Within)
	if err != nil {
		return nil, nil, err
	}
	within = &subjectSide{rel: wrel, id: req.Within.ID}
	wrq := rq.chunkRequest()
	m, err := wrq.forwardWalk(ctx, wrel, within.id, req.SubjectType, req.SubjectRelation, rq.e.scopeBudget)
	switch {
	case err == nil:
		within.mentioned = m
		return within, wrq.done, nil
	case errors.Is(err, errBudget):
		wrq.done()
		within.over = true
		return within, func() {}, nil
	}
	wrq.done()
	return nil, nil, err
}

// subjectCandidates returns the sides of req (the permission and, when
// scoped, the Within subject set, walked by withinSide) and the subject
// IDs that can be answers, unsorted. Unscoped, the permission's side is
// walked. Scoped: when the subject set's walk is complete, small and has
// no wildcard, its members are the candidates and the permission is not
// walked at all; else the permission is walked and the candidates are
// the subjects both sides can hold (a wildcard on one side admits the
// other side's subjects).
func (rq *request) subjectCandidates(ctx context.Context, req LookupSubjectsRequest, rel *schema.Relation, within *subjectSide) (perm *subjectSide, _ *subjectSide, ids []string, err error) {
	perm = &subjectSide{rel: rel, id: req.Resource.ID}
	walk := func(s *subjectSide, budget int) error {
		m, err := rq.forwardWalk(ctx, s.rel, s.id, req.SubjectType, req.SubjectRelation, budget)
		s.mentioned = m
		return err
	}
	if within == nil {
		if err := walk(perm, 0); err != nil {
			return nil, nil, nil, err
		}
		return perm, nil, slices.Collect(maps.Keys(perm.mentioned)), nil
	}
	if !within.over {
		if _, wild := within.mentioned[tuple.Wildcard]; !wild && len(within.mentioned) <= rq.e.scopeChecks {
			return perm, within, slices.Collect(maps.Keys(within.mentioned)), nil
		}
	}
	if err := walk(perm, 0); err != nil {
		return nil, nil, nil, err
	}
	_, permWild := perm.mentioned[tuple.Wildcard]
	if within.over {
		if !permWild {
			// Every answer is among the permission's subjects; the
			// subject set is decided by Check for each.
			return perm, within, slices.Collect(maps.Keys(perm.mentioned)), nil
		}
		// The permission admits everyone: the subject set's members are
		// needed after all.
		if err := walk(within, 0); err != nil {
			return nil, nil, nil, err
		}
	}
	_, withinWild := within.mentioned[tuple.Wildcard]
	set := map[string]bool{}
	for id := range perm.mentioned {
		if _, ok := within.mentioned[id]; ok || (withinWild && id != tuple.Wildcard) {
			set[id] = true
		}
	}
	for id := range within.mentioned {
		if _, ok := perm.mentioned[id]; ok || (permWild && id != tuple.Wildcard) {
			set[id] = true
		}
	}
	return perm, within, slices.Collect(maps.Keys(set)), nil
}

// streamWithin is a scoped LookupSubjects by a streamed plan
// (streamsubjects.go), for a scope whose answer can be large: a subject
// set whose walk was over the scope budget, or complete but with more
// members than the planner checks one by one (or the wildcard). The
// candidates are the permission's subjects, streamed in order through
// its intermediate nodes, each decided for the subject set too (a member
// the complete walk met needs no Check, one it did not meet is out);
// where the permission's plan does not apply and the subject set is
// large, the candidates are the subject set's, streamed alike, each
// decided for the permission by Check. Either way the answer is never
// held, only the nodes of one forward walk and one relationship per
// scan. Neither plan streams a side holding the wildcard, so no answer
// is the wildcard (whose excluded subjects would need every subject
// decided). It reports false, having yielded nothing, when neither plan
// applies, or the subject set is small (its members are checked).
func (rq *request) streamWithin(ctx context.Context, req LookupSubjectsRequest, rel *schema.Relation, within *subjectSide, yield func(SubjectResult, error) bool) bool {
	if !rq.streams() {
		return false
	}
	_, withinWild := within.mentioned[tuple.Wildcard]
	if !within.over && !withinWild && len(within.mentioned) <= rq.e.scopeChecks {
		return false
	}
	subType, subRel := req.SubjectType, req.SubjectRelation
	subject := func(id string) tuple.SubjectRef { return tuple.SubjectRef{Type: subType, ID: id, Relation: subRel} }
	after := req.After
	if after == tuple.Wildcard {
		after = ""
	}
	granted := CheckResult{Permissionship: HasPermission}
	// side decides whether id is in s: certain when the streamed plan
	// found it so, sure when the side's complete walk did.
	side := func(ctx context.Context, crq *request, s *subjectSide, id string, certain bool) (CheckResult, error) {
		if certain || s.sure(crq.e, id) {
			return granted, nil
		}
		if s.mentioned != nil {
			if _, ok := s.mentioned[id]; !ok {
				if _, wild := s.mentioned[tuple.Wildcard]; !wild {
					return CheckResult{}, nil // the walk met every subject that can be in it
				}
			}
		}
		r, err := crq.check(ctx, nil, s.rel, s.id, subject(id))
		return r.checkResult(), err
	}
	perm := &subjectSide{rel: rel, id: req.Resource.ID}
	// streamed is the side whose scans give the candidates; each is
	// decided for the other side too.
	streamed := perm
	plan, ok, err := rq.planSubjects(ctx, rel, perm.id, subType, subRel)
	if err == nil && (!ok || plan.wild) && within.over {
		streamed = within
		plan, ok, err = rq.planSubjects(ctx, within.rel, within.id, subType, subRel)
	}
	if err != nil {
		yield(SubjectResult{}, err)
		return true
	}
	if !ok || plan.wild {
		return false
	}
	if err := plan.charge(rq); err != nil {
		yield(SubjectResult{}, err)
		return true
	}
	scans := plan.open(ctx, rq, after)
	rq.e.streamed.Add(1)
	rq.e.streamedWithin.Add(1)
	if streamed == within {
		rq.e.streamedWithinSet.Add(1)
	}
	answers(ctx, rq, scans, tuple.Wildcard, after, req.Limit, 0, true, func(ctx context.Context, crq *request, id string, certain bool) (CheckResult, error) {
		// The subject set first, as decideSubjects does: a subject it
		// rejects is not asked about the permission.
		in, err := side(ctx, crq, within, id, certain && streamed == within)
		if err != nil || in.Permissionship == NoPermission {
			return CheckResult{}, err
		}
		p, err := side(ctx, crq, perm, id, certain && streamed == perm)
		if err != nil {
			return CheckResult{}, err
		}
		return both(p, in), nil
	}, subjectResult, yield)
	return true
}

// decideSubjects decides the subjects of chunk into results: the
// permission's answer, and with a scope the conjunction with the subject
// set's (a subject set decided "no" is not asked about the permission).
func (rq *request) decideSubjects(ctx context.Context, req LookupSubjectsRequest, perm, within *subjectSide, chunk []string, results []CheckResult) error {
	side := func(s *subjectSide, todoOf func(k int) bool, out []CheckResult) error {
		var todo []int
		for k, id := range chunk {
			if !todoOf(k) {
				continue
			}
			if s.sure(rq.e, id) {
				out[k] = CheckResult{Permissionship: HasPermission}
			} else {
				todo = append(todo, k)
			}
		}
		return rq.confirm(ctx, len(todo), func(ctx context.Context, i int) error {
			k := todo[i]
			sub := tuple.SubjectRef{Type: req.SubjectType, ID: chunk[k], Relation: req.SubjectRelation}
			res, err := rq.check(ctx, nil, s.rel, s.id, sub)
			out[k] = res.checkResult()
			return err
		})
	}
	all := func(int) bool { return true }
	if within == nil {
		return side(perm, all, results)
	}
	in := make([]CheckResult, len(chunk))
	if err := side(within, all, in); err != nil {
		return err
	}
	if err := side(perm, func(k int) bool { return in[k].Permissionship != NoPermission }, results); err != nil {
		return err
	}
	for k := range chunk {
		if in[k].Permissionship == NoPermission {
			results[k] = CheckResult{}
			continue
		}
		results[k] = both(results[k], in[k])
	}
	return nil
}

// both is the conjunction of two answers about one subject.
func both(a, b CheckResult) CheckResult {
	switch {
	case a.Permissionship == NoPermission || b.Permissionship == NoPermission:
		return CheckResult{}
	case a.Permissionship == HasPermission:
		return CheckResult{Permissionship: b.Permissionship, MissingContext: b.MissingContext}
	case b.Permissionship == HasPermission:
		return CheckResult{Permissionship: a.Permissionship, MissingContext: a.MissingContext}
	}
	return CheckResult{Permissionship: ConditionalPermission, MissingContext: unionMissing(a.MissingContext, b.MissingContext)}
}
