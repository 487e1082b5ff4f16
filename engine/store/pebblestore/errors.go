package pebblestore

import (
	"errors"
	"fmt"
	"syscall"
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
	// ErrLocked: another process (or another Store in this one) has the
	// data directory open; Pebble's LOCK file admits one at a time.
	ErrLocked = errors.New("pebblestore: data directory in use")
)

// lockedError turns the failure to take a directory's lock, which the
// lock system call reports as "resource temporarily unavailable", into
// one that says what happened (fcntl's F_SETLK fails with EAGAIN or
// EACCES when another process holds the lock); other errors pass through.
func lockedError(dir string, err error) error {
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w: %s is in use by another process (its LOCK file is held): %v", ErrLocked, dir, err)
	}
	return err
}

// FormatError reports a data directory whose format this binary refuses.
type FormatError struct {
	Found, Supported uint64
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("pebblestore: data format version %d is newer than this binary supports (%d); upgrade Pemba", e.Found, e.Supported)
}

// Is makes errors.Is(err, ErrFormatTooNew) true.
func (e *FormatError) Is(target error) bool { return target == ErrFormatTooNew }
