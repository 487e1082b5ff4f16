package eval

import (
	"errors"
	"fmt"
)

// Sentinel errors; the typed errors below match them with errors.Is.
var (
	// ErrMaxDepth: evaluation went deeper than Options.MaxDepth. The answer
	// is unknown, never a silent "no".
	ErrMaxDepth = errors.New("eval: max depth exceeded")
	// ErrUnknownDefinition: a request names an object type the schema lacks.
	ErrUnknownDefinition = errors.New("eval: unknown definition")
	// ErrUnknownRelation: a request names a relation or permission the
	// definition lacks.
	ErrUnknownRelation = errors.New("eval: unknown relation")
	// ErrUnknownCaveat: a stored relationship names a caveat the schema lacks.
	ErrUnknownCaveat = errors.New("eval: unknown caveat")
	// ErrInvalidRequest: a request is malformed (empty IDs, nil reader, ...).
	ErrInvalidRequest = errors.New("eval: invalid request")
	// ErrCaveat: a caveat could not be evaluated, typically because the
	// request context holds a value of the wrong type.
	ErrCaveat = errors.New("eval: caveat evaluation failed")
)

// MaxDepthError reports which request exceeded the depth limit and the path
// of relations it was following.
type MaxDepthError struct {
	Depth int      // the limit
	Path  []string // "type:id#relation" from the request down to the limit
}

func (e *MaxDepthError) Error() string {
	at := "?"
	if len(e.Path) > 0 {
		at = e.Path[0]
	}
	return fmt.Sprintf("max depth %d exceeded while checking %s (cycle or too-deep nesting)", e.Depth, at)
}

// Is makes errors.Is(err, ErrMaxDepth) true.
func (e *MaxDepthError) Is(target error) bool { return target == ErrMaxDepth }

// UnknownDefinitionError names the missing object type.
type UnknownDefinitionError struct {
	Name string
}

func (e *UnknownDefinitionError) Error() string {
	return fmt.Sprintf("eval: unknown definition %q", e.Name)
}

// Is makes errors.Is(err, ErrUnknownDefinition) true.
func (e *UnknownDefinitionError) Is(target error) bool { return target == ErrUnknownDefinition }

// UnknownRelationError names the missing relation or permission.
type UnknownRelationError struct {
	Definition string
	Relation   string
}

func (e *UnknownRelationError) Error() string {
	return fmt.Sprintf("eval: unknown relation or permission %q on definition %q", e.Relation, e.Definition)
}

// Is makes errors.Is(err, ErrUnknownRelation) true.
func (e *UnknownRelationError) Is(target error) bool { return target == ErrUnknownRelation }

// CaveatError reports a caveat that failed to evaluate on one relationship.
// It wraps the schema's error (a *schema.CaveatParamError for a context
// value of the wrong type).
type CaveatError struct {
	Caveat       string
	Relationship string
	Err          error
}

func (e *CaveatError) Error() string {
	return fmt.Sprintf("eval: caveat %q on %s: %v", e.Caveat, e.Relationship, e.Err)
}

// Is makes errors.Is(err, ErrCaveat) true.
func (e *CaveatError) Is(target error) bool { return target == ErrCaveat }

// Unwrap returns the schema's error.
func (e *CaveatError) Unwrap() error { return e.Err }

func invalidRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

func maxDepthError(limit int, f *frame) error {
	var path []string
	for ; f != nil; f = f.parent {
		path = append(path, f.rel.Definition.Name+":"+f.id+"#"+f.rel.Name)
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return &MaxDepthError{Depth: limit, Path: path}
}
