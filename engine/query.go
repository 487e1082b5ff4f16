package engine

import (
	"context"
	"fmt"
	"iter"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// CheckRequest asks whether Subject has Permission on Resource.
type CheckRequest struct {
	Consistency Consistency
	Resource    tuple.ObjectRef
	Permission  string
	Subject     tuple.SubjectRef
	// Context supplies caveat parameters not fixed on relationships.
	Context map[string]any
}

// CheckResponse is the answer to a check and the revision it was answered at.
type CheckResponse struct {
	eval.CheckResult
	Zookie string
}

// Check answers one permission check.
func (e *Engine) Check(ctx context.Context, req CheckRequest) (CheckResponse, error) {
	if err := e.checkContextSize(req.Context); err != nil {
		return CheckResponse{}, err
	}
	v, err := e.needSchema(ctx, req.Consistency)
	if err != nil {
		return CheckResponse{}, err
	}
	res, err := v.c.eval.Check(ctx, e.params(v, req.Context), eval.CheckRequest{
		Resource: req.Resource, Permission: req.Permission, Subject: req.Subject,
	})
	if err != nil {
		return CheckResponse{}, fmt.Errorf("engine: check %s#%s@%s: %w", req.Resource, req.Permission, req.Subject, err)
	}
	return CheckResponse{CheckResult: res, Zookie: e.zookieOf(v.rev)}, nil
}

// CheckBulkRequest asks several checks at one revision with one context.
type CheckBulkRequest struct {
	Consistency Consistency
	Items       []eval.CheckRequest
	Context     map[string]any
}

// CheckBulk answers every item at one revision; per-item failures are
// reported in the item's Err, and the error result is for the request as
// a whole.
func (e *Engine) CheckBulk(ctx context.Context, req CheckBulkRequest) ([]eval.BulkResult, string, error) {
	if n := len(req.Items); n > e.limits.MaxBulkCheckItems {
		return nil, "", &LimitError{Limit: "items per bulk check", Max: e.limits.MaxBulkCheckItems, Got: n}
	}
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, "", err
	}
	v, err := e.needSchema(ctx, req.Consistency)
	if err != nil {
		return nil, "", err
	}
	return v.c.eval.CheckBulk(ctx, e.params(v, req.Context), req.Items), e.zookieOf(v.rev), nil
}

// ExpandRequest asks for the tree of subjects behind a permission.
type ExpandRequest struct {
	Consistency Consistency
	Resource    tuple.ObjectRef
	Permission  string
	// Depth bounds the tree (0: the evaluator's default).
	Depth   int
	Context map[string]any
}

// Expand returns the subject tree of Resource#Permission: the path that
// explains an answer.
func (e *Engine) Expand(ctx context.Context, req ExpandRequest) (*eval.Tree, string, error) {
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, "", err
	}
	v, err := e.needSchema(ctx, req.Consistency)
	if err != nil {
		return nil, "", err
	}
	t, err := v.c.eval.Expand(ctx, e.params(v, req.Context), req.Resource, req.Permission, req.Depth)
	if err != nil {
		return nil, "", fmt.Errorf("engine: expand %s#%s: %w", req.Resource, req.Permission, err)
	}
	return t, e.zookieOf(v.rev), nil
}

// LookupResourcesRequest asks which resources of a type a subject has a
// permission on.
type LookupResourcesRequest struct {
	Consistency Consistency
	eval.LookupResourcesRequest
	Context map[string]any
}

// LookupResources resolves the revision, then returns the zookie and a
// sequence of results at that revision. Limit 0 yields every result: a
// default cap would cut the answer without the caller knowing, so
// Limits.MaxLookupLimit bounds only a Limit the caller gives (a page size;
// resume a page with After).
func (e *Engine) LookupResources(ctx context.Context, req LookupResourcesRequest) (iter.Seq2[eval.ResourceResult, error], string, error) {
	switch {
	case req.Limit < 0:
		return nil, "", fmt.Errorf("%w: negative lookup limit %d", ErrInvalidRequest, req.Limit)
	case req.Limit > e.limits.MaxLookupLimit:
		return nil, "", &LimitError{Limit: "lookup results per page", Max: e.limits.MaxLookupLimit, Got: req.Limit,
			Hint: "give no limit to receive every result, or page with a smaller limit and the cursor of the last result"}
	}
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, "", err
	}
	v, err := e.needSchema(ctx, req.Consistency)
	if err != nil {
		return nil, "", err
	}
	return v.c.eval.LookupResources(ctx, e.params(v, req.Context), req.LookupResourcesRequest), e.zookieOf(v.rev), nil
}

// LookupSubjectsRequest asks which subjects of a type have a permission on
// a resource.
type LookupSubjectsRequest struct {
	Consistency Consistency
	eval.LookupSubjectsRequest
	Context map[string]any
}

// LookupSubjects resolves the revision, then returns the zookie and a
// sequence of results at that revision.
func (e *Engine) LookupSubjects(ctx context.Context, req LookupSubjectsRequest) (iter.Seq2[eval.SubjectResult, error], string, error) {
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, "", err
	}
	v, err := e.needSchema(ctx, req.Consistency)
	if err != nil {
		return nil, "", err
	}
	return v.c.eval.LookupSubjects(ctx, e.params(v, req.Context), req.LookupSubjectsRequest), e.zookieOf(v.rev), nil
}

func (e *Engine) params(v *view, ctx map[string]any) eval.Params {
	return eval.Params{Reader: v.reader, Now: e.now(), Context: ctx}
}
