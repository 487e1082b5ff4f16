package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// ValidateRelationship checks r against schema s as a write with the
// default limits does, so that a client holding the schema can refuse a bad
// line of input before it sends anything. A rejection is a
// *RelationshipError with Index -1 (its reason a *LimitError for a caveat
// context over DefaultMaxContextBytes).
func ValidateRelationship(s *schema.Schema, r tuple.Relationship) error {
	return validateRelationship(s, -1, r, DefaultMaxContextBytes)
}

// validateRelationship checks r against schema s with the engine's limits;
// index is reported in the error.
func (e *Engine) validateRelationship(s *schema.Schema, index int, r tuple.Relationship) error {
	return validateRelationship(s, index, r, e.limits.MaxContextBytes)
}

// validateRelationship checks r against schema s: the resource type and
// relation exist, the relation is not a permission, the subject type (with
// its relation or wildcard) is allowed, and caveat and expiration match an
// allowed subject type; a caveat context is at most maxContext bytes of
// JSON. index is reported in the error.
func validateRelationship(s *schema.Schema, index int, r tuple.Relationship, maxContext int) error {
	fail := func(reason error, format string, args ...any) error {
		return &RelationshipError{Index: index, Relationship: r, Reason: reason, Detail: fmt.Sprintf(format, args...)}
	}
	if err := r.Validate(); err != nil {
		return &RelationshipError{Index: index, Relationship: r, Reason: err}
	}
	def, ok := s.Definitions[r.Resource.Type]
	if !ok {
		return fail(ErrUnknownDefinition, "no definition %q in the schema", r.Resource.Type)
	}
	rel, ok := def.Relations[r.Relation]
	if !ok {
		if to := def.RenamedFrom[r.Relation]; to != nil {
			return fail(ErrUnknownRelation, "relation %s#%s was renamed to %s (@renamed_from(%s)): write %s; the old name is only read, and deleted", def.Name, r.Relation, to.Name, r.Relation, to.Name)
		}
		return fail(ErrUnknownRelation, "definition %q has no relation %q", def.Name, r.Relation)
	}
	if rel.IsPermission {
		return fail(ErrWriteToPermission, "%s#%s is a permission, computed from relations", def.Name, rel.Name)
	}
	if _, ok := s.Definitions[r.Subject.Type]; !ok {
		return fail(ErrUnknownDefinition, "no definition %q in the schema for the subject", r.Subject.Type)
	}
	var candidates []*schema.AllowedSubject
	for _, a := range rel.Allowed {
		if a.Type == r.Subject.Type && a.Relation == r.Subject.Relation && a.Wildcard == r.Subject.IsWildcard() {
			candidates = append(candidates, a)
		}
	}
	if len(candidates) == 0 {
		return fail(ErrSubjectNotAllowed, "%s#%s allows %s, not %s", def.Name, rel.Name, allowedList(rel.Allowed), subjectShape(r.Subject))
	}
	// Keep the candidates whose caveat matches the relationship's.
	var matched []*schema.AllowedSubject
	for _, a := range candidates {
		switch {
		case r.Caveat == nil && a.Caveat == nil,
			r.Caveat != nil && a.Caveat != nil && a.Caveat.Name == r.Caveat.Name:
			matched = append(matched, a)
		}
	}
	if len(matched) == 0 {
		if r.Caveat == nil {
			return fail(ErrCaveatRequired, "%s#%s allows %s only with a caveat: %s", def.Name, rel.Name, subjectShape(r.Subject), allowedList(candidates))
		}
		if _, known := s.Caveats[r.Caveat.Name]; !known {
			return fail(ErrUnknownCaveat, "no caveat %q in the schema", r.Caveat.Name)
		}
		return fail(ErrCaveatNotAllowed, "%s#%s allows %s as %s, not with caveat %q", def.Name, rel.Name, subjectShape(r.Subject), allowedList(candidates), r.Caveat.Name)
	}
	if !r.Expiration.IsZero() {
		ok := false
		for _, a := range matched {
			ok = ok || a.Expiration
		}
		if !ok {
			return fail(ErrExpirationNotAllowed, "%s#%s allows %s, none \"with expiration\"", def.Name, rel.Name, allowedList(matched))
		}
	}
	if r.Caveat != nil && len(r.Caveat.Context) > 0 {
		// Still a *RelationshipError, so that the error names the update;
		// it matches ErrLimitExceeded through its reason.
		if err := checkContextSize(r.Caveat.Context, maxContext); err != nil {
			return &RelationshipError{Index: index, Relationship: r, Reason: err}
		}
		if err := checkCaveatContext(s.Caveats[r.Caveat.Name], r.Caveat.Context); err != nil {
			return fail(ErrCaveatContext, "%v", err)
		}
	}
	return nil
}

// checkContextSize enforces Limits.MaxContextBytes on a caveat context.
func (e *Engine) checkContextSize(ctx map[string]any) error {
	return checkContextSize(ctx, e.limits.MaxContextBytes)
}

// checkContextSize fails when ctx is more than max bytes as JSON.
func checkContextSize(ctx map[string]any, max int) error {
	if len(ctx) == 0 {
		return nil
	}
	b, err := json.Marshal(ctx)
	if err != nil {
		return fmt.Errorf("%w: caveat context is not JSON-encodable: %w", ErrInvalidRequest, err)
	}
	if len(b) > max {
		return &LimitError{Limit: "bytes of caveat context", Max: max, Got: len(b)}
	}
	return nil
}

// subjectShape renders the part of a subject that the schema constrains.
func subjectShape(s tuple.SubjectRef) string {
	switch {
	case s.IsWildcard():
		return s.Type + ":*"
	case s.Relation != "":
		return s.Type + "#" + s.Relation
	}
	return s.Type
}

func allowedList(as []*schema.AllowedSubject) string {
	if len(as) == 0 {
		return "nothing"
	}
	parts := make([]string, len(as))
	for i, a := range as {
		p := a.Type
		switch {
		case a.Wildcard:
			p += ":*"
		case a.Relation != "":
			p += "#" + a.Relation
		}
		var with []string
		if a.Caveat != nil {
			with = append(with, a.Caveat.Name)
		}
		if a.Expiration {
			with = append(with, "expiration")
		}
		if len(with) > 0 {
			p += " with " + strings.Join(with, " and ")
		}
		parts[i] = p
	}
	return strings.Join(parts, " | ")
}

// checkCaveatContext checks that every key of ctx is a parameter of c and
// that its value converts to the parameter's declared type. The conversion
// is the one evaluation uses, so what is accepted here evaluates later.
func checkCaveatContext(c *schema.Caveat, ctx map[string]any) error {
	if c == nil {
		return nil
	}
	declared := make(map[string]bool, len(c.Params))
	for _, p := range c.Params {
		declared[p.Name] = true
	}
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !declared[k] {
			return fmt.Errorf("caveat %q has no parameter %q", c.Name, k)
		}
	}
	// Evaluate converts every given value; a runtime failure of the
	// expression with a partial context is not the writer's mistake.
	if _, err := c.Evaluate(ctx); errors.Is(err, schema.ErrCaveatParam) {
		return err
	}
	return nil
}
