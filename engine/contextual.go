package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// Contextual relationships are relationships a read request brings with
// it: they hold for that request only, as if touched on top of the
// revision it reads (a contextual relationship with the key of a stored
// one takes its place, caveat and expiration included), and they are
// never written. Identity-provider group claims are the use: the groups
// count for one check without being synced into the store. Every read
// (Check, CheckBulk, CheckPermissionSet, Expand, LookupResources,
// LookupSubjects) takes them.
//
// They are validated against the schema in force at the revision read,
// exactly as a write validates a TOUCH (a *RelationshipError with the
// same reasons, List "contextual relationship"), so the evaluator's
// schema-derived shortcuts stay sound; a key given twice, more than
// Limits.MaxContextualRelationships of them, or more than
// Limits.MaxContextualBytes fails with ErrInvalidRequest. The evaluator
// reads them through store.Overlay and keeps the result cache for every
// subproblem they cannot reach (see package eval, contextual.go).

// needSchemaWith is needSchema for a request with contextual
// relationships, which it validates against the schema in force.
func (e *Engine) needSchemaWith(ctx context.Context, c Consistency, contextual []tuple.Relationship) (*view, error) {
	v, err := e.needSchema(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := e.checkContextual(v, contextual); err != nil {
		return nil, err
	}
	return v, nil
}

// checkContextualSize enforces the limits on contextual relationships that
// need no schema: their number, their size, and distinct keys.
func (e *Engine) checkContextualSize(rels []tuple.Relationship) error {
	if len(rels) == 0 {
		return nil
	}
	if n, max := len(rels), e.limits.MaxContextualRelationships; n > max {
		return fmt.Errorf("%w: %d contextual relationships exceed the limit of %d", ErrInvalidRequest, n, max)
	}
	size := 0
	seen := make(map[tuple.Key]int, len(rels))
	for i, r := range rels {
		k := r.Key()
		if j, dup := seen[k]; dup {
			return fmt.Errorf("%w: contextual relationships %d and %d are both %s", ErrInvalidRequest, j, i, k)
		}
		seen[k] = i
		size += len(r.Resource.Type) + len(r.Resource.ID) + len(r.Relation) + len(r.Subject.Type) + len(r.Subject.ID) + len(r.Subject.Relation) + 4
		if r.Caveat != nil {
			size += len(r.Caveat.Name)
			if len(r.Caveat.Context) > 0 {
				b, err := json.Marshal(r.Caveat.Context)
				if err != nil {
					return fmt.Errorf("%w: contextual relationship %d: caveat context is not JSON-encodable: %w", ErrInvalidRequest, i, err)
				}
				size += len(b)
			}
		}
	}
	if max := e.limits.MaxContextualBytes; size > max {
		return fmt.Errorf("%w: contextual relationships of %d bytes exceed the limit of %d", ErrInvalidRequest, size, max)
	}
	return nil
}

// checkContextual validates contextual relationships against the schema
// of v, as a write validates a TOUCH, after checkContextualSize.
func (e *Engine) checkContextual(v *view, rels []tuple.Relationship) error {
	if err := e.checkContextualSize(rels); err != nil {
		return err
	}
	for i, r := range rels {
		if err := e.validateRelationship(v.c.schema, i, r); err != nil {
			var re *RelationshipError
			if errors.As(err, &re) {
				re.List = "contextual relationship"
			}
			return err
		}
	}
	return nil
}
