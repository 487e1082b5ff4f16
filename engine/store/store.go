// Package store defines the interface between Pemba's evaluator and the
// backends that keep relationships: Pebble (embedded, the default), an
// in-memory reference implementation for tests, and later PostgreSQL.
//
// # Model
//
// Every committed write transaction gets the next Revision. A Reader is a
// snapshot: it answers every query as of exactly one revision, for any
// revision inside the store's GC window. Reading a revision older than the
// window fails with a *CompactedError (errors.Is ErrRevisionCompacted),
// never with a wrong answer; a revision not yet committed fails with
// ErrRevisionFuture.
//
// The interface uses plain Go types only (package tuple), no protobuf and
// no backend types, so the evaluator never learns which backend it reads.
//
// # Conformance
//
// Every backend must pass the suite in package storetest.
package store

import (
	"context"
	"io"
	"iter"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// Revision numbers committed states. Revision 0 is the empty store before
// any write; every committed transaction gets the next number, and numbers
// are never reused, across restarts too.
type Revision uint64

// Store is a relationship datastore with MVCC snapshots.
type Store interface {
	// Kind names the backend ("pebble", "memory", "postgres").
	Kind() string
	// ID identifies this datastore instance; it is chosen when the store is
	// created and never changes, so tokens from another instance can be told apart.
	ID() string

	// HeadRevision returns the newest committed revision.
	HeadRevision(ctx context.Context) (Revision, error)
	// Snapshot returns a reader at rev. It fails with ErrRevisionCompacted
	// when rev is older than the GC window and ErrRevisionFuture when rev
	// is newer than HeadRevision.
	Snapshot(ctx context.Context, rev Revision) (Reader, error)

	// Update runs fn in a write transaction and commits it atomically at
	// the next revision, which it returns. If fn returns an error nothing
	// is written and that error is returned. Transactions are serialised:
	// fn sees the state at the previous revision. Unless the backend was
	// opened with durability relaxed, the commit is durable (fsynced)
	// before Update returns.
	Update(ctx context.Context, meta WriteMeta, fn func(ctx context.Context, tx Tx) error) (Revision, error)

	// Watch yields every change set committed after revision after, in
	// revision order, and then waits for new ones until ctx is done (the
	// sequence then ends with ctx.Err()). Starting from a compacted
	// revision fails with ErrRevisionCompacted.
	Watch(ctx context.Context, after Revision) iter.Seq2[ChangeSet, error]

	// Close releases the store. Readers and iterators must not be used after.
	Close() error
}

// Reader answers queries at one revision.
type Reader interface {
	// Revision is the revision this reader sees.
	Revision() Revision

	// QueryRelationships yields relationships matching f in forward index
	// order: resource type, resource id, relation, subject type, subject
	// id, subject relation. Breaking out of the loop releases resources.
	QueryRelationships(ctx context.Context, f tuple.Filter, opts QueryOptions) iter.Seq2[tuple.Relationship, error]

	// ReverseQueryRelationships yields relationships matching f in reverse
	// index order: subject type, subject id, subject relation, resource
	// type, relation, resource id.
	ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts QueryOptions) iter.Seq2[tuple.Relationship, error]

	// ReadSchema returns the schema text in force at this revision and the
	// revision that wrote it; ("", 0, nil) when no schema was ever written.
	ReadSchema(ctx context.Context) (text string, written Revision, err error)
}

// PointReader is implemented by readers that can read one relationship by
// its key more cheaply than QueryRelationships with a filter naming all of
// it (no iterator closure, no decoding of the key, which the caller
// already has): the evaluator's hot path. ReadRelationship returns the
// relationship with key k visible at the reader's revision and, when now
// is not zero, unexpired at now; found is false when there is none. Its
// answer must equal the one QueryRelationships gives for the filter of k's
// six components (with tuple.Ellipsis for a plain subject) and Now: now.
type PointReader interface {
	ReadRelationship(ctx context.Context, k tuple.Key, now time.Time) (r tuple.Relationship, found bool, err error)
}

// BatchReader is implemented by readers that can append the answer of a
// query to the caller's slice in one call, without the iterator closures
// of QueryRelationships (several allocations per query): the evaluator's
// hot path, which reads every answer before it recurses anyway. The
// answers must equal QueryRelationships' and ReverseQueryRelationships'
// for the same filter and options, in the same order.
type BatchReader interface {
	AppendRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, opts QueryOptions) ([]tuple.Relationship, error)
	AppendReverseRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.ReverseFilter, opts QueryOptions) ([]tuple.Relationship, error)
}

// QueryOptions shape a query. The zero value returns every match.
type QueryOptions struct {
	// Limit stops after this many relationships; 0 means no limit.
	Limit int
	// After resumes a scan strictly after this relationship's position in
	// the index order of the query (a cursor: the last one seen).
	After *tuple.Key
	// Now, when non-zero, hides relationships expired at that instant.
	// The engine passes the request's time, not the commit time of the
	// revision read. GC removes relationships that expired at or before
	// its cutoff (see GarbageCollector), so only a Now at or after the
	// cutoff is guaranteed the same answer before and after a GC run; a
	// zero Now shows expired relationships only until GC removes them.
	Now time.Time
}

// Tx is a write transaction.
type Tx interface {
	// QueryRelationships reads the state at the previous revision (not
	// this transaction's own pending writes).
	QueryRelationships(ctx context.Context, f tuple.Filter, opts QueryOptions) iter.Seq2[tuple.Relationship, error]

	// Touch stores r, replacing a relationship with the same key (and its
	// caveat and expiration).
	Touch(ctx context.Context, r tuple.Relationship) error
	// Create stores r, failing with an *AlreadyExistsError if a
	// relationship with the same key exists (and has not expired).
	Create(ctx context.Context, r tuple.Relationship) error
	// Delete removes the relationship with key k; deleting an absent
	// relationship is not an error.
	Delete(ctx context.Context, k tuple.Key) error
	// DeleteMatching removes relationships matching f, at most limit of
	// them when limit > 0, and returns how many it removed.
	DeleteMatching(ctx context.Context, f tuple.Filter, limit int) (int, error)
	// WriteSchema replaces the stored schema text.
	WriteSchema(ctx context.Context, text string) error
}

// ReverseTx is implemented by transactions that also read by subject:
// ReverseQueryRelationships of the state at the previous revision, like
// Tx.QueryRelationships (the engine's nested-group index finds the
// objects whose closure holds an edited one this way). Every backend
// implements it.
type ReverseTx interface {
	ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts QueryOptions) iter.Seq2[tuple.Relationship, error]
}

// WriteMeta describes who writes and why, for the changelog and the audit
// log (see AuditLog). Stores record it verbatim.
type WriteMeta struct {
	// Caller identifies the principal that made the write: the name of
	// the key that authenticated the call, never a name from the request.
	Caller string
	// RequestID is the id of the request that made the write (the
	// x-request-id of the call), for correlating with logs.
	RequestID string
	// Reason is the caller's free-text reason for the write, if given.
	Reason string
	// Operation names the kind of write: "WriteRelationships",
	// "DeleteRelationships", "ImportRelationships", "WriteSchema".
	Operation string
}

// Op is the kind of a change.
type Op uint8

// Change kinds.
const (
	OpTouch  Op = 1 // created or replaced
	OpCreate Op = 2 // created; did not exist
	OpDelete Op = 3 // removed
)

func (o Op) String() string {
	switch o {
	case OpTouch:
		return "TOUCH"
	case OpCreate:
		return "CREATE"
	case OpDelete:
		return "DELETE"
	}
	return "UNKNOWN"
}

// Change is one relationship change inside a ChangeSet.
type Change struct {
	Op           Op
	Relationship tuple.Relationship
}

// ChangeSet is everything one transaction changed.
type ChangeSet struct {
	Revision      Revision
	Time          time.Time // commit time, UTC
	Caller        string
	Changes       []Change
	SchemaChanged bool
}

// GarbageCollector is implemented by stores that can drop versions older
// than their GC window on demand (they also do it in the background).
//
// A run takes cutoff = now - window and moves the horizon to the newest
// revision committed at or before cutoff. It removes what no reader at or
// above the horizon can see, and it removes expired relationships: the
// current version of a key (neither replaced nor deleted since), written
// at or below the horizon, whose expiration is at or before cutoff. Expiry
// is thus a logical deletion at max(expiration, commit time), collected
// like a deletion once that time is older than the window: every reader
// that evaluates expiry at or after cutoff (the engine uses the request's
// time) gives the same answers before and after. The removal writes no
// change set, so Watch reports no event for it (as SpiceDB does not), and
// the change sets still in the window are unaltered.
type GarbageCollector interface {
	// GC removes versions that no reader can see any more because every
	// revision that could see them is older than the window at now, and
	// relationships expired before that window.
	GC(ctx context.Context, now time.Time) (GCStats, error)
}

// Compacter is implemented by stores whose files can be rewritten into
// their final, sorted shape on demand (pebblestore: every key into the
// bottom level). After a bulk load the store's files are spread over
// several overlapping levels until background compactions catch up, and
// every read that misses the cache seeks in each of them; compacting once
// after the load leaves one level to seek. The store stays readable and
// writable meanwhile.
type Compacter interface {
	// Compact rewrites every key; it returns when done or when ctx ends
	// (the work done so far is kept).
	Compact(ctx context.Context) error
}

// GCStats reports one GC run.
type GCStats struct {
	// Horizon is the oldest revision still readable after the run.
	Horizon Revision
	// Removed counts deleted relationship versions and changelog entries,
	// Expired included.
	Removed int
	// Expired counts relationships removed because they had expired
	// before the window (see GarbageCollector).
	Expired int
	// AuditPruned counts audit entries removed because they were older
	// than the store's audit retention (see AuditLog.PruneAudit); GC
	// removes none when the retention is unlimited.
	AuditPruned int
}

// BulkLoader is implemented by stores that can import many relationships
// faster than through Update. Import writes them all at one new revision
// with Touch semantics.
type BulkLoader interface {
	Import(ctx context.Context, meta WriteMeta, rels iter.Seq2[tuple.Relationship, error]) (Revision, int, error)
}

// BatchLimiter is implemented by stores that report their per-transaction
// limit on Touch, Create and Delete calls, so that callers can reject an
// oversized request before opening a transaction.
type BatchLimiter interface {
	MaxBatchOps() int
}

// Failer is implemented by stores that can fail as a whole while reads go
// on (pebblestore after a disk fault): Failure returns why, wrapping
// ErrUnavailable, or nil. Health probes report it, so that the process is
// restarted and the store reopened.
type Failer interface {
	Failure() error
}

// GCReporter is implemented by stores that count their GC runs, for
// metrics.
type GCReporter interface {
	GCTotals() GCTotals
}

// GCTotals counts GC runs since the store was opened.
type GCTotals struct {
	Runs     uint64 // finished runs, failed or not
	Failures uint64 // runs that returned an error
	Removed  uint64 // relationship versions and changelog entries removed
	Expired  uint64 // expired relationships removed (also in Removed)
}

// GCCounter accumulates GCTotals; backends embed one and call Observe
// after each run. It is safe for concurrent use.
type GCCounter struct {
	runs, failures, removed, expired atomic.Uint64
}

// Observe records one GC run.
func (c *GCCounter) Observe(stats GCStats, err error) {
	c.runs.Add(1)
	if err != nil {
		c.failures.Add(1)
	}
	if stats.Removed > 0 {
		c.removed.Add(uint64(stats.Removed))
	}
	if stats.Expired > 0 {
		c.expired.Add(uint64(stats.Expired))
	}
}

// GCTotals returns the counts so far.
func (c *GCCounter) GCTotals() GCTotals {
	return GCTotals{Runs: c.runs.Load(), Failures: c.failures.Load(), Removed: c.removed.Load(), Expired: c.expired.Load()}
}

// Checkpointer is implemented by stores that can copy themselves, while
// serving, into a consistent set of files (Pebble: a checkpoint). Writes
// committed before Checkpoint is called are in the copy; writes that run
// concurrently are in it or not, whole transactions at a time.
type Checkpointer interface {
	Checkpoint(ctx context.Context) (*Checkpoint, error)
}

// Checkpoint is a consistent copy of a store, held in files until Close.
type Checkpoint struct {
	// Format is the storage format of the files (for Pebble, its
	// FormatVersion).
	Format int
	// ID is the store's ID, the same as the original's.
	ID string
	// Revision is the head revision of the copy.
	Revision Revision
	// Schema is the schema text in force at Revision ("" when none).
	Schema string
	// Files are the names of the copy's files, relative to its directory
	// and without subdirectories, sorted.
	Files []string
	// OpenFile opens one of Files for reading.
	OpenFile func(name string) (io.ReadCloser, error)
	// Close removes the copy.
	Close func() error
}
