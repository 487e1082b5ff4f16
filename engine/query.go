package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// CheckRequest asks whether Subject has Permission on Resource: the
// evaluator's question (one type at both levels, so nothing is copied
// field by field), with the freshness it needs and its caveat context.
type CheckRequest struct {
	Consistency Consistency
	eval.CheckRequest
	// Context supplies caveat parameters not fixed on relationships.
	Context map[string]any
	// Contextual are relationships that hold for this request only (see
	// Engine.checkContextual).
	Contextual []tuple.Relationship
}

// CheckResponse is the answer to a check and the revision it was answered at.
type CheckResponse struct {
	eval.CheckResult
	Zookie string
}

// check is Check, untraced.
func (e *Engine) check(ctx context.Context, req CheckRequest) (CheckResponse, error) {
	if err := e.checkContextSize(req.Context); err != nil {
		return CheckResponse{}, err
	}
	v, err := e.needSchemaWith(ctx, req.Consistency, req.Contextual)
	if err != nil {
		return CheckResponse{}, err
	}
	if err := e.noteDeprecated(ctx, v.c.schema, "check", use{req.Resource.Type, req.Permission}); err != nil {
		return CheckResponse{}, err
	}
	res, err := v.c.eval.Check(ctx, e.params(v, req.Context, req.Contextual), req.CheckRequest)
	if err != nil {
		return CheckResponse{}, fmt.Errorf("engine: check %s#%s@%s: %w", req.Resource, req.Permission, req.Subject, err)
	}
	return CheckResponse{CheckResult: res, Zookie: e.zookieOf(v.rev)}, nil
}

// ExpandRequest asks for the tree of subjects behind a permission: the
// evaluator's question with the freshness it needs and its caveat context.
type ExpandRequest struct {
	Consistency Consistency
	eval.ExpandRequest
	Context    map[string]any
	Contextual []tuple.Relationship
}

// expand is Expand, untraced.
func (e *Engine) expand(ctx context.Context, req ExpandRequest) (tree *eval.Tree, zookie string, err error) {
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, "", err
	}
	v, err := e.needSchemaWith(ctx, req.Consistency, req.Contextual)
	if err != nil {
		return nil, "", err
	}
	if err := e.noteDeprecated(ctx, v.c.schema, "expand", use{req.Resource.Type, req.Permission}); err != nil {
		return nil, "", err
	}
	t, err := v.c.eval.Expand(ctx, e.params(v, req.Context, req.Contextual), req.ExpandRequest)
	if err != nil {
		return nil, "", fmt.Errorf("engine: expand %s#%s: %w", req.Resource, req.Permission, err)
	}
	return t, e.zookieOf(v.rev), nil
}

// LookupResourcesRequest asks which resources of a type a subject has a
// permission on. Page with Limit and Cursor; the embedded request's After
// must stay empty (a cursor carries the position).
type LookupResourcesRequest struct {
	Consistency Consistency
	eval.LookupResourcesRequest
	Context    map[string]any
	Contextual []tuple.Relationship
	// Cursor resumes a listing after the result that minted it, at the
	// revision of the listing's first page; Consistency is then ignored.
	Cursor string
}

// ResourceResult is one result of LookupResources.
type ResourceResult struct {
	eval.ResourceResult
	pager *pager
}

// Cursor returns a cursor that resumes the listing after this result.
// It is minted on demand: callers that do not page pay nothing.
func (r ResourceResult) Cursor() string { return r.pager.cursor(r.ResourceID) }

// lookupResources is LookupResources, untraced.
func (e *Engine) lookupResources(ctx context.Context, req LookupResourcesRequest) (results iter.Seq2[ResourceResult, error], zookie string, err error) {
	switch {
	case req.Limit < 0:
		return nil, "", fmt.Errorf("%w: negative lookup limit %d", ErrInvalidRequest, req.Limit)
	case req.Limit > e.limits.MaxLookupLimit:
		return nil, "", &LimitError{Limit: "lookup results per page", Max: e.limits.MaxLookupLimit, Got: req.Limit,
			Hint: "give no limit to receive every result, or page with a smaller limit and the cursor of the last result"}
	case req.After != "":
		return nil, "", fmt.Errorf("%w: resume a lookup with a cursor, not After", ErrInvalidRequest)
	}
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, "", err
	}
	v, after, pg, err := e.needSchemaPage(ctx, req.Consistency, req.Cursor, lookupResourcesRequest(req))
	if err != nil {
		return nil, "", err
	}
	if err := e.checkContextual(v, req.Contextual); err != nil {
		return nil, "", err
	}
	if err := e.noteDeprecated(ctx, v.c.schema, "look up", use{req.ResourceType, req.Permission}); err != nil {
		return nil, "", err
	}
	er := req.LookupResourcesRequest
	er.After = after
	seq := v.c.eval.LookupResources(ctx, e.params(v, req.Context, req.Contextual), er)
	return func(yield func(ResourceResult, error) bool) {
		for r, err := range seq {
			if !yield(ResourceResult{ResourceResult: r, pager: pg}, lookupError(err)) || err != nil {
				return
			}
		}
	}, e.zookieOf(v.rev), nil
}

// LookupSubjectsRequest asks which subjects of a type have a permission on
// a resource. Page with Limit and Cursor; the embedded request's After
// must stay empty (a cursor carries the position).
type LookupSubjectsRequest struct {
	Consistency Consistency
	eval.LookupSubjectsRequest
	Context    map[string]any
	Contextual []tuple.Relationship
	// Cursor resumes a listing after the result that minted it, at the
	// revision of the listing's first page; Consistency is then ignored.
	Cursor string
}

// SubjectResult is one result of LookupSubjects.
type SubjectResult struct {
	eval.SubjectResult
	pager *pager
}

// Cursor returns a cursor that resumes the listing after this result.
func (r SubjectResult) Cursor() string { return r.pager.cursor(r.SubjectID) }

// lookupSubjects is LookupSubjects, untraced.
func (e *Engine) lookupSubjects(ctx context.Context, req LookupSubjectsRequest) (results iter.Seq2[SubjectResult, error], zookie string, err error) {
	switch {
	case req.Limit < 0:
		return nil, "", fmt.Errorf("%w: negative lookup limit %d", ErrInvalidRequest, req.Limit)
	case req.After != "":
		return nil, "", fmt.Errorf("%w: resume a lookup with a cursor, not After", ErrInvalidRequest)
	}
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, "", err
	}
	v, after, pg, err := e.needSchemaPage(ctx, req.Consistency, req.Cursor, lookupSubjectsRequest(req))
	if err != nil {
		return nil, "", err
	}
	if err := e.checkContextual(v, req.Contextual); err != nil {
		return nil, "", err
	}
	if err := e.noteDeprecated(ctx, v.c.schema, "look up", use{req.Resource.Type, req.Permission}); err != nil {
		return nil, "", err
	}
	er := req.LookupSubjectsRequest
	er.After = after
	seq := v.c.eval.LookupSubjects(ctx, e.params(v, req.Context, req.Contextual), er)
	return func(yield func(SubjectResult, error) bool) {
		for r, err := range seq {
			if !yield(SubjectResult{SubjectResult: r, pager: pg}, lookupError(err)) || err != nil {
				return
			}
		}
	}, e.zookieOf(v.rev), nil
}

// lookupError turns the evaluator's refusal of a lookup too large to hold
// in memory into a *LimitError; other errors pass unchanged.
func lookupError(err error) error {
	var le *eval.LookupTooLargeError
	if !errors.As(err, &le) {
		return err
	}
	return &LimitError{Limit: "objects and relations reached by one lookup", Max: le.Max, Got: le.Max + 1,
		Hint: "this lookup walks (its shape does not stream) and holds every object it reaches until it ends, whatever its page size; narrow it, or raise Limits.MaxLookupNodes"}
}

func (e *Engine) params(v *view, ctx map[string]any, contextual []tuple.Relationship) eval.Params {
	return eval.Params{Reader: v.evalReader(), Now: e.now(), Context: ctx, Contextual: contextual}
}
