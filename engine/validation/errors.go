package validation

import "errors"

// Sentinel errors.
var (
	// ErrInvalidFile marks an ErrorList: the file is not a valid
	// validation file (bad YAML, unknown keys, unparsable entries).
	ErrInvalidFile = errors.New("validation: invalid file")
	// ErrFailed is returned by Main's helpers when a file ran but at least
	// one expectation failed.
	ErrFailed = errors.New("validation: expectations failed")
)
