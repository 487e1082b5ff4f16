package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/storetest"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestMigrate walks a database through the states Open must tell apart.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	uri := newDatabase(t)
	opts := Options{GCInterval: -1, Logger: quietLogger()}

	open := func() error {
		st, err := Open(ctx, uri, opts)
		if err == nil {
			st.Close()
		}
		return err
	}
	err := open()
	if !errors.Is(err, ErrNotMigrated) || !strings.Contains(err.Error(), "pemba datastore migrate --datastore-uri") {
		t.Fatalf("Open on an empty database: %v, want ErrNotMigrated naming the migrate command", err)
	}
	for i := range 2 { // idempotent
		if err := Migrate(ctx, uri); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	if err := open(); err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}

	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	steps := []struct {
		version int
		want    error
	}{
		{SchemaVersion() + 1, ErrSchemaTooNew},
		{SchemaVersion() - 1, ErrNotMigrated},
	}
	for _, st := range steps {
		if _, err := conn.Exec(ctx, `UPDATE pemba_schema_version SET version = $1`, st.version); err != nil {
			t.Fatal(err)
		}
		var ve *VersionError
		if err := open(); !errors.Is(err, st.want) || !errors.As(err, &ve) || ve.Found != st.version {
			t.Errorf("Open at schema version %d: %v, want %v", st.version, err, st.want)
		}
	}
	// A database at version 1 gains the expiry index of version 2.
	if _, err := conn.Exec(ctx, `DROP INDEX pemba_relationships_expires`); err != nil {
		t.Fatal(err)
	}
	dropVersion3(t, conn)
	if _, err := conn.Exec(ctx, `UPDATE pemba_schema_version SET version = 1`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, uri); err != nil {
		t.Fatalf("Migrate from version 1: %v", err)
	}
	var indexes int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE indexname = 'pemba_relationships_expires'`).Scan(&indexes); err != nil || indexes != 1 {
		t.Errorf("after Migrate from version 1: %d expiry indexes (%v), want 1", indexes, err)
	}
	if err := open(); err != nil {
		t.Errorf("Open after Migrate from version 1: %v", err)
	}
	// An index built beforehand (CONCURRENTLY, by an operator) is kept.
	dropVersion3(t, conn)
	if _, err := conn.Exec(ctx, `UPDATE pemba_schema_version SET version = 1`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, uri); err != nil {
		t.Errorf("Migrate from version 1 with the expiry index built: %v", err)
	}
	if _, err := conn.Exec(ctx, `UPDATE pemba_schema_version SET version = $1`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, uri); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Migrate of a newer database: %v, want ErrSchemaTooNew", err)
	}
}

// TestRestart checks that identity, head, horizon, data and the revision
// sequence survive closing and reopening.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	opts := Options{GCWindow: time.Hour, Now: clock.Now}
	st, uri := openTest(t, opts)
	rels := storetest.MustParse(t, "doc:1#viewer@user:a", "doc:2#viewer@user:b")
	storetest.MustTouch(t, st, rels[0])
	clock.Advance(2 * time.Hour)
	rev := storetest.MustTouch(t, st, rels[1])
	if _, err := st.GC(ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}
	id := st.ID()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	opts.GCInterval, opts.Logger = -1, quietLogger()
	st2, err := Open(ctx, uri, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if st2.ID() != id {
		t.Errorf("ID after reopen = %q, want %q", st2.ID(), id)
	}
	if got := storetest.MustHead(t, st2); got != rev {
		t.Errorf("head after reopen = %d, want %d", got, rev)
	}
	if _, err := st2.Snapshot(ctx, 0); !errors.Is(err, store.ErrRevisionCompacted) {
		t.Errorf("Snapshot below the persisted horizon: %v, want ErrRevisionCompacted", err)
	}
	got, err := storetest.Collect(storetest.MustSnapshot(t, st2, rev).QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}))
	if err != nil || storetest.Format(got) != storetest.Format(rels) {
		t.Errorf("after reopen: %v %v, want %v", got, err, rels)
	}
	next := storetest.MustTouch(t, st2, rels[0])
	if next != rev+1 {
		t.Errorf("first write after reopen committed %d, want %d", next, rev+1)
	}
	// The audit log survived the GC (the first write is below the
	// horizon) and the restart, and the next write extended its chain.
	rep, err := store.VerifyAudit(ctx, st2)
	if err != nil || rep.Mismatch != nil || rep.Anchor != (store.AuditAnchor{}) || rep.Entries != int(next) || rep.Head != next {
		t.Errorf("audit after GC and reopen: %+v (mismatch %+v), %v; want %d entries from revision 1", rep, rep.Mismatch, err, next)
	}
}

// TestRevisionsCommitInOrder holds one write transaction open and shows
// that a second writer waits for it: revision N+1 is never visible, or
// even allocated, before N commits.
func TestRevisionsCommitInOrder(t *testing.T) {
	ctx := context.Background()
	st, uri := openTest(t, Options{})
	other, err := Open(ctx, uri, Options{GCInterval: -1, Logger: quietLogger()}) // a second process
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	base := storetest.MustTouch(t, st, storetest.MustParse(t, "doc:0#viewer@user:0")...)

	entered, release := make(chan struct{}), make(chan struct{})
	type result struct {
		rev store.Revision
		err error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() {
		rev, err := st.Update(ctx, store.WriteMeta{Caller: "slow"}, func(ctx context.Context, tx store.Tx) error {
			close(entered)
			<-release
			return tx.Touch(ctx, storetest.MustParse(t, "doc:1#viewer@user:slow")[0])
		})
		first <- result{rev, err}
	}()
	<-entered
	go func() {
		rev, err := other.Update(ctx, store.WriteMeta{Caller: "fast"}, func(ctx context.Context, tx store.Tx) error {
			return tx.Touch(ctx, storetest.MustParse(t, "doc:2#viewer@user:fast")[0])
		})
		second <- result{rev, err}
	}()
	// Wait until the second writer is blocked on the counter's row lock.
	waitForLockWaiter(t, uri)
	for _, s := range []*Store{st, other} {
		if h := storetest.MustHead(t, s); h != base {
			t.Errorf("head while revision %d is open = %d, want %d", base+1, h, base)
		}
	}
	select {
	case r := <-second:
		t.Fatalf("second writer finished (%+v) while the first was open", r)
	default:
	}
	close(release)
	r1, r2 := <-first, <-second
	if r1.err != nil || r2.err != nil || r1.rev != base+1 || r2.rev != base+2 {
		t.Fatalf("revisions (%d, %v) and (%d, %v), want %d and %d", r1.rev, r1.err, r2.rev, r2.err, base+1, base+2)
	}
}

// waitForLockWaiter polls pg_locks until a backend waits for a lock on
// the revision counter's table.
func waitForLockWaiter(t *testing.T, uri string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE NOT l.granted AND a.datname = current_database()`).Scan(&n); err != nil {
			t.Fatalf("waiting for the second writer to block: %v", err)
		}
		if n > 0 {
			return
		}
	}
}

// TestConcurrentWritersAndReaders runs writers on two stores (two pools,
// as two processes would) against one database while readers on both
// check at every head they observe that exactly head relationships are
// visible: each Update adds one, so a head whose lower revisions had not
// all committed would show fewer. A watcher must see every revision once,
// in order.
func TestConcurrentWritersAndReaders(t *testing.T) {
	ctx := context.Background()
	a, uri := openTest(t, Options{})
	b, err := Open(ctx, uri, Options{GCInterval: -1, Logger: quietLogger(), MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stores := []*Store{a, b}
	const writers, perWriter, readers = 8, 15, 4
	total := writers * perWriter

	watchCtx, stopWatch := context.WithTimeout(ctx, 2*time.Minute)
	defer stopWatch()
	watched := make(chan []store.Revision, 1)
	go func() {
		var revs []store.Revision
		defer func() { watched <- revs }()
		for cs, err := range b.Watch(watchCtx, 0) {
			if err != nil {
				return
			}
			revs = append(revs, cs.Revision)
			if len(revs) == total {
				return
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := stores[w%2]
			for i := range perWriter {
				rel := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("w%d_%d", w, i)},
					Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint(w)}}
				if _, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
					return tx.Touch(ctx, rel)
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	var rg sync.WaitGroup
	for r := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			st := stores[r%2]
			for {
				select {
				case <-done:
					return
				default:
				}
				head, err := st.HeadRevision(ctx)
				if err == nil {
					var snap store.Reader
					if snap, err = st.Snapshot(ctx, head); err == nil {
						var got []tuple.Relationship
						got, err = storetest.Collect(snap.ReverseQueryRelationships(ctx,
							tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}, store.QueryOptions{}))
						if err == nil && len(got) != int(head) {
							err = fmt.Errorf("reader at head %d saw %d relationships", head, len(got))
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if h := storetest.MustHead(t, a); h != store.Revision(total) {
		t.Errorf("head = %d, want %d", h, total)
	}
	revs := <-watched
	for i, rev := range revs {
		if rev != store.Revision(i+1) {
			t.Fatalf("watch yielded revision %d at position %d", rev, i)
		}
	}
	if len(revs) != total {
		t.Errorf("watch yielded %d change sets, want %d", len(revs), total)
	}
}

// TestImportDuplicates checks Touch semantics inside one import: the later
// of two relationships with one key wins, and Watch reports touches.
func TestImportDuplicates(t *testing.T) {
	ctx := context.Background()
	st, _ := openTest(t, Options{})
	rels := storetest.MustParse(t, `doc:1#viewer@user:a[c1]`, `doc:1#viewer@user:b`, `doc:1#viewer@user:a[c2:{"n":1}]`)
	rev, n, err := st.Import(ctx, store.WriteMeta{Caller: "importer"}, func(yield func(tuple.Relationship, error) bool) {
		for _, r := range rels {
			if !yield(r, nil) {
				return
			}
		}
	})
	if err != nil || n != 3 {
		t.Fatalf("Import = (%d, %d, %v)", rev, n, err)
	}
	got, err := storetest.Collect(storetest.MustSnapshot(t, st, rev).QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}))
	if want := storetest.Format([]tuple.Relationship{rels[2], rels[1]}); err != nil || storetest.Format(got) != want {
		t.Errorf("after import: %s (%v), want %s", storetest.Format(got), err, want)
	}
	for cs, err := range st.Watch(ctx, rev-1) {
		if err != nil || cs.Revision != rev || cs.Caller != "importer" || len(cs.Changes) != 2 {
			t.Errorf("watch of the import: %+v, %v", cs, err)
		}
		break
	}
}

// TestNotifyWakesOtherProcess checks that a commit through one store wakes
// the watchers of another store on the same database through NOTIFY, and
// that they then read the change.
func TestNotifyWakesOtherProcess(t *testing.T) {
	ctx := context.Background()
	a, uri := openTest(t, Options{})
	b, err := Open(ctx, uri, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	<-b.listening
	wake := b.commits.Chan()
	rev := storetest.MustTouch(t, a, storetest.MustParse(t, "doc:1#viewer@user:a")...)
	// Only the listener closes b's channel (b itself commits nothing, and
	// polling does not close it); the timeout is a guard, not a measurement.
	select {
	case <-wake:
	case <-time.After(30 * time.Second):
		t.Fatal("the other store's watchers were not woken")
	}
	for cs, err := range b.Watch(ctx, rev-1) {
		if err != nil || cs.Revision != rev || len(cs.Changes) != 1 {
			t.Errorf("watch on the other store: %+v, %v", cs, err)
		}
		break
	}
}

// TestGCBatches collects more dead versions than one GC batch holds.
func TestGCBatches(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	st, uri := openTest(t, Options{GCWindow: time.Minute, Now: clock.Now})
	const n = 2*gcBatch + 500
	if _, _, err := st.Import(ctx, store.WriteMeta{}, planData(n)); err != nil {
		t.Fatal(err)
	}
	var deleted int
	storetest.MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		var err error
		deleted, err = tx.DeleteMatching(ctx, tuple.Filter{ResourceType: "doc"}, 0)
		return err
	})
	clock.Advance(time.Hour)
	head := storetest.MustTouch(t, st, storetest.MustParse(t, "doc:x#viewer@user:x")...)
	stats, err := st.GC(ctx, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The horizon is the delete (head is inside the window): its dead
	// versions go, and the changelog row of revision 1.
	if stats.Horizon != head-1 || deleted != n || stats.Removed != deleted+1 {
		t.Errorf("GC = %+v after deleting %d, want horizon %d and %d removed", stats, deleted, head-1, n+1)
	}
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pemba_relationships`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d rows left (%v), want 1", rows, err)
	}
}

// TestInvalidInput checks that what the columns cannot hold fails with
// tuple.ErrInvalid, through Update and Import, and writes nothing.
func TestInvalidInput(t *testing.T) {
	ctx := context.Background()
	st, _ := openTest(t, Options{})
	base := storetest.MustParse(t, "doc:1#viewer@user:a")[0]
	tooLate, tooEarly, badContext := base, base, base
	tooLate.Expiration = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	tooEarly.Expiration = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	badContext.Caveat = &tuple.Caveat{Name: "c", Context: map[string]any{"f": func() {}}}
	for _, tc := range []struct {
		name string
		rel  tuple.Relationship
	}{{"expiration after 2262", tooLate}, {"expiration before 1677", tooEarly}, {"context not JSON", badContext}} {
		_, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error { return tx.Touch(ctx, tc.rel) })
		if !errors.Is(err, tuple.ErrInvalid) {
			t.Errorf("%s: Update: %v, want tuple.ErrInvalid", tc.name, err)
		}
		_, _, err = st.Import(ctx, store.WriteMeta{}, func(yield func(tuple.Relationship, error) bool) {
			if yield(base, nil) {
				yield(tc.rel, nil)
			}
		})
		if !errors.Is(err, tuple.ErrInvalid) {
			t.Errorf("%s: Import: %v, want tuple.ErrInvalid", tc.name, err)
		}
	}
	if h := storetest.MustHead(t, st); h != 0 {
		t.Errorf("head = %d after failed writes, want 0", h)
	}
}

// dropVersion3 removes what schema version 3 added (the audit log), so
// that a test can pose as an older database.
func dropVersion3(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), `DROP TABLE pemba_audit, pemba_audit_anchor;
		ALTER TABLE pemba_revision DROP COLUMN audit_hash`); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateAuditLog: a version 2 database that holds revisions gains an
// audit log that starts after its head, and verifies from there.
func TestMigrateAuditLog(t *testing.T) {
	ctx := context.Background()
	st, uri := openTest(t, Options{})
	storetest.MustTouch(t, st, storetest.MustParse(t, "doc:1#viewer@user:a")[0])
	storetest.MustTouch(t, st, storetest.MustParse(t, "doc:2#viewer@user:a")[0])
	st.Close()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	dropVersion3(t, conn)
	if _, err := conn.Exec(ctx, `UPDATE pemba_schema_version SET version = 2`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, uri); err != nil {
		t.Fatalf("Migrate from version 2: %v", err)
	}
	st, err = Open(ctx, uri, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := store.VerifyAudit(ctx, st)
	if err != nil || rep.Mismatch != nil || rep.Anchor != (store.AuditAnchor{Revision: 2}) || rep.Entries != 0 {
		t.Fatalf("after Migrate: %+v, %v; want an empty log anchored at revision 2", rep, err)
	}
	rev := storetest.MustTouch(t, st, storetest.MustParse(t, "doc:3#viewer@user:a")[0])
	if rep, err := store.VerifyAudit(ctx, st); err != nil || rep.Mismatch != nil || rep.Entries != 1 || rep.Head != rev {
		t.Fatalf("after a write: %+v, %v; want one verified entry", rep, err)
	}
}

// TestSessionsRunWithoutJIT: the store's sessions run with jit off (JIT
// compiled each export page for seconds), unless the URI asks otherwise.
func TestSessionsRunWithoutJIT(t *testing.T) {
	ctx := context.Background()
	uri := newDatabase(t)
	if err := Migrate(ctx, uri); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ uri, want string }{
		{uri, "off"},
		{withParam(uri, "jit", "on"), "on"},
	} {
		st, err := Open(ctx, tc.uri, Options{GCInterval: -1, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		var jit string
		if err := st.pool.QueryRow(ctx, `SHOW jit`).Scan(&jit); err != nil || jit != tc.want {
			t.Errorf("%s: jit = %q (%v), want %q", tc.uri, jit, err, tc.want)
		}
		st.Close()
	}
}

// withParam adds a query parameter to a URI.
func withParam(uri, key, value string) string {
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + key + "=" + value
}

// TestMigrateAnalyzes: after Migrate the one-row tables have statistics
// (the planner then knows they hold a row, not a default guess).
func TestMigrateAnalyzes(t *testing.T) {
	ctx := context.Background()
	uri := newDatabase(t)
	if err := Migrate(ctx, uri); err != nil {
		t.Fatal(err)
	}
	st, err := Open(ctx, uri, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, table := range []string{"pemba_metadata", "pemba_revision", "pemba_horizon"} {
		// reltuples is -1 until a table is first analysed (PostgreSQL 14+).
		var tuples float64
		if err := st.pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE relname = $1`, table).Scan(&tuples); err != nil || tuples < 0 {
			t.Errorf("%s: reltuples %v (%v): never analysed", table, tuples, err)
		}
	}
}
