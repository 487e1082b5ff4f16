package eval

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Memory budget. A Memory is a budget of bytes shared by every request of
// the evaluators given it (Options.Memory): what a request holds while it
// runs is charged to it as it grows, and given back when the request
// ends. A charge that would take the budget past its limit fails the
// request with a *MemoryBudgetError, before the memory is allocated, so a
// few large requests are refused instead of taking the process down.
//
// The charges are estimates of the live heap a request holds, made where
// it grows with the data rather than with the request: relationships read
// into memory (every query of a check, an expand or a walk;
// relationshipBytes each), nodes a lookup's walk reaches (walkNodeBytes
// each), subproblems a request memoizes (memoBytes each) and the nodes of
// an Expand's tree (treeNodeBytes each). They are kept
// until the request ends, as the memo and the walks keep what they
// reference; a relationship read and dropped is counted too, which errs
// on the side of refusing. Streamed lookups (stream.go, streamplan.go,
// streamsubjects.go, scope.go) charge nothing per result: they charge
// their walk to the intermediate objects, streamScanBytes per open scan,
// and the Checks of one chunk of candidates at a time (chunkRequest); the
// page of a LookupSubjects that starts with the wildcard charges the
// subjects it excludes (walkNodeBytes each), which are its answer.

// Estimated bytes of the live heap per item, checked against the heap by
// TestMemoryEstimates (on memstore: 133 bytes per relationship read into
// a slice, the struct, its share of the slice's growth and its strings;
// 35 per subject a forward walk holds, a map entry whose string the
// relationship shares; a reverse walk adds a 40-byte queue entry), and a
// memoized subproblem (its map entry and call).
const (
	relationshipBytes = 192
	walkNodeBytes     = 64
	memoBytes         = 256
	// treeNodeBytes is a node of an Expand's tree and its frame (the
	// structs' allocation size classes: 144 and 80 bytes); the subjects
	// it lists are charged as the relationships read.
	treeNodeBytes = 224
	// chargeChunk is how much a request reserves from the shared budget
	// at a time, so that requests do not contend on it per item.
	chargeChunk = 256 << 10
)

// ErrMemoryBudget marks a request refused because the memory it would
// hold does not fit in the budget; see *MemoryBudgetError.
var ErrMemoryBudget = errors.New("eval: memory budget exhausted")

// MemoryBudgetError is a request refused by the memory budget: it held
// Held bytes and needed more while the requests in flight held InUse of
// Budget.
type MemoryBudgetError struct {
	Budget, InUse, Held int64
}

// Error implements error.
func (e *MemoryBudgetError) Error() string {
	return fmt.Sprintf("eval: memory budget exhausted: requests in flight hold about %d of %d bytes (this one %d); retry later, or narrow the request", e.InUse, e.Budget, e.Held)
}

// Is makes errors.Is(err, ErrMemoryBudget) true.
func (e *MemoryBudgetError) Is(target error) bool { return target == ErrMemoryBudget }

// Memory is a budget of bytes shared by requests in flight. The zero
// value and nil are unlimited.
type Memory struct {
	limit   int64
	used    atomic.Int64
	refused atomic.Uint64
}

// NewMemory returns a budget of limit bytes; limit <= 0 is unlimited
// (charges are still counted, for InUse).
func NewMemory(limit int64) *Memory {
	return &Memory{limit: max(limit, 0)}
}

// Limit returns the budget in bytes (0: unlimited).
func (m *Memory) Limit() int64 {
	if m == nil {
		return 0
	}
	return m.limit
}

// InUse returns the bytes charged to requests in flight.
func (m *Memory) InUse() int64 {
	if m == nil {
		return 0
	}
	return m.used.Load()
}

// Refused returns how many requests the budget refused.
func (m *Memory) Refused() uint64 {
	if m == nil {
		return 0
	}
	return m.refused.Load()
}

// Hold charges n bytes that the caller holds outside any evaluation (a
// large request message) until it calls release (once), or fails with a
// *MemoryBudgetError, charging nothing, when they do not fit.
func (m *Memory) Hold(n int64) (release func(), err error) {
	if m == nil {
		return func() {}, nil
	}
	if !m.reserve(n) {
		m.refused.Add(1)
		return nil, &MemoryBudgetError{Budget: m.limit, InUse: m.used.Load(), Held: n}
	}
	return sync.OnceFunc(func() { m.used.Add(-n) }), nil
}

// reserve takes n bytes, or none when they do not fit.
func (m *Memory) reserve(n int64) bool {
	v := m.used.Add(n)
	if m.limit > 0 && v > m.limit {
		m.used.Add(-n)
		return false
	}
	return true
}

// account is one request's share of a Memory.
type account struct {
	m        *Memory
	mu       sync.Mutex
	held     int64 // charged
	reserved int64 // taken from m: held rounded up to chunks
	refused  bool
	closed   bool
}

// charge records n more bytes held by the request, failing with a
// *MemoryBudgetError when they do not fit in the budget. Once refused or
// closed, every charge fails.
func (a *account) charge(n int64) error {
	if a == nil || a.m == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refused || a.closed {
		return a.err()
	}
	a.held += n
	if a.held <= a.reserved {
		return nil
	}
	more := max(a.held-a.reserved, chargeChunk)
	if !a.m.reserve(more) {
		a.refused = true
		a.m.refused.Add(1)
		return a.err()
	}
	a.reserved += more
	return nil
}

func (a *account) err() error {
	return &MemoryBudgetError{Budget: a.m.limit, InUse: a.m.used.Load(), Held: a.held}
}

// close gives back what the request reserved.
func (a *account) close() {
	if a == nil || a.m == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.closed = true
		a.m.used.Add(-a.reserved)
		a.reserved = 0
	}
}
