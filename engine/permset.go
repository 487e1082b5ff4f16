package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// PermissionSetRequest asks which of a set of permissions one subject has
// on one resource, or on each of several resources of one type (a
// matrix): the buttons a UI draws for an object, in one call.
type PermissionSetRequest struct {
	Consistency Consistency
	// Resources are the rows: one or more objects of one type, at most
	// Limits.MaxPermissionSetResources, no object twice.
	Resources []tuple.ObjectRef
	// Permissions are the columns: permissions or relations of the
	// resources' type, no name twice. Empty means every permission of the
	// type (not its relations), in schema order, plus every relation when
	// IncludeRelations is set.
	Permissions      []string
	IncludeRelations bool
	Subject          tuple.SubjectRef
	// Context supplies caveat parameters not fixed on relationships.
	Context map[string]any
	// Contextual are relationships that hold for this request only (see
	// contextual.go).
	Contextual []tuple.Relationship
	// Explain asks for every cell's explanation as well: the one Explain
	// gives for that cell's check (see PermissionSetResponse.Explanations).
	// It costs an explaining walk per cell on top of the set; without it
	// the set pays nothing for explanations.
	Explain bool
}

// PermissionSetResponse answers a permission set at one revision.
type PermissionSetResponse struct {
	// Permissions are the columns, as asked or as found in the schema.
	Permissions []string
	// Results[i][j] answers Permissions[j] on Resources[i]: a result as
	// Check gives it (conditional with the missing caveat parameters), or
	// that cell's own error in Err (a caveat that fails to evaluate,
	// the depth limit).
	Results [][]BulkCheckResult
	// Explanations[i][j] explains Results[i][j] when the request asked
	// (Explain; nil otherwise): what Explain answers for that single
	// check at Zookie, with the same context and contextual
	// relationships. A cell that failed on the depth limit has the
	// explanation of the paths that went too deep; one that failed
	// otherwise has none (nil).
	Explanations [][]*Explanation
	Zookie       string
}

// CheckPermissionSet answers every permission of req on every resource at
// one revision, in one evaluation: the cells share one memo of
// subproblems (a relation that several permissions are built from, an
// arrow's parent, a group the subject is in, is evaluated once for the
// whole set), and the result cache, as Check does.
//
// The call as a whole fails for a bad request (no resource or more than
// Limits.MaxPermissionSetResources, resources of different types or
// repeated, an unknown type, permission or subject type, bad contextual
// relationships) and when the datastore is unavailable; as in CheckBulk,
// a cell's own evaluation failure is reported in its Err.
func (e *Engine) CheckPermissionSet(ctx context.Context, req PermissionSetRequest) (PermissionSetResponse, error) {
	if err := e.checkPermissionSetShape(req); err != nil {
		return PermissionSetResponse{}, err
	}
	if err := e.checkContextSize(req.Context); err != nil {
		return PermissionSetResponse{}, err
	}
	v, err := e.needSchemaWith(ctx, req.Consistency, req.Contextual)
	if err != nil {
		return PermissionSetResponse{}, err
	}
	typ := req.Resources[0].Type
	def := v.c.schema.Definitions[typ]
	if def == nil {
		return PermissionSetResponse{}, fmt.Errorf("engine: permission set on %s: %w", req.Resources[0], &eval.UnknownDefinitionError{Name: typ})
	}
	perms := req.Permissions
	if len(perms) == 0 {
		for _, r := range def.Ordered {
			if r.IsPermission || req.IncludeRelations {
				perms = append(perms, r.Name)
			}
		}
	}
	for _, p := range perms {
		if def.Relations[p] == nil {
			return PermissionSetResponse{}, fmt.Errorf("engine: permission set on %s: %w", req.Resources[0], &eval.UnknownRelationError{Definition: typ, Relation: p})
		}
	}
	reqs := make([]eval.CheckRequest, 0, len(req.Resources)*len(perms))
	for _, res := range req.Resources {
		for _, p := range perms {
			reqs = append(reqs, eval.CheckRequest{Resource: res, Permission: p, Subject: req.Subject})
		}
	}
	// One evaluator call is one request: one memo for every cell. The
	// explanations, if asked, read the same snapshot at the same clock.
	p := e.params(v, req.Context, req.Contextual)
	cells := v.c.eval.CheckBulk(ctx, p, reqs)
	out := PermissionSetResponse{Permissions: perms, Results: make([][]BulkCheckResult, len(req.Resources)), Zookie: e.zookieOf(v.rev)}
	all := make([]BulkCheckResult, len(cells)) // the rows' one backing array
	for i := range req.Resources {
		row := all[i*len(perms) : (i+1)*len(perms) : (i+1)*len(perms)]
		for j := range perms {
			c := cells[i*len(perms)+j]
			if c.Err != nil {
				// A malformed subject or resource ID is the request's
				// fault, as in Check; so is an unavailable datastore.
				if errors.Is(c.Err, ErrUnavailable) || errors.Is(c.Err, ErrInvalidRequest) || errors.Is(c.Err, ErrUnknownDefinition) || errors.Is(c.Err, ErrUnknownRelation) {
					return PermissionSetResponse{}, fmt.Errorf("engine: permission set on %s for %s: %w", req.Resources[i], req.Subject, c.Err)
				}
			}
			row[j] = BulkCheckResult{CheckResult: c.CheckResult, Err: c.Err}
		}
		out.Results[i] = row
	}
	if req.Explain {
		if out.Explanations, err = explainCells(ctx, v.c.eval, p, reqs, out.Results); err != nil {
			return PermissionSetResponse{}, err
		}
	}
	return out, nil
}

// explainCells explains every cell of a permission set, answered in
// results, by running Explain's walk per cell with the set's parameters
// (snapshot, clock, context, contextual relationships): each explanation
// is the one Explain gives for that cell alone. reqs are the cells row by
// row. An explanation that reaches another answer than its cell is a bug
// (ErrExplainMismatch), as is one that fails where the cell did not.
func explainCells(ctx context.Context, ev *eval.Evaluator, p eval.Params, reqs []eval.CheckRequest, results [][]BulkCheckResult) ([][]*Explanation, error) {
	cols := len(reqs) / len(results)
	all := make([]*Explanation, len(reqs)) // the rows' one backing array
	out := make([][]*Explanation, len(results))
	for i, row := range results {
		out[i] = all[i*cols : (i+1)*cols : (i+1)*cols]
		for j, cell := range row {
			q := reqs[i*cols+j]
			x, err := ev.Explain(ctx, p, q)
			switch {
			case cell.Err != nil:
				// The cell's failure is its answer; the depth limit comes
				// with the paths that went too deep.
				if errors.Is(err, ErrMaxDepth) {
					out[i][j] = x
				}
				continue
			case err != nil:
				return nil, fmt.Errorf("engine: explain %s#%s@%s: %w", q.Resource, q.Permission, q.Subject, err)
			case x.Permissionship != cell.Permissionship:
				return nil, fmt.Errorf("engine: explain %s#%s@%s: %w", q.Resource, q.Permission, q.Subject,
					&eval.ExplainMismatchError{Check: cell.Permissionship, Explain: x.Permissionship})
			}
			out[i][j] = x
		}
	}
	return out, nil
}

// checkPermissionSetShape checks what needs no schema: the number of
// resources, one type, no repeats.
func (e *Engine) checkPermissionSetShape(req PermissionSetRequest) error {
	switch n, max := len(req.Resources), e.limits.MaxPermissionSetResources; {
	case n == 0:
		return fmt.Errorf("%w: a permission set needs at least one resource", ErrInvalidRequest)
	case n > max:
		return fmt.Errorf("%w: %d resources in one permission set exceed the limit of %d", ErrInvalidRequest, n, max)
	}
	seen := make(map[tuple.ObjectRef]bool, len(req.Resources))
	for i, r := range req.Resources {
		if r.Type != req.Resources[0].Type {
			return fmt.Errorf("%w: resource %d (%s) is not of type %q like resource 0: a permission set's resources share one type", ErrInvalidRequest, i, r, req.Resources[0].Type)
		}
		if seen[r] {
			return fmt.Errorf("%w: resource %s given twice", ErrInvalidRequest, r)
		}
		seen[r] = true
	}
	names := make(map[string]bool, len(req.Permissions))
	for _, p := range req.Permissions {
		if names[p] {
			return fmt.Errorf("%w: permission %q given twice", ErrInvalidRequest, p)
		}
		names[p] = true
	}
	return nil
}
