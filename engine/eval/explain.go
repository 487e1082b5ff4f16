package eval

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// This file is the explaining evaluator behind Explain. It is separate from
// Check on purpose: Check's fast path (cache, reverse walks, planner,
// short-circuits, concurrency) stays untouched and pays nothing for
// explanations. Explain walks the same rewrites top-down at the same
// snapshot, sequentially, evaluates every branch (no short-circuit), and
// records a node per step. It combines answers with the same Kleene
// operators as Check (or, and, not over result), takes a node on the path
// as "no" when the data cycles back to it, and fails a path longer than
// Options.MaxDepth the same way, so its verdict is Check's (the
// differential tests hold it to that). A subproblem answered once is
// reused where its answer is path-independent, marked Repeat, which keeps
// the walk linear in the data it reads.

// ExplainKind is what a node of an explanation stands for.
type ExplainKind uint8

// Explanation node kinds.
const (
	// ExplainRelation is a relation or permission of one object
	// (Object#Relation). Its children are a permission's rewrite, or a
	// relation's relationships naming the subject and its subject sets.
	ExplainRelation ExplainKind = iota
	// ExplainUnion: any child grants.
	ExplainUnion
	// ExplainIntersection: every child must grant.
	ExplainIntersection
	// ExplainExclusion: the first child minus the second.
	ExplainExclusion
	// ExplainArrow follows the relationships of Object#Relation (the
	// tupleset) and evaluates Target on each subject: one child per
	// relationship.
	ExplainArrow
	// ExplainRelationship is a stored relationship of Object#Relation
	// naming the subject (or its type's wildcard), or its absence.
	ExplainRelationship
	// ExplainSelf is "self": the object itself.
	ExplainSelf
	// ExplainNil is the empty set "nil".
	ExplainNil
)

var explainKindNames = [...]string{"relation", "union", "intersection", "exclusion", "arrow", "relationship", "self", "nil"}

func (k ExplainKind) String() string {
	if int(k) < len(explainKindNames) {
		return explainKindNames[k]
	}
	return "unknown"
}

// ExplainReason says why a node has its answer, where a step alone
// decides it.
type ExplainReason uint8

// Reasons.
const (
	// ReasonNone: the answer follows from the children.
	ReasonNone ExplainReason = iota
	// ReasonMissing: no relationship exists; Wanted, when set, is the
	// relationship that would grant.
	ReasonMissing
	// ReasonCaveatFalse: the relationship's caveat evaluated to false
	// (see Caveat for the expression and values).
	ReasonCaveatFalse
	// ReasonCaveatMissing: the caveat needs parameters the request did
	// not supply (MissingContext).
	ReasonCaveatMissing
	// ReasonExpired: the relationship expired at
	// Relationship.Expiration, at or before the check's clock.
	ReasonExpired
	// ReasonExcluded: the base of an exclusion grants and so does the
	// subtraction (its second child is the excluding path).
	ReasonExcluded
	// ReasonDepthLimit: the path (Path) is longer than the depth limit.
	ReasonDepthLimit
	// ReasonCycle: the data came back to a relation already on the path,
	// which counts as "no" there.
	ReasonCycle
	// ReasonNotAllowed: the schema rules out subjects of this kind for
	// the relation (nothing was read).
	ReasonNotAllowed
	// ReasonNoTarget: the arrow's subject is of a type that lacks the
	// target relation.
	ReasonNoTarget
	// ReasonSubjectItself: the subject is this subject set.
	ReasonSubjectItself
	// ReasonNotSelf: "self" holds only the object itself.
	ReasonNotSelf
)

var explainReasonNames = [...]string{"", "missing relationship", "caveat false", "caveat needs context", "expired",
	"excluded", "depth limit", "cycle", "subject type not allowed", "arrow target missing on subject type",
	"the subject itself", "not the object itself"}

func (r ExplainReason) String() string {
	if int(r) < len(explainReasonNames) {
		return explainReasonNames[r]
	}
	return "unknown"
}

// CaveatExplanation is one evaluation of a relationship's caveat.
type CaveatExplanation struct {
	Name       string
	Expression string
	// Context holds the values the evaluation used: the request's
	// context overlaid with the relationship's, restricted to the
	// caveat's parameters.
	Context map[string]any
	// Result is HasPermission (true), NoPermission (false) or
	// ConditionalPermission (Missing parameters).
	Result  Permissionship
	Missing []string
}

// ExplainNode is one step of an explanation, with its answer.
type ExplainNode struct {
	Kind ExplainKind
	// Object and Relation: the relation or permission evaluated
	// (ExplainRelation), the relation holding the relationship
	// (ExplainRelationship), the tupleset (ExplainArrow), or the object a
	// set operation, self or nil is evaluated on (Relation then is the
	// permission it belongs to).
	Object   tuple.ObjectRef
	Relation string
	// Target and ArrowAll describe an arrow: Relation->Target, or
	// Relation.all(Target). A ReasonNoTarget step names in Target the
	// relation its subject's type lacks.
	Target   string
	ArrowAll bool

	Permissionship Permissionship
	MissingContext []string // sorted, for ConditionalPermission
	// Err is set when the step failed (the depth limit); Permissionship
	// is then meaningless.
	Err    error
	Reason ExplainReason

	// Relationship is the stored relationship the step rests on: the one
	// naming the subject (ExplainRelationship), or the subject set or
	// tupleset relationship through which the parent reached this node.
	// Nil where there is none.
	Relationship *tuple.Relationship
	// Caveat is the evaluation of Relationship's caveat, when it has one.
	Caveat *CaveatExplanation
	// Wanted is the relationship that would grant where one is missing.
	Wanted *tuple.Relationship
	// Path lists "type:id#relation" from the checked permission to the
	// step past the depth limit (ReasonDepthLimit).
	Path []string
	// Repeat marks a subproblem answered earlier in the same
	// explanation: its children are those of the first occurrence.
	Repeat bool
	// Truncated marks a step shown without its children: the explanation
	// reached its size limit (see defaultExplainNodes). Its answer stands.
	Truncated bool
	// Plan names the planner's choice at this step where Check departs
	// from the written order (Plan.String): children_statistics (a union
	// or intersection whose children Check evaluates in Order, cheapest
	// first by the store's statistics), exclusion_subtraction_first (an
	// exclusion whose subtraction Check evaluates before its base) and
	// exclusion_base_skipped (of those, one whose subtraction holds: the
	// base is not evaluated, and Children holds the subtraction only).
	// Empty for the written order.
	Plan string
	// Order lists, with Plan children_statistics, the indexes of
	// Children in the order Check evaluates them.
	Order []int

	Children []*ExplainNode

	res  result       // the answer as Check combines it
	own  result       // ExplainRelation: the relation's answer, before a caveat gates it
	orig *ExplainNode // for Repeat: the first occurrence
}

// Explanation is the answer of Explain: Check's answer and the tree that
// proves it. For HasPermission the tree is a witness: one granting branch
// of each union, every branch of an intersection, and why an exclusion's
// subtraction fails. Otherwise it holds every branch tried and why it
// failed.
type Explanation struct {
	CheckResult
	Root *ExplainNode
	// Nearest, for NoPermission, is the missing relationship nearest the
	// checked permission that, written alone (without caveat or
	// expiration), would grant: tried by a check with it added, among
	// the first 16 missing relationships of the tree, nearest first. Nil
	// when none of them would.
	Nearest *tuple.Relationship
}

// Explain answers req as Check does and explains the answer. Check
// decides; the explaining walk must agree with it (an *ExplainMismatchError
// otherwise, a bug). When Check fails on the depth limit, so does Explain,
// with the same *MaxDepthError and beside it the explanation walked under
// the same limit, whose ReasonDepthLimit nodes name the paths. When Check
// answers, the walk is not bounded by depth (cycles still end it): Check
// proved the answer within the limit, by means (walks up from the
// subject) that a top-down walk cannot always repeat within it.
func (e *Evaluator) Explain(ctx context.Context, p Params, req CheckRequest) (*Explanation, error) {
	rel, err := e.root(req)
	if err != nil {
		return nil, err
	}
	if p.Now.IsZero() {
		p.Now = time.Now() // one clock for the check and the walk
	}
	want, cerr := e.Check(ctx, p, req)
	if cerr != nil && !errors.Is(cerr, ErrMaxDepth) {
		return nil, cerr
	}
	rq, err := e.newRequest(p)
	if err != nil {
		return nil, err
	}
	defer rq.done()
	x := &explainer{rq: rq, sub: req.Subject, memo: map[explainKey]*ExplainNode{}, limit: unboundedDepth}
	if cerr != nil {
		x.limit = e.opts.MaxDepth
	}
	n, err := x.relation(ctx, nil, rel, req.Resource.ID)
	if cerr != nil {
		return &Explanation{Root: newPruner(e.explainNodes).prune(n, false)}, cerr
	}
	if err != nil {
		return nil, err
	}
	if n.Permissionship != want.Permissionship {
		return nil, &ExplainMismatchError{Check: want.Permissionship, Explain: n.Permissionship}
	}
	out := &Explanation{CheckResult: want, Root: newPruner(e.explainNodes).prune(n, false)}
	if want.Permissionship == NoPermission {
		if out.Nearest, err = e.nearest(ctx, p, req, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// unboundedDepth is the depth limit of an explaining walk whose answer
// Check has already given.
const unboundedDepth = 1 << 30

// Relationships returns the stored relationships an explanation rests on:
// for a grant, a set that alone reproduces it (a proof). Expired
// relationships and missing ones (Wanted) are not among them.
func (x *Explanation) Relationships() []tuple.Relationship {
	var out []tuple.Relationship
	seen := map[tuple.Key]bool{}
	var walk func(n *ExplainNode)
	walk = func(n *ExplainNode) {
		if r := n.Relationship; r != nil && n.Reason != ReasonExpired && !seen[r.Key()] {
			seen[r.Key()] = true
			out = append(out, *r)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	if x != nil && x.Root != nil {
		walk(x.Root)
	}
	return out
}

type explainKey struct {
	rel int
	id  string
}

// explainer is the state of one Explain call.
type explainer struct {
	rq   *request
	sub  tuple.SubjectRef
	memo map[explainKey]*ExplainNode
	// limit bounds the relations on a path (see Options.MaxDepth).
	limit int
}

// xframe is one relation on the path of the explaining walk.
type xframe struct {
	parent *xframe
	rel    *schema.Relation
	id     string
	depth  int32
	cycled bool
}

// relation explains whether the subject is in rel of object id, below
// parent; it mirrors request.start and compute. A node is returned with
// any error (a depth failure), whose answer it records.
func (x *explainer) relation(ctx context.Context, parent *xframe, rel *schema.Relation, id string) (*ExplainNode, error) {
	n := &ExplainNode{Kind: ExplainRelation, Object: tuple.ObjectRef{Type: rel.Definition.Name, ID: id}, Relation: rel.Name}
	if err := ctx.Err(); err != nil {
		return n, err
	}
	sub := x.sub
	if sub.Relation == rel.Name && sub.ID == id && sub.Type == rel.Definition.Name {
		return n.set(resYes, ReasonSubjectItself), nil
	}
	if !x.rq.e.an.canContain(rel, sub.Type, sub.Relation) {
		return n.set(resNo, ReasonNotAllowed), nil
	}
	for f := parent; f != nil; f = f.parent {
		if f.rel == rel && f.id == id {
			f.cycled = true
			r := resNo
			r.cut = f.depth
			return n.set(r, ReasonCycle), nil
		}
	}
	f := &xframe{parent: parent, rel: rel, id: id, depth: 1}
	if parent != nil {
		f.depth = parent.depth + 1
	}
	if int(f.depth) > x.limit {
		err := x.depthError(f)
		n.Err, n.Reason = err, ReasonDepthLimit
		n.Path = err.(*MaxDepthError).Path
		return n, err
	}
	k := explainKey{rel.Index, id}
	if prev := x.memo[k]; prev != nil && prev.own.fits(f.depth, x.limit) {
		r := &ExplainNode{Kind: ExplainRelation, Object: n.Object, Relation: n.Relation, Repeat: true, orig: prev}
		r.set(prev.own, ReasonNone)
		r.own = prev.own
		return r, nil
	}
	var (
		res result
		err error
	)
	if rel.Rewrite != nil {
		var c *ExplainNode
		c, err = x.rewrite(ctx, f, rel.Rewrite)
		n.Children = []*ExplainNode{c}
		res = c.res
	} else {
		res, err = x.direct(ctx, f, n)
	}
	if err != nil {
		n.Err = err
		return n, err
	}
	if res.cut >= f.depth {
		res.cut = noCut
	}
	res.h++
	n.set(res, ReasonNone)
	n.own = res
	if res.cut == noCut {
		x.memo[k] = n
	}
	return n, nil
}

// set records res (and reason) as n's answer and returns n.
func (n *ExplainNode) set(res result, reason ExplainReason) *ExplainNode {
	n.res, n.Reason = res, reason
	n.Permissionship = res.perm
	n.MissingContext = nil
	if res.perm == ConditionalPermission {
		n.MissingContext = slices.Clone(res.missing)
	}
	return n
}

// fail records err as n's answer.
func (n *ExplainNode) fail(err error) *ExplainNode {
	n.Err = err
	return n
}

// depthError is the *MaxDepthError of the path ending at f, as Check
// reports it.
func (x *explainer) depthError(f *xframe) error {
	var path []string
	cycle := false
	objects := map[string]bool{}
	last := ""
	for ; f != nil; f = f.parent {
		obj := f.rel.Definition.Name + ":" + f.id
		if (obj != last && objects[obj]) || f.cycled {
			cycle = true
		}
		objects[obj], last = true, obj
		path = append(path, obj+"#"+f.rel.Name)
	}
	slices.Reverse(path)
	return &MaxDepthError{Depth: x.limit, Path: path, Cycle: cycle}
}

// combine folds the answers of children with op as Check's fold does:
// every child is evaluated; an error fails the fold unless a child decided
// it.
func combine(op connective, children []*ExplainNode) (result, error) {
	acc := op.unit()
	var err error
	decided := false
	for _, c := range children {
		if c.Err != nil {
			if err == nil {
				err = c.Err
			}
			continue
		}
		if c.res.perm == op.decider() && !decided {
			// The fold stops at the first deciding child: its height is
			// what the answer needed.
			decided = true
		}
		acc = op.combine(acc, c.res)
	}
	if !decided && err != nil {
		return result{}, err
	}
	return acc, nil
}

// rewrite explains w on f's object; it mirrors request.rewrite.
func (x *explainer) rewrite(ctx context.Context, f *xframe, w *schema.Rewrite) (*ExplainNode, error) {
	obj := tuple.ObjectRef{Type: f.rel.Definition.Name, ID: f.id}
	switch w.Kind {
	case schema.RewriteComputed:
		return x.relation(ctx, f, w.Relation, f.id)
	case schema.RewriteArrow:
		return x.arrow(ctx, f, w)
	case schema.RewriteSelf:
		n := &ExplainNode{Kind: ExplainSelf, Object: obj, Relation: f.rel.Name}
		if selfHolds(obj.Type, obj.ID, x.sub) {
			return n.set(resYes, ReasonNone), nil
		}
		return n.set(resNo, ReasonNotSelf), nil
	case schema.RewriteUnion, schema.RewriteIntersection:
		n := &ExplainNode{Kind: ExplainUnion, Object: obj, Relation: f.rel.Name}
		op := disjunction
		if w.Kind == schema.RewriteIntersection {
			n.Kind, op = ExplainIntersection, conjunction
		}
		if x.rq.stats != nil {
			if order, ok := x.rq.statsOrders().orders[w]; ok {
				n.Plan, n.Order = PlanChildrenStatistics.String(), slices.Clone(order)
			}
		}
		for _, cw := range w.Children {
			c, err := x.rewrite(ctx, f, cw)
			if c == nil {
				return n.fail(err), err
			}
			n.Children = append(n.Children, c)
		}
		res, err := combine(op, n.Children)
		if err != nil {
			return n.fail(err), err
		}
		return n.set(res, ReasonNone), nil
	case schema.RewriteExclusion:
		n := &ExplainNode{Kind: ExplainExclusion, Object: obj, Relation: f.rel.Name}
		if p, ok := x.rq.subtractFirst(w, f.depth); ok {
			return x.subtractionFirst(ctx, f, w, n, p)
		}
		base, err := x.rewrite(ctx, f, w.Children[0])
		n.Children = append(n.Children, base)
		if err != nil {
			return n.fail(err), err
		}
		if base.res.perm == NoPermission {
			return n.set(base.res, ReasonNone), nil
		}
		minus, err := x.rewrite(ctx, f, w.Children[1])
		n.Children = append(n.Children, minus)
		if err != nil {
			return n.fail(err), err
		}
		return n.set(exclude(base.res, minus.res), excludedReason(minus.res)), nil
	}
	return (&ExplainNode{Kind: ExplainNil, Object: obj, Relation: f.rel.Name}).set(resNo, ReasonNone), nil
}

// excludedReason is the reason of an exclusion whose base is not "no",
// by its subtraction's answer.
func excludedReason(minus result) ExplainReason {
	if minus.perm == HasPermission {
		return ReasonExcluded
	}
	return ReasonNone
}

// subtractionFirst explains exclusion w on f's object (node n) as
// request.subtractionFirst evaluates it: the subtraction first, and the
// base only when the subtraction does not hold. Children keep the
// written order, base first; a failed subtraction is left out when the
// base's "no" decides, as the walk never reads it then.
func (x *explainer) subtractionFirst(ctx context.Context, f *xframe, w *schema.Rewrite, n *ExplainNode, p exclusionPlan) (*ExplainNode, error) {
	n.Plan = PlanExclusionSubtractionFirst.String()
	minus, merr := x.rewrite(ctx, f, w.Children[1])
	if merr == nil && minus.res.perm == HasPermission {
		n.Plan = PlanExclusionBaseSkipped.String()
		n.Children = []*ExplainNode{minus}
		return n.set(subtracted(minus.res, p), ReasonExcluded), nil
	}
	base, err := x.rewrite(ctx, f, w.Children[0])
	if base == nil {
		return n.fail(err), err
	}
	n.Children = append(n.Children, base)
	if err != nil {
		return n.fail(err), err
	}
	if base.res.perm == NoPermission {
		if merr == nil {
			n.Children = append(n.Children, minus)
		}
		return n.set(base.res, ReasonNone), nil
	}
	if minus != nil {
		n.Children = append(n.Children, minus)
	}
	if merr != nil {
		return n.fail(merr), merr
	}
	return n.set(exclude(base.res, minus.res), excludedReason(minus.res)), nil
}

// reads returns the relationships matching fl visible at the check's
// clock, and those that match but expired at or before it (found by
// reading again without hiding expired relationships; GC may have removed
// some of them already).
func (x *explainer) reads(ctx context.Context, fl tuple.Filter) (visible, expired []tuple.Relationship, err error) {
	if visible, err = x.rq.query(ctx, fl); err != nil {
		return nil, nil, err
	}
	for r, err := range x.rq.reader.QueryRelationships(ctx, fl, store.QueryOptions{}) {
		if err != nil {
			return nil, nil, err
		}
		if r.ExpiredAt(x.rq.now) {
			expired = append(expired, r)
		}
	}
	return visible, expired, nil
}

// caveat evaluates r's caveat as Check does and describes the evaluation.
func (x *explainer) caveat(r *tuple.Relationship) (result, *CaveatExplanation, error) {
	cv, err := x.rq.caveat(r)
	if err != nil || r.Caveat == nil {
		return cv, nil, err
	}
	c := x.rq.e.s.Caveats[r.Caveat.Name]
	ce := &CaveatExplanation{Name: c.Name, Expression: c.Expression, Result: cv.perm, Missing: slices.Clone(cv.missing)}
	for _, p := range c.Params {
		v, ok := r.Caveat.Context[p.Name]
		if !ok {
			v, ok = x.rq.context[p.Name]
		}
		if ok {
			if ce.Context == nil {
				ce.Context = map[string]any{}
			}
			ce.Context[p.Name] = v
		}
	}
	return cv, ce, nil
}

// leaf is the node of relationship r of f's relation naming the subject
// (or its wildcard), with its caveat evaluated.
func (x *explainer) leaf(r tuple.Relationship) (*ExplainNode, error) {
	n := &ExplainNode{Kind: ExplainRelationship, Object: r.Resource, Relation: r.Relation, Relationship: &r}
	cv, ce, err := x.caveat(&r)
	if err != nil {
		return nil, err
	}
	n.Caveat = ce
	return n.set(cv, caveatReason(cv)), nil
}

func caveatReason(cv result) ExplainReason {
	switch cv.perm {
	case NoPermission:
		return ReasonCaveatFalse
	case ConditionalPermission:
		return ReasonCaveatMissing
	}
	return ReasonNone
}

// expiredLeaf is the node of relationship r that expired.
func expiredLeaf(r tuple.Relationship) *ExplainNode {
	return (&ExplainNode{Kind: ExplainRelationship, Object: r.Resource, Relation: r.Relation, Relationship: &r}).set(resNo, ReasonExpired)
}

// direct explains a relation on f's object (n's children): the
// relationships naming the subject or its wildcard, and the subject sets
// that can contain it. It mirrors request.direct.
func (x *explainer) direct(ctx context.Context, f *xframe, n *ExplainNode) (result, error) {
	sub := x.sub
	info := &x.rq.e.an.direct[f.rel.Index]
	var exact, wild bool
	if sub.Relation == "" {
		if sub.ID == tuple.Wildcard {
			exact = info.wildcard[sub.Type]
		} else {
			exact = info.plain[sub.Type]
			wild = info.wildcard[sub.Type]
		}
	} else {
		exact = info.sets[kind{sub.Type, sub.Relation}]
	}
	srel := sub.Relation
	if srel == "" {
		srel = tuple.Ellipsis
	}
	point := func(id string) error {
		fl := tuple.Filter{ResourceType: n.Object.Type, ResourceID: n.Object.ID, Relation: n.Relation,
			Subject: &tuple.SubjectFilter{Type: sub.Type, ID: id, Relation: srel}}
		visible, expired, err := x.reads(ctx, fl)
		if err != nil {
			return err
		}
		for _, r := range visible {
			c, err := x.leaf(r)
			if err != nil {
				return err
			}
			n.Children = append(n.Children, c)
		}
		for _, r := range expired {
			n.Children = append(n.Children, expiredLeaf(r))
		}
		if len(visible)+len(expired) == 0 && id == sub.ID {
			want := tuple.Relationship{Resource: n.Object, Relation: n.Relation, Subject: sub}
			m := &ExplainNode{Kind: ExplainRelationship, Object: n.Object, Relation: n.Relation, Wanted: &want}
			n.Children = append(n.Children, m.set(resNo, ReasonMissing))
		}
		return nil
	}
	if exact {
		if err := point(sub.ID); err != nil {
			return result{}, err
		}
	}
	if wild {
		if err := point(tuple.Wildcard); err != nil {
			return result{}, err
		}
	}
	for _, us := range info.usersets {
		if !x.rq.e.an.canContain(us.target, sub.Type, sub.Relation) {
			continue
		}
		fl := tuple.Filter{ResourceType: n.Object.Type, ResourceID: n.Object.ID, Relation: n.Relation,
			Subject: &tuple.SubjectFilter{Type: us.typ, Relation: us.rel}}
		visible, expired, err := x.reads(ctx, fl)
		if err != nil {
			return result{}, err
		}
		for _, r := range visible {
			if r.Subject == sub || r.Subject.ID == tuple.Wildcard {
				continue // a point read above
			}
			c, err := x.follow(ctx, f, us.target, r)
			if c == nil {
				return result{}, err
			}
			n.Children = append(n.Children, c)
		}
		for _, r := range expired {
			if r.Subject != sub && r.Subject.ID != tuple.Wildcard {
				n.Children = append(n.Children, expiredLeaf(r))
			}
		}
	}
	if len(n.Children) == 0 {
		// Nothing stored could grant: no relationship naming the subject
		// (the schema allows none directly) and no subject set.
		m := &ExplainNode{Kind: ExplainRelationship, Object: n.Object, Relation: n.Relation}
		n.Children = append(n.Children, m.set(resNo, ReasonMissing))
	}
	return combine(disjunction, n.Children)
}

// follow explains target on the subject of relationship r (a subject set
// or a tupleset relationship) one frame below f: and(r's caveat, target).
// A false caveat is the answer without following.
func (x *explainer) follow(ctx context.Context, f *xframe, target *schema.Relation, r tuple.Relationship) (*ExplainNode, error) {
	cv, ce, err := x.caveat(&r)
	if err != nil {
		return nil, err
	}
	if cv.perm == NoPermission {
		n := &ExplainNode{Kind: ExplainRelation, Object: tuple.ObjectRef{Type: target.Definition.Name, ID: r.Subject.ID},
			Relation: target.Name, Relationship: &r, Caveat: ce}
		return n.set(cv, ReasonCaveatFalse), nil
	}
	n, err := x.relation(ctx, f, target, r.Subject.ID)
	n.Relationship, n.Caveat = &r, ce
	if err != nil {
		return n, err
	}
	// The relationship's condition gates the target's answer; a reason
	// of the target itself stays, the caveat's shows in Caveat.
	res := and(cv, n.res)
	reason := n.Reason
	if res.perm == ConditionalPermission && cv.perm == ConditionalPermission && n.res.perm == HasPermission {
		reason = ReasonCaveatMissing
	}
	if n.Repeat {
		n.res = res
		n.Permissionship, n.MissingContext = res.perm, nil
		if res.perm == ConditionalPermission {
			n.MissingContext = slices.Clone(res.missing)
		}
		n.Reason = reason
		return n, nil
	}
	return n.set(res, reason), nil
}

// arrow explains tupleset->target (or .all) on f's object; it mirrors
// request.arrow and arrowBranches.
func (x *explainer) arrow(ctx context.Context, f *xframe, w *schema.Rewrite) (*ExplainNode, error) {
	n := &ExplainNode{Kind: ExplainArrow, Object: tuple.ObjectRef{Type: f.rel.Definition.Name, ID: f.id},
		Relation: w.Relation.Name, Target: w.TargetName, ArrowAll: w.ArrowAll}
	fl := tuple.Filter{ResourceType: n.Object.Type, ResourceID: n.Object.ID, Relation: w.Relation.Name}
	visible, expired, err := x.reads(ctx, fl)
	if err != nil {
		return n.fail(err), err
	}
	acc := resNo
	var followed []*ExplainNode
	decided := false
	for _, r := range visible {
		if r.Subject.ID == tuple.Wildcard {
			continue
		}
		target := w.Targets[r.Subject.Type]
		if target == nil {
			c := &ExplainNode{Kind: ExplainRelationship, Object: r.Resource, Relation: r.Relation, Target: w.TargetName, Relationship: &r}
			cv, ce, err := x.caveat(&r)
			if err != nil {
				return n.fail(err), err
			}
			c.Caveat = ce
			acc.deps(cv)
			n.Children = append(n.Children, c.set(resNo, ReasonNoTarget))
			decided = decided || w.ArrowAll
			continue
		}
		c, err := x.follow(ctx, f, target, r)
		if c == nil {
			return n.fail(err), err
		}
		n.Children = append(n.Children, c)
		if c.Err == nil && (c.Reason == ReasonCaveatFalse || c.Reason == ReasonNotAllowed) {
			// Decided by the relationship alone (arrowBranches).
			acc.deps(c.res)
			decided = decided || w.ArrowAll
			continue
		}
		followed = append(followed, c)
	}
	for _, r := range expired {
		n.Children = append(n.Children, expiredLeaf(r))
	}
	if len(n.Children) == 0 {
		// No relationship to follow (wildcard subjects are not followed).
		n.Reason = ReasonMissing
	}
	var res result
	switch {
	case w.ArrowAll && decided:
		res = resNo
		res.deps(acc)
	case w.ArrowAll && len(followed) == 0:
		res = acc
	default:
		op := disjunction
		if w.ArrowAll {
			op = conjunction
		}
		res, err = combine(op, followed)
		if err != nil {
			return n.fail(err), err
		}
		res.deps(acc)
	}
	reason := n.Reason
	n.set(res, reason)
	return n, nil
}

// defaultExplainNodes bounds the steps an explanation shows outside a
// grant's witness: past it, a denied branch is shown without its children
// (Truncated), so that a denial over thousands of branches stays a
// readable, sendable message. A witness is always shown whole, or it
// would not prove its grant; so is every step on a failed path.
const defaultExplainNodes = 5000

// pruner shapes the walked tree into the explanation.
type pruner struct {
	emitted map[*ExplainNode]bool // the nodes kept so far
	shown   int                   // nodes emitted
	limit   int                   // see defaultExplainNodes
}

func newPruner(limit int) *pruner {
	return &pruner{emitted: map[*ExplainNode]bool{}, limit: limit}
}

// prune keeps, below a grant, one granting child of each union, relation
// and arrow (any): the witness; elsewhere every child, up to the limit. A
// Repeat whose first occurrence was pruned away takes its place.
// inWitness is set below a grant.
func (p *pruner) prune(n *ExplainNode, inWitness bool) *ExplainNode {
	if n.Repeat && !p.emitted[n.orig] {
		// The first occurrence was left out: show it here.
		m := *p.prune(n.orig, inWitness)
		m.Relationship, m.Caveat = n.Relationship, n.Caveat
		m.res, m.Permissionship, m.MissingContext, m.Reason = n.res, n.Permissionship, n.MissingContext, n.Reason
		return &m
	}
	p.emitted[n] = true
	p.shown++
	out := *n
	out.Children = nil
	grant := n.Err == nil && n.res.perm == HasPermission
	inWitness = inWitness || grant
	if grant && (n.Kind == ExplainUnion || n.Kind == ExplainRelation || (n.Kind == ExplainArrow && !n.ArrowAll)) {
		if c := witness(n.Children); c != nil {
			out.Children = []*ExplainNode{p.prune(c, inWitness)}
			return &out
		}
	}
	cut := !inWitness && n.Err == nil
	for _, c := range n.Children {
		if cut && p.shown >= p.limit {
			out.Truncated = true
			break
		}
		out.Children = append(out.Children, p.prune(c, inWitness))
	}
	return &out
}

// witness is the granting child with the shortest proof (the lowest
// height, then the first).
func witness(children []*ExplainNode) *ExplainNode {
	var best *ExplainNode
	for _, c := range children {
		if c.Err == nil && c.res.perm == HasPermission && (best == nil || c.res.h < best.res.h) {
			best = c
		}
	}
	return best
}
