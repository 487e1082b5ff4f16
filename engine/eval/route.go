package eval

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Router sends subproblems to the node of a cluster that owns them, so
// that each node's cache holds a distinct slice of the answers. An
// evaluator without a Router evaluates everything itself.
//
// Only permissions (relations with a rewrite) are routed: a plain
// relation is one index read, cheaper to do than to send.
type Router interface {
	// Route returns the peer that owns the permission relation of
	// resourceType:resourceID, or nil when this node owns it or the owner
	// cannot be reached now. It is called on every dispatch of a
	// permission, so it must be cheap and must not block.
	Route(resourceType, resourceID, relation string) Peer
}

// Peer evaluates subproblems dispatched to another node.
type Peer interface {
	// DispatchCheck evaluates req on the peer. Any error makes the caller
	// evaluate the subproblem itself: a peer that is down, slow to
	// answer or on another revision never fails a check. An error that
	// matches ErrMaxDepth says the peer followed a path past the depth
	// limit: the caller then evaluates the whole subtree itself, without
	// routing, to report that path.
	DispatchCheck(ctx context.Context, req *DispatchRequest) (*DispatchResponse, error)
}

// DispatchRequest is one subproblem sent to its owner: is Subject in
// Relation of Resource, at Revision, below Path?
type DispatchRequest struct {
	Revision store.Revision
	// Now is the caller's clock, so that both nodes agree on which
	// relationships have expired.
	Now time.Time
	// Context is the caveat context of the original request.
	Context  map[string]any
	Resource tuple.ObjectRef
	Relation string
	Subject  tuple.SubjectRef
	// Path is the chain of subproblems above this one, root first: the
	// owner needs it to detect cycles in the data and to count depth.
	// Path[i] is at depth i+1; the subproblem itself at len(Path)+1.
	Path []PathStep
}

// PathStep is one subproblem on the path to a dispatched one.
type PathStep struct {
	ResourceType, ResourceID, Relation string
}

// DispatchResponse is the answer to a DispatchRequest.
type DispatchResponse struct {
	Permissionship Permissionship
	MissingContext []string
	// Expires is the earliest expiration among the relationships read
	// (zero: none); the answer may change then.
	Expires time.Time
	// Cut is the depth of the shallowest path step that the answer
	// assumed to be "no" because the evaluation came back to it (a cycle
	// in the data), or 0 when it assumed nothing. Such an answer holds
	// only below that step.
	Cut int
	// Dispatches and Depth are the work done on the peer, as in
	// CheckResult (Depth is absolute, counted from the original root);
	// Depth is at least as deep as what the answer needed (see
	// result.h), also when it came from a cache.
	Dispatches int
	Depth      int
}

// remoteLayer sends permissions owned by another node to it, and
// evaluates everything else (and anything the owner fails to answer)
// with next. It sits below the memo layer, so a request sends each
// subproblem at most once, and above the cache, so a node caches only
// the subproblems it owns.
type remoteLayer struct {
	router Router
	next   dispatcher
	tracer trace.Tracer // nil: no tracing
}

func (l remoteLayer) dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error) {
	if f.local || f.pinned || f.rel.Rewrite == nil || rq.touches(sp.rel) {
		// A contextual relationship reachable from here exists on this
		// node only.
		return l.next.dispatch(ctx, rq, f, sp)
	}
	peer := l.router.Route(f.rel.Definition.Name, f.id, f.rel.Name)
	if peer == nil {
		return l.next.dispatch(ctx, rq, f, sp)
	}
	req := &DispatchRequest{
		Revision: rq.rev,
		Now:      rq.now,
		Context:  rq.context,
		Resource: tuple.ObjectRef{Type: f.rel.Definition.Name, ID: f.id},
		Relation: f.rel.Name,
		Subject:  sp.sub,
		Path:     make([]PathStep, f.depth-1),
	}
	for p := f.parent; p != nil; p = p.parent {
		req.Path[p.depth-1] = PathStep{ResourceType: p.rel.Definition.Name, ResourceID: p.id, Relation: p.rel.Name}
	}
	resp, err := l.send(ctx, peer, req)
	if err != nil || resp.Cut < 0 || resp.Cut >= int(f.depth) {
		if ctx.Err() != nil {
			return result{}, ctx.Err()
		}
		if errors.Is(err, ErrMaxDepth) {
			// The owner followed a path past the limit. Evaluating the
			// subtree here, routing nothing below, gives the error with
			// the whole path (the peer's does not cross the wire) at
			// the cost of one more walk, where routing the children
			// again would double the work on every level.
			pf := &frame{parent: f.parent, rel: f.rel, id: f.id, depth: f.depth, seq: f.seq, st: f.st, local: f.local, pinned: true}
			return l.next.dispatch(ctx, rq, pf, sp)
		}
		// The owner could not answer (or answered nonsense): the
		// subproblem is evaluated here, which reproduces any genuine
		// evaluation error with its local message.
		return l.next.dispatch(ctx, rq, f, sp)
	}
	if f.st != nil {
		f.st.dispatches.Add(int64(max(resp.Dispatches-1, 0)))
		f.st.dispatched(int32(min(resp.Depth, rq.e.opts.MaxDepth)))
	}
	res := result{perm: resp.Permissionship, expires: resp.Expires, cut: noCut}
	if res.perm == ConditionalPermission {
		res.missing = resp.MissingContext
	}
	// Depth reaches at least the bottom of what the answer needed: a
	// bound on its height, for reusing it (see fits).
	res.h = max(int32(resp.Depth)-f.depth+1, 1)
	if resp.Cut > 0 {
		res.cut = int32(resp.Cut)
	}
	return res, nil
}

// send sends req to peer, in a span of its own when tracing: the peer
// client propagates that span's context, so the peer's spans are its
// children.
func (l remoteLayer) send(ctx context.Context, peer Peer, req *DispatchRequest) (*DispatchResponse, error) {
	if l.tracer == nil || !recording(ctx) {
		return peer.DispatchCheck(ctx, req)
	}
	ctx, span := l.tracer.Start(ctx, SpanRemote, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		AttrResourceType.String(req.Resource.Type),
		AttrResourceID.String(req.Resource.ID),
		AttrPermission.String(req.Relation),
		AttrDepth.Int(len(req.Path)+1),
		AttrRemote.Bool(true),
	))
	resp, err := peer.DispatchCheck(ctx, req)
	if err == nil {
		span.SetAttributes(AttrDispatches.Int(resp.Dispatches))
		endSpan(span, resp.Permissionship, nil)
	} else {
		// The subproblem is then evaluated here: the error is the
		// peer's, not the check's.
		endSpan(span, 0, err)
	}
	return resp, err
}

// DispatchCheck answers a subproblem dispatched by another node, at the
// revision of p.Reader, which must be req.Revision. The subproblem itself
// is evaluated here; the subproblems below it may be routed on.
func (e *Evaluator) DispatchCheck(ctx context.Context, p Params, req *DispatchRequest) (*DispatchResponse, error) {
	if p.Reader == nil || p.Reader.Revision() != req.Revision {
		return nil, invalidRequest("dispatch: reader is not at revision %d", req.Revision)
	}
	if len(req.Path) >= e.opts.MaxDepth {
		return nil, invalidRequest("dispatch: path of %d steps exceeds the depth limit %d", len(req.Path), e.opts.MaxDepth)
	}
	rel, err := e.resolve(req.Resource.Type, req.Relation)
	if err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	if req.Resource.ID == "" || req.Resource.ID == tuple.Wildcard {
		return nil, invalidRequest("dispatch: resource %q needs a concrete id", req.Resource.String())
	}
	if err := e.validateSubject(req.Subject); err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	p.Now = req.Now
	p.Context = req.Context
	rq, err := e.newRequest(p)
	if err != nil {
		return nil, err
	}
	defer rq.done()
	st := new(checkStats)
	var parent *frame
	for i, s := range req.Path {
		r, err := e.resolve(s.ResourceType, s.Relation)
		if err != nil {
			return nil, fmt.Errorf("dispatch: path step %d: %w", i+1, err)
		}
		parent = &frame{parent: parent, rel: r, id: s.ResourceID, depth: int32(i + 1), seq: rq.seq.Add(1), st: st}
	}
	res, err := rq.start(ctx, checkCall{parent: parent, stats: st, local: true, rel: rel, id: req.Resource.ID, sub: req.Subject})
	if err != nil {
		return nil, err
	}
	out := &DispatchResponse{
		Permissionship: res.perm,
		Expires:        res.expires,
		Dispatches:     int(st.dispatches.Load()),
		// At least as deep as the path that proves a grant, which an
		// answer taken from a cache did not walk this time.
		Depth: max(int(st.depth.Load()), len(req.Path)+int(res.h)),
	}
	if res.perm == ConditionalPermission {
		out.MissingContext = res.missing
	}
	if res.cut != noCut {
		out.Cut = int(res.cut)
	}
	return out, nil
}
