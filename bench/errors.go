package bench

import "errors"

// Sentinel errors.
var (
	// ErrUsage: an option or argument is malformed.
	ErrUsage = errors.New("bench: usage")
	// ErrDataDir: the data directory holds another data set.
	ErrDataDir = errors.New("bench: data directory holds another data set")
	// ErrRun: the run produced no measurements.
	ErrRun = errors.New("bench: run failed")
)
