package tuple

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error that reports malformed input:
// a bad tuple string, name, ID or filter.
var ErrInvalid = errors.New("tuple: invalid")

// InvalidError says which field of which input is wrong and why.
type InvalidError struct {
	Field  string // e.g. "resource type", "subject id", "caveat context"
	Value  string // the offending value, truncated for display
	Reason string // one sentence
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, value, reason string) error {
	const max = 80
	if len(value) > max {
		value = value[:max] + "..."
	}
	return &InvalidError{Field: field, Value: value, Reason: reason}
}
