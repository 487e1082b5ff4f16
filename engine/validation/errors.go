package validation

import "errors"

// Sentinel errors. Failed expectations are not errors: they are reported
// in Result.Failures.
var (
	// ErrInvalidFile marks an ErrorList: the file is not a valid
	// validation file (bad YAML, unknown keys, unparsable entries).
	ErrInvalidFile = errors.New("validation: invalid file")
)
