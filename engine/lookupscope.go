package engine

import (
	"context"
	"fmt"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Scoped lookups and counts, for list screens: "the customers in region
// north I can view" (LookupResourcesQuery.Through), "the members of
// department d who can view c42" (LookupSubjectsQuery.Within), and how
// many there are (CountResources, CountRelationships) to draw a pager.

// Through limits LookupResources and CountResources to the resources that
// reach an object by stored relationships (see eval.Through).
type Through = eval.Through

// CountResourcesRequest asks how many resources of a type a subject has a
// permission on, optionally Through a scope. The embedded query's Limit
// and After must stay zero: a count covers the whole answer.
type CountResourcesRequest struct {
	Consistency Consistency
	eval.LookupResourcesRequest
	Context map[string]any
	// Contextual are relationships that hold for this request only, as in
	// LookupResourcesRequest.
	Contextual []tuple.Relationship
}

// CountResourcesResponse is the size of a LookupResources answer.
type CountResourcesResponse struct {
	// Count is the number of resources LookupResources would list, the
	// conditional ones included.
	Count int
	// Conditional is how many of them depend on caveat context the
	// request did not give (ConditionalPermission).
	Conditional int
	Zookie      string
}

// CountResources counts the resources LookupResources lists for req, at
// one revision. It costs what the lookup costs: every result is decided
// (a scope keeps that to the resources in the scope).
func (e *Engine) CountResources(ctx context.Context, req CountResourcesRequest) (CountResourcesResponse, error) {
	if req.Limit != 0 || req.After != "" {
		return CountResourcesResponse{}, fmt.Errorf("%w: a count takes no limit or position", ErrInvalidRequest)
	}
	seq, zk, err := e.LookupResources(ctx, LookupResourcesRequest{Consistency: req.Consistency, LookupResourcesRequest: req.LookupResourcesRequest, Context: req.Context, Contextual: req.Contextual})
	if err != nil {
		return CountResourcesResponse{}, err
	}
	out := CountResourcesResponse{Zookie: zk}
	for r, err := range seq {
		if err != nil {
			return CountResourcesResponse{}, fmt.Errorf("engine: count resources %s#%s@%s: %w", req.ResourceType, req.Permission, req.Subject, err)
		}
		out.Count++
		if r.Permissionship == ConditionalPermission {
			out.Conditional++
		}
	}
	return out, nil
}

// CountRelationships counts the unexpired relationships matching f at the
// revision c selects and returns that revision's zookie. It reads every
// match (as ReadRelationships would, without sending them).
func (e *Engine) CountRelationships(ctx context.Context, c Consistency, f tuple.Filter) (count int, zookie string, err error) {
	if err := validateFilter(f); err != nil {
		return 0, "", err
	}
	v, err := e.open(ctx, c)
	if err != nil {
		return 0, "", err
	}
	for _, err := range v.reader.QueryRelationships(ctx, f, store.QueryOptions{Now: e.now()}) {
		if err != nil {
			return 0, "", fmt.Errorf("engine: count relationships: %w", err)
		}
		count++
	}
	return count, e.zookieOf(v.rev), nil
}
