package store

import (
	"errors"
	"fmt"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	// ErrRevisionCompacted: the revision is older than the GC window.
	ErrRevisionCompacted = errors.New("snapshot expired: revision compacted")
	// ErrRevisionFuture: the revision has not been committed yet.
	ErrRevisionFuture = errors.New("revision not yet committed")
	// ErrAlreadyExists: Create found a relationship with the same key.
	ErrAlreadyExists = errors.New("store: relationship already exists")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("closed")
	// ErrCorrupt: stored bytes could not be decoded.
	ErrCorrupt = errors.New("store: corrupt data")
	// ErrBatchTooLarge: a transaction wrote more relationships than the
	// store's per-transaction limit; nothing was written.
	ErrBatchTooLarge = errors.New("store: too many operations in one transaction")
	// ErrUnavailable: the backend could not reach its database (a
	// connection refused, reset or closed, a server shutting down or
	// starting up). A write that fails with it committed nothing, so
	// every operation may be retried. Backends keep the cause in the
	// message.
	ErrUnavailable = errors.New("store: database unavailable")
	// ErrCommitUnknown: a write sent its commit but the connection failed
	// before the answer came, and the backend could not find out in time
	// whether the commit happened. The write may or may not be visible;
	// read at the newest revision before deciding to retry it.
	ErrCommitUnknown = errors.New("store: commit outcome unknown")
	// ErrTxDone: a transaction was used after its Update returned (a bug
	// in the caller).
	ErrTxDone = errors.New("store: transaction already finished")
)

// DefaultMaxBatchOps is the default limit on Touch, Create and Delete calls
// in one transaction (DeleteMatching is bounded by its own limit instead).
const DefaultMaxBatchOps = 1000

// CompactedError reports a read below the GC horizon.
type CompactedError struct {
	Requested Revision
	Horizon   Revision // oldest readable revision
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("store: revision %d is older than the GC window (oldest readable: %d)", e.Requested, e.Horizon)
}

// Is makes errors.Is(err, ErrRevisionCompacted) true.
func (e *CompactedError) Is(target error) bool { return target == ErrRevisionCompacted }

// FutureError reports a read above the head revision.
type FutureError struct {
	Requested Revision
	Head      Revision
}

func (e *FutureError) Error() string {
	return fmt.Sprintf("store: revision %d is not committed yet (head: %d)", e.Requested, e.Head)
}

// Is makes errors.Is(err, ErrRevisionFuture) true.
func (e *FutureError) Is(target error) bool { return target == ErrRevisionFuture }

// AlreadyExistsError names the relationship that Create found.
type AlreadyExistsError struct {
	Key tuple.Key
}

func (e *AlreadyExistsError) Error() string {
	return fmt.Sprintf("store: relationship %s already exists", e.Key)
}

// Is makes errors.Is(err, ErrAlreadyExists) true.
func (e *AlreadyExistsError) Is(target error) bool { return target == ErrAlreadyExists }
