// Package memstore is the in-memory reference implementation of
// store.Store: the test oracle that every other backend is compared with.
//
// It keeps every version of every relationship ({revision, deleted,
// relationship}) until GC drops the ones no readable revision can see, and
// two sorted indexes (forward and reverse) so that a query costs
// O(log n + scanned) rather than O(n). Clarity comes before speed: one
// RWMutex guards all state, and write transactions are serialised by a
// second mutex so that a transaction's closure may read without blocking
// readers.
//
// Queries never hold the lock while yielding: they copy a batch of results
// under the read lock and seek again after the last key, so a caller may
// nest queries or even write from inside a loop.
//
// Nothing is persisted; revisions restart at 0 with every New.
package memstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"iter"
	"sort"
	"sync"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// DefaultGCWindow is the GC window used when Options.GCWindow is zero.
const DefaultGCWindow = 24 * time.Hour

// Options configure a Store. The zero value is usable.
type Options struct {
	// GCWindow is how long a revision stays readable after a newer one
	// replaced it; GC never drops a revision younger than this.
	// Zero means DefaultGCWindow.
	GCWindow time.Duration
	// Now is the clock for commit times and for Create's expiration
	// check; nil means time.Now.
	Now func() time.Time
	// MaxBatchOps limits Touch, Create and Delete calls per transaction;
	// zero means store.DefaultMaxBatchOps.
	MaxBatchOps int
	// AuditRetention is how long audit entries are kept: GC prunes
	// entries committed before now minus AuditRetention. Zero keeps
	// them forever.
	AuditRetention time.Duration
}

// Store is an in-memory store.Store. It also implements
// store.GarbageCollector (GC runs only when called) and store.BulkLoader.
type Store struct {
	gcCount  store.GCCounter // GC runs, for metrics
	id       string
	window   time.Duration
	now      func() time.Time
	maxBatch int
	// auditRetention is Options.AuditRetention.
	auditRetention time.Duration

	// writeMu serialises write transactions (Update, Import). It is held
	// while the transaction's closure runs; mu is taken only to read and
	// to commit.
	writeMu sync.Mutex

	mu       sync.RWMutex
	closed   bool
	head     store.Revision
	horizon  store.Revision // oldest readable revision
	records  map[tuple.Key]*record
	forward  index
	reverse  index
	schemas  []schemaVersion   // ascending by revision
	changes  []store.ChangeSet // ascending by revision, every revision in (horizon, head]
	lastTime time.Time         // commit time of head; commit times never go backwards
	// audit holds the audit log (audit.go) in revision order after
	// auditAnchor; GC leaves it alone, PruneAudit shortens it.
	audit       []auditRecord
	auditAnchor store.AuditAnchor
	notify      chan struct{} // closed and replaced on every commit and on Close

	statsCache statsCache // counts for the planner (stats.go)
}

// record holds every retained version of one relationship key.
type record struct {
	key      tuple.Key
	versions []version // ascending by revision
}

// version is the state of a key from revision rev on.
type version struct {
	rev     store.Revision
	deleted bool
	rel     tuple.Relationship
}

// visible returns the relationship stored under r's key at revision rev.
func (r *record) visible(rev store.Revision) (tuple.Relationship, bool) {
	for i := len(r.versions) - 1; i >= 0; i-- {
		v := &r.versions[i]
		if v.rev <= rev {
			return v.rel, !v.deleted
		}
	}
	return tuple.Relationship{}, false
}

type schemaVersion struct {
	rev  store.Revision
	text string
}

var (
	_ store.Store            = (*Store)(nil)
	_ store.GarbageCollector = (*Store)(nil)
	_ store.BulkLoader       = (*Store)(nil)
)

// New returns an empty store at revision 0.
func New(opts Options) *Store {
	s := &Store{
		id:       newID(),
		window:   opts.GCWindow,
		now:      opts.Now,
		maxBatch: opts.MaxBatchOps,

		auditRetention: opts.AuditRetention,
		records:        make(map[tuple.Key]*record),
		forward:        index{order: forwardFields},
		reverse:        index{order: reverseFields},
		notify:         make(chan struct{}),
	}
	if s.window <= 0 {
		s.window = DefaultGCWindow
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBatch <= 0 {
		s.maxBatch = store.DefaultMaxBatchOps
	}
	return s
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Kind returns "memory".
func (s *Store) Kind() string { return "memory" }

// ID returns the random identifier chosen by New.
func (s *Store) ID() string { return s.id }

// HeadRevision returns the newest committed revision.
func (s *Store) HeadRevision(ctx context.Context) (store.Revision, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	return s.head, nil
}

// Snapshot returns a reader at rev.
func (s *Store) Snapshot(ctx context.Context, rev store.Revision) (store.Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkReadable(rev); err != nil {
		return nil, err
	}
	return &reader{s: s, rev: rev}, nil
}

// checkReadable reports why rev cannot be read, if it cannot. s.mu is held.
func (s *Store) checkReadable(rev store.Revision) error {
	switch {
	case s.closed:
		return store.ErrClosed
	case rev > s.head:
		return &store.FutureError{Requested: rev, Head: s.head}
	case rev < s.horizon:
		return &store.CompactedError{Requested: rev, Horizon: s.horizon}
	}
	return nil
}

// Update runs fn in a write transaction and commits it at the next
// revision. An error from fn, or from any Tx method even if fn ignored it,
// aborts the transaction: nothing is written and no revision is used.
// Transactions are serialised, so fn must not call Update or Import on the
// same store (it would wait for itself); reading through any reader is fine.
func (s *Store) Update(ctx context.Context, meta store.WriteMeta, fn func(ctx context.Context, tx store.Tx) error) (store.Revision, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	closed, prev := s.closed, s.head
	s.mu.RUnlock()
	if closed {
		return 0, store.ErrClosed
	}
	tx := newTx(s, prev)
	err := fn(ctx, tx)
	tx.finished = true
	if err == nil {
		err = tx.err
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return 0, err
	}
	return s.commit(meta, tx.changes, tx.pending, tx.schema)
}

// commit applies the final state of each key in pending (and the schema,
// when non-nil) at the next revision and records changes in the
// changelog. s.writeMu is held.
func (s *Store) commit(meta store.WriteMeta, changes []store.Change, pending map[tuple.Key]pendingWrite, schema *string) (store.Revision, error) {
	s.statsCache.changes.Add(int64(len(changes)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	rev := s.head + 1
	t := s.now().UTC()
	if t.Before(s.lastTime) {
		t = s.lastTime // keep commit times monotonic even if the clock is not
	}
	var added []*record
	for k, w := range pending {
		rec := s.records[k]
		if rec == nil {
			if w.deleted {
				continue
			}
			rec = &record{key: k}
			s.records[k] = rec
			added = append(added, rec)
		}
		if _, live := rec.visible(s.head); w.deleted && !live {
			continue
		}
		rec.versions = append(rec.versions, version{rev: rev, deleted: w.deleted, rel: w.rel})
	}
	s.forward.insertAll(added)
	s.reverse.insertAll(added)
	if schema != nil {
		s.schemas = append(s.schemas, schemaVersion{rev: rev, text: *schema})
	}
	s.changes = append(s.changes, store.ChangeSet{
		Revision:      rev,
		Time:          t,
		Caller:        meta.Caller,
		Changes:       changes,
		SchemaChanged: schema != nil,
	})
	s.appendAudit(rev, t, meta, changes, schema)
	s.head = rev
	s.lastTime = t
	s.checkInvariants()
	close(s.notify)
	s.notify = make(chan struct{})
	return rev, nil
}

// Watch yields every change set committed after revision after, then waits
// for new commits until ctx is done or the store is closed.
func (s *Store) Watch(ctx context.Context, after store.Revision) iter.Seq2[store.ChangeSet, error] {
	return func(yield func(store.ChangeSet, error) bool) {
		next := after // the last revision yielded
		for {
			if err := ctx.Err(); err != nil {
				yield(store.ChangeSet{}, err)
				return
			}
			s.mu.RLock()
			var err error
			switch {
			case s.closed:
				err = store.ErrClosed
			case next < s.horizon:
				err = &store.CompactedError{Requested: next, Horizon: s.horizon}
			}
			batch := s.changesAfter(next, 64)
			wake := s.notify
			s.mu.RUnlock()
			if err != nil {
				yield(store.ChangeSet{}, err)
				return
			}
			for _, cs := range batch {
				if !yield(cs, nil) {
					return
				}
				next = cs.Revision
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-ctx.Done():
			case <-wake:
			}
		}
	}
}

// changesAfter copies up to n change sets with revisions above rev.
// s.mu is held.
func (s *Store) changesAfter(rev store.Revision, n int) []store.ChangeSet {
	i := sort.Search(len(s.changes), func(i int) bool { return s.changes[i].Revision > rev })
	var out []store.ChangeSet
	for ; i < len(s.changes) && len(out) < n; i++ {
		cs := s.changes[i]
		cs.Changes = make([]store.Change, len(cs.Changes))
		for j, c := range s.changes[i].Changes {
			cs.Changes[j] = store.Change{Op: c.Op, Relationship: copyRel(c.Relationship)}
		}
		out = append(out, cs)
	}
	return out
}

// Close releases the store: every later call fails with store.ErrClosed
// and waiting watchers end with it.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.notify)
	s.records = nil
	s.forward.chunks = nil
	s.reverse.chunks = nil
	s.changes = nil
	s.schemas = nil
	s.audit = nil
	return nil
}

// copyRel returns r with its caveat context copied, so that callers cannot
// change stored values through maps they passed in or got back.
func copyRel(r tuple.Relationship) tuple.Relationship {
	if r.Caveat != nil {
		c := &tuple.Caveat{Name: r.Caveat.Name}
		if r.Caveat.Context != nil {
			c.Context = copyValue(r.Caveat.Context).(map[string]any)
		}
		r.Caveat = c
	}
	return r
}

// copyValue deep-copies the maps and slices of a JSON-like value.
func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = copyValue(e)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = copyValue(e)
		}
		return l
	}
	return v
}

// errorf prefixes memstore errors consistently.
func errorf(format string, args ...any) error {
	return fmt.Errorf("memstore: "+format, args...)
}

// MaxBatchOps reports the per-transaction limit (store.BatchLimiter).
func (s *Store) MaxBatchOps() int { return s.maxBatch }

// GCTotals counts the GC runs since Open (store.GCReporter).
func (s *Store) GCTotals() store.GCTotals { return s.gcCount.GCTotals() }
