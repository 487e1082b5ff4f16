package pebblestore

import (
	"errors"
	"fmt"
)

// Sentinel errors of this package. Errors from the store interface (closed,
// compacted, corrupt, ...) are the sentinels of package store.
var (
	// ErrFormatTooNew: the data directory was written by a newer Pemba with
	// a key or value format this binary does not understand.
	ErrFormatTooNew = errors.New("pebblestore: data format too new")
	// ErrNotPemba: the directory holds a Pebble database that is not a
	// Pemba store.
	ErrNotPemba = errors.New("pebblestore: not a pemba store")
)

// FormatError reports a data directory whose format this binary refuses.
type FormatError struct {
	Found, Supported uint64
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("pebblestore: data format version %d is newer than this binary supports (%d); upgrade Pemba", e.Found, e.Supported)
}

// Is makes errors.Is(err, ErrFormatTooNew) true.
func (e *FormatError) Is(target error) bool { return target == ErrFormatTooNew }
