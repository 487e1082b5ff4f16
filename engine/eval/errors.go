package eval

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinel errors; the typed errors below match them with errors.Is.
var (
	// ErrMaxDepth: evaluation went deeper than Options.MaxDepth. The answer
	// is unknown, never a silent "no".
	ErrMaxDepth = errors.New("eval: max depth exceeded")
	// ErrUnknownDefinition: a request names an object type the schema lacks.
	ErrUnknownDefinition = errors.New("unknown definition")
	// ErrUnknownRelation: a request names a relation or permission the
	// definition lacks.
	ErrUnknownRelation = errors.New("unknown relation")
	// ErrUnknownCaveat: a stored relationship names a caveat the schema lacks.
	ErrUnknownCaveat = errors.New("eval: unknown caveat")
	// ErrInvalidRequest: a request is malformed (empty IDs, nil reader, ...).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrCaveat: a caveat could not be evaluated, typically because the
	// request context holds a value of the wrong type.
	ErrCaveat = errors.New("eval: caveat evaluation failed")
	// ErrExplainMismatch: the explaining walk reached another answer than
	// Check (a bug; the explanation is withheld).
	ErrExplainMismatch = errors.New("eval: explanation disagrees with check")
	// ErrLookupTooLarge: a lookup's walk reached more (object, relation)
	// nodes than Options.MaxLookupNodes; see *LookupTooLargeError.
	ErrLookupTooLarge = errors.New("eval: lookup too large")
)

// LookupTooLargeError reports a LookupResources or LookupSubjects whose
// walk reached more than Max (object, relation) nodes, each held in memory
// until the walk ends (whatever the page size: results come out sorted).
type LookupTooLargeError struct {
	Max int
}

func (e *LookupTooLargeError) Error() string {
	return fmt.Sprintf("eval: the lookup reached more than %d objects and relations, the most one lookup may hold in memory", e.Max)
}

// Is makes errors.Is(err, ErrLookupTooLarge) true.
func (e *LookupTooLargeError) Is(target error) bool { return target == ErrLookupTooLarge }

// MaxDepthError reports a path of relations longer than Options.MaxDepth:
// the evaluation had to follow it to answer, and stopped there. Depth is
// counted in relations on one path, the requested one included (see
// Options.MaxDepth).
type MaxDepthError struct {
	Depth int      // the limit
	Path  []string // "type:id#relation" from the request down to the first relation past the limit
	// Cycle is set when the evaluation came back to a relation on Path
	// (a cycle in the data; such a branch counts as "no") or Path leaves
	// an object and later comes back to it: the data loops, not only
	// nests.
	Cycle bool
}

// pathHead and pathTail are how many steps of a long path the message
// names at its start and at its end.
const pathHead, pathTail = 3, 3

func (e *MaxDepthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "eval: max depth %d exceeded: a path of %d relations: ", e.Depth, len(e.Path))
	for i, step := range e.Path {
		if len(e.Path) > pathHead+pathTail+1 && i == pathHead {
			fmt.Fprintf(&b, " -> … %d more …", len(e.Path)-pathHead-pathTail)
		}
		if len(e.Path) > pathHead+pathTail+1 && i >= pathHead && i < len(e.Path)-pathTail {
			continue
		}
		if i > 0 {
			b.WriteString(" -> ")
		}
		b.WriteString(step)
	}
	if e.Cycle {
		b.WriteString("; a cycle in the data was seen on this path")
	} else {
		b.WriteString("; no cycle seen on this path: the nesting is this deep (raise the max depth if it is meant to be)")
	}
	return b.String()
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

// maxDepthError reports the path ending at f, the first frame past limit.
func maxDepthError(limit int, f *frame) error {
	var path []string
	cycle := false
	objects := map[string]bool{}
	last := ""
	for ; f != nil; f = f.parent {
		obj := f.rel.Definition.Name + ":" + f.id
		// Consecutive steps on one object are computed references
		// (manage -> scoped_admin); coming back to it later is a loop.
		if (obj != last && objects[obj]) || f.cycled.Load() {
			cycle = true
		}
		objects[obj], last = true, obj
		path = append(path, obj+"#"+f.rel.Name)
	}
	slices.Reverse(path)
	return &MaxDepthError{Depth: limit, Path: path, Cycle: cycle}
}

// ExplainMismatchError reports an explanation whose answer is not Check's.
type ExplainMismatchError struct {
	Check, Explain Permissionship
}

func (e *ExplainMismatchError) Error() string {
	return fmt.Sprintf("eval: explanation disagrees with check: check %v, explanation %v", e.Check, e.Explain)
}

// Is makes errors.Is(err, ErrExplainMismatch) true.
func (e *ExplainMismatchError) Is(target error) bool { return target == ErrExplainMismatch }
