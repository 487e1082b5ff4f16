package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// testClock is a manual clock, safe for the store's background
// goroutines (the statistics' count reads it while a test advances it).
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	fs    vfs.FS
	clock *testClock
}

func newEnv() *env {
	return &env{fs: vfs.NewMem(), clock: &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
}

func (e *env) opts() Options {
	return Options{FS: e.fs, Now: e.clock.Now, GCWindow: time.Hour, GCInterval: -1, CacheSize: 1 << 20, Logger: quietLogger()}
}

func (e *env) open(t testing.TB) *Store {
	t.Helper()
	s, err := Open("db", e.opts())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustRel(t testing.TB, s string) tuple.Relationship {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func touch(t testing.TB, s *Store, rels ...string) store.Revision {
	t.Helper()
	rev, err := s.Update(context.Background(), store.WriteMeta{Caller: "test"}, func(ctx context.Context, tx store.Tx) error {
		for _, r := range rels {
			if err := tx.Touch(ctx, mustRel(t, r)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func del(t testing.TB, s *Store, rels ...string) store.Revision {
	t.Helper()
	rev, err := s.Update(context.Background(), store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
		for _, r := range rels {
			if err := tx.Delete(ctx, mustRel(t, r).Key()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// all returns every relationship at rev as strings, or the error.
func all(s *Store, rev store.Revision) ([]string, error) {
	rd, err := s.Snapshot(context.Background(), rev)
	if err != nil {
		return nil, err
	}
	var out []string
	for r, err := range rd.QueryRelationships(context.Background(), tuple.Filter{}, store.QueryOptions{}) {
		if err != nil {
			return out, err
		}
		out = append(out, r.String())
	}
	return out, nil
}

func mustAll(t testing.TB, s *Store, rev store.Revision) []string {
	t.Helper()
	out, err := all(s, rev)
	if err != nil {
		t.Fatalf("read at %d: %v", rev, err)
	}
	return out
}

// rawKeys counts the keys with the given tag, reading Pebble directly.
func rawKeys(t testing.TB, s *Store, tag byte) int {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

func TestReopen(t *testing.T) {
	e := newEnv()
	s := e.open(t)
	id := s.ID()
	r1 := touch(t, s, "doc:1#viewer@user:a", `doc:1#viewer@user:b[c:{"n":1}]`)
	if _, err := s.Update(context.Background(), store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
		return tx.WriteSchema(ctx, "definition user {}")
	}); err != nil {
		t.Fatal(err)
	}
	r3 := del(t, s, "doc:1#viewer@user:a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, err := s.HeadRevision(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("HeadRevision after Close = %v, want ErrClosed", err)
	}

	s = e.open(t)
	defer s.Close()
	if s.ID() != id {
		t.Errorf("ID after reopen = %q, want %q", s.ID(), id)
	}
	if h, _ := s.HeadRevision(context.Background()); h != r3 {
		t.Errorf("head after reopen = %d, want %d", h, r3)
	}
	if got, want := mustAll(t, s, r1), []string{"doc:1#viewer@user:a", `doc:1#viewer@user:b[c:{"n":1}]`}; !slices.Equal(got, want) {
		t.Errorf("at %d: %q, want %q", r1, got, want)
	}
	if got, want := mustAll(t, s, r3), []string{`doc:1#viewer@user:b[c:{"n":1}]`}; !slices.Equal(got, want) {
		t.Errorf("at %d: %q, want %q", r3, got, want)
	}
	if r4 := touch(t, s, "doc:2#viewer@user:a"); r4 != r3+1 {
		t.Errorf("first write after reopen got revision %d, want %d", r4, r3+1)
	}
}

// writeRaw opens the directory with Pebble alone and applies fn.
func writeRaw(t *testing.T, fs vfs.FS, fn func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Comparer: comparer, FormatMajorVersion: pebbleFormat, Logger: pebbleLogger{quietLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, e *env)
		want    error
	}{
		{"newer format", func(t *testing.T, e *env) {
			e.open(t).Close()
			writeRaw(t, e.fs, func(db *pebble.DB) {
				_ = db.Set(keyFormat, binary.AppendUvarint(nil, formatVersion+1), pebble.Sync)
			})
		}, ErrFormatTooNew},
		{"foreign database", func(t *testing.T, e *env) {
			writeRaw(t, e.fs, func(db *pebble.DB) { _ = db.Set([]byte("hello"), []byte("world"), pebble.Sync) })
		}, ErrNotPemba},
		{"foreign database, Pebble's comparer", func(t *testing.T, e *env) {
			db, err := pebble.Open("db", &pebble.Options{FS: e.fs, FormatMajorVersion: pebbleFormat, Logger: pebbleLogger{quietLogger()}})
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Set([]byte("hello"), []byte("world"), pebble.Sync)
			db.Close()
		}, ErrNotPemba},
		{"format 3 under Pebble's comparer", func(t *testing.T, e *env) {
			e.open(t).Close()
			writeLegacy(t, e.fs, nil)
			writeLegacyRaw(t, e.fs, func(db *pebble.DB) {
				_ = db.Set(keyFormat, binary.AppendUvarint(nil, 3), pebble.Sync)
			})
		}, store.ErrCorrupt},
		{"corrupt head", func(t *testing.T, e *env) {
			e.open(t).Close()
			writeRaw(t, e.fs, func(db *pebble.DB) { _ = db.Set(keyHead, []byte{1}, pebble.Sync) })
		}, store.ErrCorrupt},
		{"corrupt format", func(t *testing.T, e *env) {
			e.open(t).Close()
			writeRaw(t, e.fs, func(db *pebble.DB) { _ = db.Set(keyFormat, []byte{0x80}, pebble.Sync) })
		}, store.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv()
			tc.prepare(t, e)
			s, err := Open("db", e.opts())
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCorruptValue(t *testing.T) {
	e := newEnv()
	s := e.open(t)
	rel := mustRel(t, "doc:1#viewer@user:a")
	rev := touch(t, s, rel.String())
	s.Close()
	writeRaw(t, e.fs, func(db *pebble.DB) {
		_ = db.Set(appendRev(forwardTupleKey(nil, rel.Key()), rev), []byte{1, 0xee}, pebble.Sync)
	})
	s = e.open(t)
	defer s.Close()
	if _, err := all(s, rev); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("query over a corrupt value: %v, want ErrCorrupt", err)
	}
	// The reverse index is intact.
	rd, _ := s.Snapshot(context.Background(), rev)
	for r, err := range rd.ReverseQueryRelationships(context.Background(), tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}, store.QueryOptions{}) {
		if err != nil || r.String() != rel.String() {
			t.Errorf("reverse query = %v, %v", r, err)
		}
	}
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	s := e.open(t)
	defer s.Close()

	rOld := touch(t, s, "doc:old#viewer@user:a") // never changes again
	r2 := touch(t, s, "doc:1#viewer@user:a", "doc:1#viewer@user:b", "doc:2#viewer@user:a")
	if _, err := s.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error { return tx.WriteSchema(ctx, "v1") }); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	touch(t, s, `doc:1#viewer@user:a[c]`) // shadows r2's version
	del(t, s, "doc:1#viewer@user:b")      // tombstone
	if _, err := s.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error { return tx.WriteSchema(ctx, "v2") }); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	r7 := touch(t, s, "doc:2#viewer@user:b")
	r8 := del(t, s, "doc:2#viewer@user:a") // after the horizon: kept
	if _, err := s.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error { return tx.WriteSchema(ctx, "v3") }); err != nil {
		t.Fatal(err)
	}
	before := rawKeys(t, s, tagForward)
	old, err := s.Snapshot(ctx, r2) // opened before GC moves past it
	if err != nil {
		t.Fatal(err)
	}

	// Commits up to the second schema (revision 6) are older than the
	// one-hour window.
	stats, err := s.GC(ctx, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Horizon != 6 {
		t.Fatalf("horizon = %d, want 6", stats.Horizon)
	}
	// Removed: doc:1@a's r2 version, doc:1@b's r2 version and r5
	// tombstone, and change sets 1..5.
	if got, want := before-rawKeys(t, s, tagForward), 3; got != want {
		t.Errorf("GC removed %d forward entries, want %d", got, want)
	}
	if stats.Removed != 3+5 {
		t.Errorf("stats.Removed = %d, want 8", stats.Removed)
	}
	if got := rawKeys(t, s, tagForward); got != rawKeys(t, s, tagReverse) {
		t.Errorf("forward has %d entries, reverse %d", got, rawKeys(t, s, tagReverse))
	}
	want6 := []string{"doc:1#viewer@user:a[c]", "doc:2#viewer@user:a", "doc:old#viewer@user:a"}
	if got := mustAll(t, s, 6); !slices.Equal(got, want6) {
		t.Errorf("at horizon: %q, want %q", got, want6)
	}
	if got, want := mustAll(t, s, r8), []string{"doc:1#viewer@user:a[c]", "doc:2#viewer@user:b", "doc:old#viewer@user:a"}; !slices.Equal(got, want) {
		t.Errorf("at head: %q, want %q", got, want)
	}
	if _, err := s.Snapshot(ctx, 5); !errors.Is(err, store.ErrRevisionCompacted) {
		t.Errorf("Snapshot below horizon: %v", err)
	}
	if _, err := all(s, rOld); !errors.Is(err, store.ErrRevisionCompacted) {
		t.Errorf("read below horizon: %v", err)
	}
	// The reader opened before GC must not see a half-collected state.
	if err == nil {
		for _, err := range old.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}) {
			if !errors.Is(err, store.ErrRevisionCompacted) {
				t.Errorf("reader from before GC: %v, want ErrRevisionCompacted", err)
			}
			break
		}
	}
	// Schema v2 (revision 6) is the one in force at the horizon: kept.
	rd, _ := s.Snapshot(ctx, 6)
	if text, rev, err := rd.ReadSchema(ctx); text != "v2" || rev != 6 || err != nil {
		t.Errorf("schema at horizon = %q, %d, %v", text, rev, err)
	}
	if got := rawKeys(t, s, tagSchema); got != 2 {
		t.Errorf("%d schema versions left, want 2 (v2, v3)", got)
	}
	for _, err := range s.Watch(ctx, 5) {
		if !errors.Is(err, store.ErrRevisionCompacted) {
			t.Errorf("Watch below horizon: %v", err)
		}
		break
	}
	wctx, cancel := context.WithCancel(ctx)
	var revs []store.Revision
	for cs, err := range s.Watch(wctx, 6) {
		if err != nil {
			t.Fatal(err)
		}
		if revs = append(revs, cs.Revision); cs.Revision == 9 {
			cancel()
			break
		}
	}
	cancel()
	if !slices.Equal(revs, []store.Revision{r7, r8, 9}) {
		t.Errorf("Watch from horizon: %v", revs)
	}

	// The horizon survives a restart; a second GC with nothing new is a no-op.
	s.Close()
	s = e.open(t)
	defer s.Close()
	if _, err := s.Snapshot(ctx, 5); !errors.Is(err, store.ErrRevisionCompacted) {
		t.Errorf("Snapshot below horizon after reopen: %v", err)
	}
	if stats, err := s.GC(ctx, e.clock.Now()); err != nil || stats.Horizon != 6 || stats.Removed != 0 {
		t.Errorf("second GC = %+v, %v", stats, err)
	}
	// Much later, everything but the latest state goes.
	e.clock.Advance(2 * time.Hour)
	if stats, err := s.GC(ctx, e.clock.Now()); err != nil || stats.Horizon != 9 {
		t.Errorf("third GC = %+v, %v", stats, err)
	}
	if got, want := mustAll(t, s, 9), []string{"doc:1#viewer@user:a[c]", "doc:2#viewer@user:b", "doc:old#viewer@user:a"}; !slices.Equal(got, want) {
		t.Errorf("after full GC: %q, want %q", got, want)
	}
	if got := rawKeys(t, s, tagForward); got != 3 {
		t.Errorf("%d forward entries after full GC, want 3", got)
	}
	if got := rawKeys(t, s, tagChangelog); got != 1 {
		t.Errorf("%d changelog entries after full GC, want 1", got)
	}
}

// TestGCInterrupted: a GC that persisted its horizon but crashed before
// deleting is finished by the next run.
func TestGCInterrupted(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	s := e.open(t)
	touch(t, s, "doc:1#viewer@user:a")
	touch(t, s, "doc:1#viewer@user:a[c]")
	del(t, s, "doc:2#viewer@user:a")
	e.clock.Advance(2 * time.Hour)
	touch(t, s, "doc:3#viewer@user:a")
	s.Close()
	// The state a crash after persisting the horizon leaves.
	writeRaw(t, e.fs, func(db *pebble.DB) { _ = db.Set(keyHorizon, revBytes(3), pebble.Sync) })
	s = e.open(t)
	defer s.Close()
	if h := s.Horizon(); h != 3 {
		t.Fatalf("horizon after reopen = %d, want 3", h)
	}
	if got := rawKeys(t, s, tagForward); got != 3 {
		t.Fatalf("%d forward entries before GC, want 3", got)
	}
	if _, err := s.GC(ctx, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := rawKeys(t, s, tagForward); got != 2 {
		t.Errorf("%d forward entries after GC, want 2", got)
	}
}

// failAfter yields rels, then fails after n of them.
func failAfter(rels iter.Seq2[tuple.Relationship, error], n int) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		i := 0
		for r, err := range rels {
			if i == n {
				yield(tuple.Relationship{}, errors.New("source failed"))
				return
			}
			if !yield(r, err) {
				return
			}
			i++
		}
	}
}

func genRels(n int) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for i := range n {
			r := tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%07d", i/10)},
				Relation: "viewer",
				Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%07d", i)},
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	s := e.open(t)
	touch(t, s, "doc:d0000000#viewer@user:u0000000[c]")
	rev, n, err := s.Import(ctx, store.WriteMeta{Caller: "loader"}, genRels(5000))
	if err != nil || n != 5000 || rev != 2 {
		t.Fatalf("Import = %d, %d, %v", rev, n, err)
	}
	got := mustAll(t, s, rev)
	if len(got) != 5000 || got[0] != "doc:d0000000#viewer@user:u0000000" {
		t.Errorf("after import: %d relationships, first %q", len(got), got[0])
	}
	if got := mustAll(t, s, 1); len(got) != 1 {
		t.Errorf("before import: %d relationships", len(got))
	}
	var changes int
	for cs, err := range s.Watch(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		changes = len(cs.Changes)
		if cs.Revision != rev || cs.Caller != "loader" {
			t.Errorf("change set %d by %q", cs.Revision, cs.Caller)
		}
		break
	}
	if changes != 5000 {
		t.Errorf("import change set has %d changes", changes)
	}

	// A failing source rolls back and consumes no revision.
	if _, _, err := s.Import(ctx, store.WriteMeta{}, failAfter(genRels(3000), 2500)); err == nil {
		t.Fatal("Import from a failing source succeeded")
	}
	if h, _ := s.HeadRevision(ctx); h != rev {
		t.Errorf("head after failed import = %d", h)
	}
	if got := rawKeys(t, s, tagForward); got != 5001 {
		t.Errorf("%d forward entries after failed import, want 5001", got)
	}

	// Crash mid-import: batches committed, head not written.
	if err := s.db.Set(keyReserved, revBytes(rev+1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	wrote := func(yield func(tuple.Relationship, error) bool) {
		for r := range genRels(4000) {
			r.Relation = "editor"
			if !yield(r, nil) {
				return
			}
		}
	}
	if _, err := s.importAt(ctx, rev+1, store.WriteMeta{}, failAfter(wrote, 3500), 1<<16); err == nil {
		t.Fatal("importAt from a failing source succeeded")
	}
	if got := rawKeys(t, s, tagForward); got <= 5001 {
		t.Fatalf("the simulated crash left no partial data (%d entries); the test proves nothing", got)
	}
	s.Close()
	s = e.open(t)
	defer s.Close()
	if got := rawKeys(t, s, tagForward); got != 5001 {
		t.Errorf("%d forward entries after recovery, want 5001", got)
	}
	r := touch(t, s, "doc:x#viewer@user:y")
	if r != rev+1 {
		t.Errorf("write after recovery at %d, want %d", r, rev+1)
	}
	if got := mustAll(t, s, r); len(got) != 5001 {
		t.Errorf("after recovery and a write: %d relationships, want 5001", len(got))
	}
}

func TestClosedWatch(t *testing.T) {
	e := newEnv()
	s := e.open(t)
	done := make(chan error)
	started := make(chan struct{})
	go func() {
		var last error
		for cs, err := range s.Watch(context.Background(), 0) {
			if err != nil {
				last = err
				break
			}
			if cs.Revision == 1 {
				close(started)
			}
		}
		done <- last
	}()
	touch(t, s, "doc:1#viewer@user:a")
	<-started
	s.Close()
	if err := <-done; !errors.Is(err, store.ErrClosed) {
		t.Errorf("Watch after Close ended with %v, want ErrClosed", err)
	}
}

// signalHandler is a slog.Handler that sends every record's message.
type signalHandler struct{ msgs chan<- string }

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.msgs <- r.Message:
	default:
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// TestBackgroundGC: the background goroutine collects, and Close stops it.
func TestBackgroundGC(t *testing.T) {
	e := newEnv()
	s := e.open(t)
	touch(t, s, "doc:1#viewer@user:a")
	e.clock.Advance(2 * time.Hour)
	touch(t, s, "doc:1#viewer@user:a[c]")
	s.Close()

	msgs := make(chan string, 16)
	opts := e.opts()
	opts.GCInterval = time.Millisecond
	opts.Logger = slog.New(signalHandler{msgs})
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(time.Minute) // a failure guard, not synchronisation
	for waiting := true; waiting; {
		select {
		case m := <-msgs:
			waiting = m != "pebblestore: gc"
		case <-timeout:
			t.Fatal("no background GC within a minute")
		}
	}
	if h := s.Horizon(); h != 1 {
		t.Errorf("horizon after background GC = %d, want 1", h)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestIterPool: a pooled iterator is reused only for revisions it can see.
func TestIterPool(t *testing.T) {
	e := newEnv()
	s := e.open(t)
	defer s.Close()
	s.stats.Stop() // no background count takes iterators below
	r1 := touch(t, s, "doc:1#viewer@user:a")
	if got := mustAll(t, s, r1); len(got) != 1 {
		t.Fatalf("at %d: %q", r1, got)
	}
	// (The count of statistics at Open may have left one from before r1.)
	if n := len(pooledAt(s, r1)); n != 1 {
		t.Fatalf("%d pooled iterators of head %d after a query, want 1", n, r1)
	}
	r2 := touch(t, s, "doc:2#viewer@user:a")
	// The pooled iterator predates r2: it must not serve r2.
	if got := mustAll(t, s, r2); len(got) != 2 {
		t.Errorf("at %d: %q, want two relationships", r2, got)
	}
	// It may serve r1, and returns stale to be closed, not pooled.
	if got := mustAll(t, s, r1); len(got) != 1 {
		t.Errorf("at %d: %q, want one relationship", r1, got)
	}
	for _, pi := range s.iters.pooled() {
		if pi.head != r2 {
			t.Errorf("pooled iterator from head %d after a commit of %d", pi.head, r2)
		}
	}
}

// TestUpgradeFormat1 opens a format 1 store (no expiry index): Open builds
// the index, so GC then removes the relationships that expired before.
func TestUpgradeFormat1(t *testing.T) {
	e := newEnv()
	s := e.open(t)
	exp := e.clock.Now().Add(time.Minute).Format(time.RFC3339)
	touch(t, s,
		"doc:1#viewer@user:a[expiration:"+exp+"]",
		"doc:2#viewer@user:a",
		"doc:3#viewer@user:a[expiration:2100-01-01T00:00:00Z]")
	touch(t, s, "doc:3#viewer@user:a[expiration:"+exp+"]") // the older version gets an entry too
	if n := rawKeys(t, s, tagExpiry); n != 3 {
		t.Fatalf("%d expiry index entries, want 3", n)
	}
	s.Close()
	// Format 1: the same keys without the expiry index, under Pebble's
	// default comparer.
	writeLegacy(t, e.fs, func(db *pebble.DB) {
		_ = db.DeleteRange([]byte{tagExpiry}, []byte{tagExpiry + 1}, nil)
		_ = db.Set(keyFormat, binary.AppendUvarint(nil, 1), pebble.Sync)
	})

	s = e.open(t)
	defer s.Close()
	if n := rawKeys(t, s, tagExpiry); n != 3 {
		t.Errorf("after the upgrade: %d expiry index entries, want 3", n)
	}
	if f, err := s.getUvarint(keyFormat); err != nil || f != formatVersion {
		t.Errorf("format after the upgrade = %d (%v), want %d", f, err, formatVersion)
	}
	e.clock.Advance(2 * time.Hour)
	stats, err := s.GC(context.Background(), e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Expired != 2 {
		t.Errorf("GC after the upgrade removed %d expired relationships, want 2", stats.Expired)
	}
	if got := mustAll(t, s, 2); !slices.Equal(got, []string{"doc:2#viewer@user:a"}) {
		t.Errorf("after GC: %v, want only doc:2", got)
	}
	if n := rawKeys(t, s, tagExpiry); n != 0 {
		t.Errorf("after GC: %d expiry index entries, want 0", n)
	}
}

// TestExpiryIndexTidy checks that no expiry index entry outlives its
// version: ordinary GC deletes the entries of the versions it deletes, a
// rolled-back import deletes its entries, and expiry GC the rest.
func TestExpiryIndexTidy(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	s := e.open(t)
	defer s.Close()
	at := func(d time.Duration) string { return "[expiration:" + e.clock.Now().Add(d).Format(time.RFC3339) + "]" }
	touch(t, s, "doc:a#viewer@user:a"+at(time.Minute))
	touch(t, s, "doc:a#viewer@user:a"+at(100*time.Hour)) // renewed: two entries
	del(t, s, "doc:a#viewer@user:a")
	touch(t, s, "doc:b#viewer@user:b"+at(100*time.Hour))
	touch(t, s, "doc:b#viewer@user:b") // no longer expires
	touch(t, s, "doc:c#viewer@user:c"+at(time.Minute))
	if n := rawKeys(t, s, tagExpiry); n != 4 {
		t.Fatalf("%d expiry index entries, want 4", n)
	}

	// An import that fails after committing batches rolls its entries back.
	expiring := func(yield func(tuple.Relationship, error) bool) {
		for r := range genRels(3000) {
			r.Expiration = e.clock.Now().Add(time.Minute)
			if !yield(r, nil) {
				return
			}
		}
	}
	s.wmu.Lock()
	rev := store.Revision(s.applied.Load()) + 1
	if err := s.db.Set(keyReserved, revBytes(rev), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.importAt(ctx, rev, store.WriteMeta{}, failAfter(expiring, 2500), 1<<10); err == nil {
		t.Fatal("import from a failing source succeeded")
	}
	if n := rawKeys(t, s, tagExpiry); n <= 4 {
		t.Fatalf("%d expiry index entries before the rollback: the test committed no batch", n)
	}
	err := s.rollbackImport()
	s.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n := rawKeys(t, s, tagExpiry); n != 4 {
		t.Errorf("%d expiry index entries after the rollback, want 4", n)
	}

	// Past the window: ordinary GC deletes doc:a's and doc:b's old
	// versions with their entries, expiry GC deletes doc:c.
	e.clock.Advance(2 * time.Hour)
	stats, err := s.GC(ctx, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Expired != 1 {
		t.Errorf("GC removed %d expired relationships, want 1 (doc:c)", stats.Expired)
	}
	if n := rawKeys(t, s, tagExpiry); n != 0 {
		t.Errorf("%d expiry index entries after GC, want 0", n)
	}
	if n := rawKeys(t, s, tagForward); n != 1 {
		t.Errorf("%d forward index entries after GC, want 1 (doc:b)", n)
	}
}

// TestPointReadsInTurn: ReadRelationship's seek keys are written into one
// buffer of the pooled iterator, and Pebble compares each SeekPrefixGE
// with the prefix of the one before (a later one may step instead of
// seeking): point reads in turn on one pooled iterator, found and absent,
// in and out of order, must each see their own key.
func TestPointReadsInTurn(t *testing.T) {
	e := newEnv()
	s := e.open(t)
	defer s.Close()
	rev := touch(t, s, "doc:1#viewer@user:b", "doc:1#viewer@user:d")
	r, err := s.Snapshot(context.Background(), rev)
	if err != nil {
		t.Fatal(err)
	}
	pr := r.(store.PointReader)
	for i, tt := range []struct {
		key   string
		found bool
	}{
		{"doc:1#viewer@user:c", false}, {"doc:1#viewer@user:b", true}, {"doc:1#viewer@user:z", false},
		{"doc:1#viewer@user:d", true}, {"doc:1#viewer@user:d", true}, {"doc:1#viewer@user:a", false},
		{"doc:1#viewer@user:b", true}, {"doc:1#viewer@user:b", true}, {"doc:1#viewer@user:e", false},
		{"doc:1#viewer@user:e", false}, {"doc:1#viewer@user:d", true},
	} {
		parsed, err := tuple.Parse(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		k := parsed.Key()
		rel, found, err := pr.ReadRelationship(context.Background(), k, time.Time{})
		if err != nil || found != tt.found || found && rel.Key() != k {
			t.Errorf("read %d of %s: %v, found %v, %v; want found %v", i, tt.key, rel, found, err, tt.found)
		}
	}
	unbounded := 0
	for _, pi := range pooledAt(s, rev) {
		if pi.unbounded {
			unbounded++
		}
	}
	if unbounded != 1 {
		t.Errorf("%d pooled iterators for point reads, want the one reused", unbounded)
	}
}

// pooledAt returns the pooled iterators created at head rev.
func pooledAt(s *Store, rev store.Revision) []*pooledIter {
	var out []*pooledIter
	for _, pi := range s.iters.pooled() {
		if pi.head == rev {
			out = append(out, pi)
		}
	}
	return out
}

// TestSavedStatistics: a count is saved and served again by a store
// reopened at the same head, without counting; at a newer head the saved
// count is not served (a count of the newer head may be).
func TestSavedStatistics(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	s := e.open(t)
	touch(t, s, "doc:1#viewer@user:a", "doc:1#viewer@user:b", "doc:2#parent@folder:f")
	want, err := s.RefreshStatistics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = e.open(t)
	// Statistics is read at once: a count in the background could not
	// have ended before it without the saved one.
	got := s.Statistics()
	if got == nil || got.Revision != want.Revision || got.Total != 3 ||
		got.Resource("doc", "viewer") != (store.Count{Relationships: 2, Objects: 1}) || got.Subject("folder", "") != (store.Count{Relationships: 1, Objects: 1}) {
		t.Errorf("reopened at the same head: Statistics() = %+v, want the saved %+v", got, want)
	}
	touch(t, s, "doc:3#viewer@user:c")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = e.open(t)
	defer s.Close()
	// The count at open may already have finished and saved a count of
	// the new head (4 relationships); the old count must never be served.
	if saved := s.savedStatistics(); saved != nil && (saved.Revision == want.Revision || saved.Total != 4) {
		t.Errorf("saved statistics of revision %d (%d relationships) served at head %d", saved.Revision, saved.Total, s.head.Load())
	}
}

// TestCloseWaitsForQueries: a query still reading (counted in its P's
// shard of Store.readers) keeps Close waiting until it stops, queries
// begun after Close started fail with store.ErrClosed, and the counts
// are back to zero.
func TestCloseWaitsForQueries(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	s := e.open(t)
	s.stats.Stop() // its background count holds an operation too
	rev := touch(t, s, "doc:1#viewer@user:a", "doc:2#viewer@user:a")
	r, err := s.Snapshot(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	next, stop := iter.Pull2(r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}))
	if _, err, ok := next(); !ok || err != nil {
		t.Fatalf("first relationship: %v, %v", ok, err)
	}
	if n := s.activeOps(); n != 1 {
		t.Fatalf("%d operations active during a query, want 1", n)
	}
	done := make(chan error)
	go func() { done <- s.Close() }()
	for !s.closed.Load() {
		runtime.Gosched()
	}
	var after error
	for _, err := range r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}) {
		after = err
		break
	}
	if !errors.Is(after, store.ErrClosed) {
		t.Errorf("a query after Close began: %v, want store.ErrClosed", after)
	}
	select {
	case err := <-done:
		t.Fatalf("Close returned (%v) while a query was reading", err)
	default:
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := s.activeOps(); n != 0 {
		t.Errorf("%d operations active after Close", n)
	}
}
