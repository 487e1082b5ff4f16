package pebblestore

import (
	"errors"
	"fmt"

	"github.com/pemba-authz/pemba/engine/store"
)

// Disk faults
//
// Pebble cannot continue after a write to its write-ahead log fails (a
// full disk, an I/O error): the batch may already be in the memtable but
// not in the log, so it reports the error through Logger.Fatalf, which
// must not return. pebbleLogger.Fatalf panics with a fatalError; every
// method of Store that writes to Pebble recovers it in its own goroutine
// (catchFatal), marks the store failed and returns an error instead of
// taking the process down:
//
//   - the write whose batch could not be applied, and every write after
//     the failure, fails with store.ErrUnavailable: nothing was written;
//   - a write whose batch was applied but whose fsync failed fails with
//     store.ErrCommitUnknown: the record may or may not have reached the
//     disk, so after a restart it may or may not be there (whole);
//   - reads at published revisions keep working: what they see was
//     durable before the failure.
//
// The store stays failed until it is closed and reopened, by which time
// the fault should be fixed; Open then recovers from the log whatever was
// synced. Pebble's own background work (flushes, compactions) retries
// failed table writes, but a failed write to its MANIFEST is fatal in a
// goroutine that is not ours: that panic ends the process, and the next
// Open recovers as after a crash.

// fatalError is the panic value of pebbleLogger.Fatalf.
type fatalError struct{ msg string }

func (f fatalError) String() string { return f.msg }

// failure is why the store failed, or nil.
func (s *Store) failure() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// writable returns store.ErrUnavailable once the store has failed.
func (s *Store) writable() error {
	if f := s.failure(); f != nil {
		return fmt.Errorf("pebblestore: %w: the store failed earlier and must be reopened: %v", store.ErrUnavailable, f)
	}
	return nil
}

// Failure returns why the store failed (wrapping store.ErrUnavailable),
// or nil (store.Failer).
func (s *Store) Failure() error { return s.writable() }

// catchFatal, deferred by a method that writes to Pebble, turns a
// fatalError panic into *err wrapping outcome (store.ErrUnavailable or
// store.ErrCommitUnknown) and marks the store failed. Other panics go on.
func (s *Store) catchFatal(err *error, outcome error) {
	p := recover()
	if p == nil {
		return
	}
	f, ok := p.(fatalError)
	if !ok {
		panic(p)
	}
	cause := errors.New(f.msg)
	s.failed.CompareAndSwap(nil, &cause)
	*err = fmt.Errorf("pebblestore: %w: %s", outcome, f.msg)
}
