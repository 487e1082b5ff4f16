// Package storetest is the conformance suite that every store.Store
// backend must pass, and a few helpers for tests that use a store.
//
// # Adopting the suite
//
// A backend calls Run from an ordinary test, with a Factory that opens a
// fresh, empty store honouring the Config and registers its Close with
// t.Cleanup:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t testing.TB, cfg storetest.Config) store.Store {
//			st, err := mybackend.Open(t.TempDir(), mybackend.Options{
//				GCWindow: cfg.GCWindow, Now: cfg.Now, MaxBatchOps: cfg.MaxBatchOps,
//			})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { st.Close() })
//			return st
//		})
//	}
//
// The suite runs subtests named by concern (revisions, mvcc, queries,
// writes, schema, watch, gc, gc-expired, bulk, audit, stats, powers, random, concurrency, close), so one
// failing area can be rerun with -run 'TestConformance/queries'. Optional powers
// (store.GarbageCollector, store.BulkLoader, store.StatsKeeper) are tested when the store
// implements them and skipped otherwise; the evaluator's read powers
// (store.StatsReader, store.PointReader, store.BatchReader) every backend
// must implement (the stats and powers subtests). The store's Close may be called
// twice (by the close subtest and by the cleanup); the second call must
// not panic.
//
// # Contract decisions
//
// Where store.go leaves room, the suite pins down these behaviours:
//
//   - Every successful Update, even one that writes nothing, commits the
//     next revision; a failed one commits nothing and uses no revision.
//   - An error returned by any Tx method aborts the transaction, even when
//     fn ignores it and returns nil. Touch, Create and Delete validate
//     their input: a malformed relationship or key fails with an error
//     that wraps tuple.ErrInvalid.
//   - Create fails on a key created or touched earlier in the same
//     transaction and succeeds after a Delete of it in the same
//     transaction; Create over a relationship that expired by the store's
//     clock succeeds.
//   - Writes apply in call order: the last write to a key wins. Delete and
//     DeleteMatching see the transaction's own earlier writes (so Touch
//     then DeleteMatching removes the touched relationship), while
//     tx.QueryRelationships sees only the previous revision.
//   - DeleteMatching removes matching relationships whether or not they
//     have expired. With a limit it may remove any limit of the matching
//     ones (memstore takes the first in forward index order); the suite
//     checks the count and that only matching ones went.
//   - Writing the schema text "" stores an empty schema: ReadSchema then
//     returns ("", revision) rather than ("", 0).
//   - Relationships come back with their expiration in UTC and their caveat
//     context equal (reflect.DeepEqual) to what was written, when it was
//     made of JSON values (json.Number for numbers); a nil and an empty
//     context are interchangeable.
//   - Watch yields a failure (compacted, cancelled, closed) as a final
//     (ChangeSet{}, err) pair. Within a change set the order of Changes is
//     not checked; a Delete change must carry the deleted key.
//   - GC's horizon is the newest revision committed at or before now minus
//     the window (commit time exactly at the cutoff included) and never
//     decreases. A reader opened before GC must afterwards give either the
//     right answer or ErrRevisionCompacted.
//   - GC removes exactly the expired relationships store.GarbageCollector
//     describes (the current version, written at or below the horizon,
//     expired at or before the cutoff) and counts them in GCStats.Expired,
//     exactly; the random run checks the count against its model. Reads
//     with Now at or after the cutoff answer as before; reads with a zero
//     Now no longer see them, at any revision; no change set is added or
//     altered.
package storetest

import (
	"cmp"
	"context"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Config is what the suite asks of a new store.
type Config struct {
	// GCWindow is the store's GC window; zero means the backend's default.
	GCWindow time.Duration
	// Now is the store's clock (commit times, expiration checks); nil
	// means time.Now.
	Now func() time.Time
	// MaxBatchOps is the per-transaction limit on Touch, Create and
	// Delete calls; zero means store.DefaultMaxBatchOps.
	MaxBatchOps int
	// AuditRetention is the store's audit retention (GC prunes audit
	// entries older than it); zero means forever.
	AuditRetention time.Duration
}

// Factory opens a fresh, empty store configured by cfg and registers its
// cleanup with t.Cleanup. It fails the test itself if it cannot.
type Factory func(t testing.TB, cfg Config) store.Store

// Run runs the whole conformance suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	s := &suite{newStore: newStore}
	t.Run("revisions", s.testRevisions)
	t.Run("mvcc", s.testMVCC)
	t.Run("queries", s.testQueries)
	t.Run("writes", s.testWrites)
	t.Run("schema", s.testSchema)
	t.Run("watch", s.testWatch)
	t.Run("gc", s.testGC)
	t.Run("gc-expired", s.testGCExpired)
	t.Run("bulk", s.testBulk)
	t.Run("audit", s.testAudit)
	t.Run("stats", s.testStats)
	t.Run("powers", s.testPowers)
	t.Run("random", s.testRandom)
	t.Run("concurrency", s.testConcurrency)
	t.Run("close", s.testClose)
}

// suite carries the factory into the subtests.
type suite struct {
	newStore Factory
}

// startTime is the suite's fixed starting time; it is not UTC on purpose,
// so that backends must convert.
func startTime() time.Time {
	return time.Date(2030, time.March, 4, 5, 6, 7, 890123456, time.FixedZone("UTC+5", 5*3600))
}

// open returns a fresh store whose clock the test controls.
func (s *suite) open(t testing.TB, cfg Config) (store.Store, *Clock) {
	t.Helper()
	clock := NewClock(startTime())
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	st := s.newStore(t, cfg)
	if st == nil {
		t.Fatal("storetest: factory returned a nil store")
	}
	return st, clock
}

// Clock is a manual clock for stores under test. It is safe for
// concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t until advanced.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// Collect drains a query and returns its relationships, stopping at the
// first error.
func Collect(seq iter.Seq2[tuple.Relationship, error]) ([]tuple.Relationship, error) {
	var out []tuple.Relationship
	for r, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// MustParse parses relationships in tuple text form or fails the test.
func MustParse(t testing.TB, texts ...string) []tuple.Relationship {
	t.Helper()
	out := make([]tuple.Relationship, 0, len(texts))
	for _, s := range texts {
		r, err := tuple.Parse(s)
		if err != nil {
			t.Fatalf("storetest: parse %q: %v", s, err)
		}
		out = append(out, r)
	}
	return out
}

// MustUpdate runs fn in one transaction or fails the test, and returns the
// committed revision.
func MustUpdate(t testing.TB, st store.Store, fn func(ctx context.Context, tx store.Tx) error) store.Revision {
	t.Helper()
	rev, err := st.Update(context.Background(), store.WriteMeta{Caller: "storetest"}, fn)
	if err != nil {
		t.Fatalf("storetest: update: %v", err)
	}
	return rev
}

// MustTouch touches rels in one transaction or fails the test, and returns
// the committed revision.
func MustTouch(t testing.TB, st store.Store, rels ...tuple.Relationship) store.Revision {
	t.Helper()
	return MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		for _, r := range rels {
			if err := tx.Touch(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// MustDelete deletes keys in one transaction or fails the test, and
// returns the committed revision.
func MustDelete(t testing.TB, st store.Store, keys ...tuple.Key) store.Revision {
	t.Helper()
	return MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		for _, k := range keys {
			if err := tx.Delete(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// MustSnapshot opens a reader at rev or fails the test.
func MustSnapshot(t testing.TB, st store.Store, rev store.Revision) store.Reader {
	t.Helper()
	r, err := st.Snapshot(context.Background(), rev)
	if err != nil {
		t.Fatalf("storetest: snapshot at %d: %v", rev, err)
	}
	return r
}

// MustHead returns the head revision or fails the test.
func MustHead(t testing.TB, st store.Store) store.Revision {
	t.Helper()
	rev, err := st.HeadRevision(context.Background())
	if err != nil {
		t.Fatalf("storetest: head revision: %v", err)
	}
	return rev
}

// CompareForward orders keys as the forward index does: resource type,
// resource id, relation, subject type, subject id, subject relation, each
// compared byte-wise (so the plain subject relation "" sorts first).
func CompareForward(a, b tuple.Key) int {
	return compareStrings(
		[]string{a.Resource.Type, a.Resource.ID, a.Relation, a.Subject.Type, a.Subject.ID, a.Subject.Relation},
		[]string{b.Resource.Type, b.Resource.ID, b.Relation, b.Subject.Type, b.Subject.ID, b.Subject.Relation})
}

// CompareReverse orders keys as the reverse index does: subject type,
// subject id, subject relation, resource type, relation, resource id.
func CompareReverse(a, b tuple.Key) int {
	return compareStrings(
		[]string{a.Subject.Type, a.Subject.ID, a.Subject.Relation, a.Resource.Type, a.Relation, a.Resource.ID},
		[]string{b.Subject.Type, b.Subject.ID, b.Subject.Relation, b.Resource.Type, b.Relation, b.Resource.ID})
}

func compareStrings(a, b []string) int {
	for i := range a {
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// Format renders relationships one per line in tuple text form, for
// comparisons and readable failure messages.
func Format(rels []tuple.Relationship) string {
	var b strings.Builder
	for _, r := range rels {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}
