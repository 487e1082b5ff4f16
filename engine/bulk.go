package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// BulkCheckItem is one check of a bulk check: the evaluator's question
// (CheckQuery) with its own caveat context.
type BulkCheckItem struct {
	eval.CheckRequest
	// Context supplies caveat parameters not fixed on relationships.
	Context map[string]any
}

// BulkCheckRequest asks several checks at one revision.
type BulkCheckRequest struct {
	Consistency Consistency
	Items       []BulkCheckItem
	// Contextual are relationships that hold for this request only, for
	// every item (see Engine.checkContextual).
	Contextual []tuple.Relationship
}

// BulkCheckResult is the answer to one item: a result, or the item's own
// error in Err (an unknown definition, a caveat that fails to evaluate).
type BulkCheckResult struct {
	CheckResult
	Err error
}

// BulkCheckResponse holds the answers in the order of the request's items
// and the zookie of the one revision they were all answered at.
type BulkCheckResponse struct {
	Results []BulkCheckResult
	Zookie  string
}

// checkBulk answers every item at one revision. The evaluator takes one
// caveat context per call, so items are grouped by equal contexts and each
// group is evaluated once, all groups on the same snapshot.
//
// An item's own failure is reported in its result's Err. The call as a
// whole fails for a bad request (more than Limits.MaxBulkCheckItems items,
// a context over Limits.MaxContextBytes, a bad consistency) and when an
// item fails because the datastore is unavailable (ErrUnavailable): a
// transient failure fails the call, so that clients retry it as a whole
// instead of reading item errors. A request without items still resolves
// the revision, so its consistency is validated and the answer carries a
// zookie.
func (e *Engine) checkBulk(ctx context.Context, req BulkCheckRequest) (BulkCheckResponse, error) {
	if n := len(req.Items); n > e.limits.MaxBulkCheckItems {
		return BulkCheckResponse{}, &LimitError{Limit: "items per bulk check", Max: e.limits.MaxBulkCheckItems, Got: n}
	}
	results := make([]BulkCheckResult, len(req.Items))
	groups, err := e.groupByContext(req.Items, results)
	if err != nil {
		return BulkCheckResponse{}, err
	}
	v, err := e.needSchemaWith(ctx, req.Consistency, req.Contextual)
	if err != nil {
		return BulkCheckResponse{}, err
	}
	uses := make([]use, len(req.Items))
	for i, it := range req.Items {
		uses[i] = use{it.Resource.Type, it.Permission}
	}
	if err := e.noteDeprecated(ctx, v.c.schema, "check", uses...); err != nil {
		return BulkCheckResponse{}, err
	}
	out := BulkCheckResponse{Results: results, Zookie: e.zookieOf(v.rev)}
	for _, g := range groups {
		for j, r := range v.c.eval.CheckBulk(ctx, e.params(v, g.ctx, req.Contextual), g.reqs) {
			if errors.Is(r.Err, ErrUnavailable) {
				return BulkCheckResponse{}, r.Err
			}
			out.Results[g.indexes[j]] = BulkCheckResult{CheckResult: r.CheckResult, Err: r.Err}
		}
	}
	return out, nil
}

// contextGroup is the items of a bulk check that share one caveat context.
type contextGroup struct {
	ctx     map[string]any
	indexes []int // of the items, in the request
	reqs    []eval.CheckRequest
}

// groupByContext groups items by equal caveat contexts, in the order of
// each context's first item, and checks each context's size. An item whose
// context cannot be encoded (a NaN) gets its error in results.
func (e *Engine) groupByContext(items []BulkCheckItem, results []BulkCheckResult) ([]*contextGroup, error) {
	var groups []*contextGroup
	byKey := map[string]*contextGroup{}
	for i, it := range items {
		// encoding/json sorts map keys: equal contexts, equal keys.
		key, err := json.Marshal(it.Context)
		if err != nil {
			results[i].Err = fmt.Errorf("%w: caveat context: %w", ErrInvalidRequest, err)
			continue
		}
		g := byKey[string(key)]
		if g == nil {
			if err := e.checkContextSize(it.Context); err != nil {
				return nil, err
			}
			g = &contextGroup{ctx: it.Context}
			byKey[string(key)] = g
			groups = append(groups, g)
		}
		g.indexes = append(g.indexes, i)
		g.reqs = append(g.reqs, it.CheckRequest)
	}
	return groups, nil
}
