package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestIsConnectionError: connection failures are told apart from
// statement errors.
func TestIsConnectionError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"starting up", fmt.Errorf("x: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"conn closed", pgconn.ErrConnClosed, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"query canceled", &pgconn.PgError{Code: "57014"}, false},
		{"plain", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isConnectionError(tt.err); got != tt.want {
				t.Errorf("isConnectionError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// closedPortConfig is a connection config for a TCP port nothing listens
// on.
func closedPortConfig(t *testing.T) *pgx.ConnConfig {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=1", port))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// openTxn begins a transaction on a new connection and returns its id;
// the transaction writes an audit entry of revision rev with hash h
// unless rev is 0; end finishes it ("COMMIT", "ROLLBACK") or leaves it
// open ("").
func openTxn(t *testing.T, uri, end string, rev store.Revision, h store.AuditHash) txnID {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var id txnID
	if err := conn.QueryRow(ctx, `SELECT pg_current_xact_id()::text, pg_backend_pid()`).Scan(&id.xid, &id.pid); err != nil {
		t.Fatal(err)
	}
	if rev != 0 {
		if _, err := conn.Exec(ctx, insertAudit, int64(rev), int64(0), "", []byte{0}, h[:]); err != nil {
			t.Fatal(err)
		}
	}
	if end != "" {
		if _, err := conn.Exec(ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// TestResolveCommit asks the real server about transactions in each
// state. A transaction left open is one whose client vanished: its
// backend is terminated and it resolves as aborted. After a failover the
// server may not know the transaction's id (in the future) or may have
// given it to another transaction: neither is the write's commit.
func TestResolveCommit(t *testing.T) {
	_, uri := openTest(t, Options{})
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		end     string
		cfg     *pgx.ConnConfig
		writes  bool // the transaction writes the revision's audit entry, as Update's does
		xidPlus int  // ask about this many ids after the transaction's (an id the server has not given out)
		want    commitStatus
		err     error
	}{
		{"committed", "COMMIT", cfg, true, 0, statusCommitted, nil},
		{"committed, but not the revision's transaction (its id given out again)", "COMMIT", cfg, false, 0, statusAborted, nil},
		{"rolled back", "ROLLBACK", cfg, true, 0, statusAborted, nil},
		{"in progress, client gone", "", cfg, true, 0, statusAborted, nil},
		{"unknown to the server (in the future)", "COMMIT", cfg, true, 1_000_000, statusAborted, nil},
		{"database unreachable", "COMMIT", closedPortConfig(t), true, 0, 0, store.ErrCommitUnknown},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, h := store.Revision(1000+i), store.AuditHash{byte(i), 1}
			id := openTxn(t, uri, tt.end, rev, h)
			id.rev, id.audit = rev, h
			if !tt.writes {
				// The transaction with this id wrote another entry
				// of the revision: a later write given the same id.
				id.audit[1] = 2
			}
			if tt.xidPlus != 0 {
				x, err := strconv.ParseUint(id.xid, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				id.xid = strconv.FormatUint(x+uint64(tt.xidPlus), 10)
			}
			bound := 30 * time.Second
			if tt.err != nil {
				bound = 300 * time.Millisecond
			}
			got, err := resolveCommit(context.Background(), tt.cfg, id, bound)
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("resolveCommit = %v, %v; want %v, %v", got, err, tt.want, tt.err)
			}
			if errors.Is(err, store.ErrUnavailable) {
				t.Errorf("an unknown outcome must not claim that nothing was written: %v", err)
			}
		})
	}
}

// touchDoc writes doc:<id>#viewer@user:anne.
func touchDoc(ctx context.Context, st *Store, id string) (store.Revision, error) {
	r, err := tuple.Parse("doc:" + id + "#viewer@user:anne")
	if err != nil {
		return 0, err
	}
	return st.Update(ctx, store.WriteMeta{Caller: "test"}, func(ctx context.Context, tx store.Tx) error {
		return tx.Touch(ctx, r)
	})
}

// countDocs counts the docs visible at the head revision.
func countDocs(t *testing.T, st *Store) int {
	t.Helper()
	ctx := context.Background()
	head, err := st.HeadRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := st.Snapshot(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range rd.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// terminate ends the backend pid and waits until it has exited.
func terminate(t *testing.T, uri string, pid uint32) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1, 60000)`, int64(pid)).Scan(&ok); err != nil || !ok {
		t.Errorf("terminate backend %d: %v, %v", pid, ok, err)
	}
}

// TestCommitFaults drives Update through a lost commit answer: a commit
// that happened is reported as a success, one that did not as
// store.ErrUnavailable, and one that cannot be looked up as
// store.ErrCommitUnknown.
func TestCommitFaults(t *testing.T) {
	lost := func(err error) error {
		if err != nil {
			return err
		}
		return &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	tests := []struct {
		name    string
		hooks   func(t *testing.T, uri string) *testHooks
		cfg     func(t *testing.T) *pgx.ConnConfig // replaces the resolution's
		err     error
		written bool
	}{
		{"answer lost after the commit", func(*testing.T, string) *testHooks {
			return &testHooks{afterCommit: lost}
		}, nil, nil, true},
		{"backend terminated before the commit", func(t *testing.T, uri string) *testHooks {
			return &testHooks{beforeCommit: func(_ context.Context, id txnID) { terminate(t, uri, id.pid) }}
		}, nil, store.ErrUnavailable, false},
		{"database unreachable after the commit", func(*testing.T, string) *testHooks {
			return &testHooks{afterCommit: lost}
		}, closedPortConfig, store.ErrCommitUnknown, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, uri := openTest(t, Options{CommitOutcomeTimeout: 300 * time.Millisecond})
			before, err := touchDoc(ctx, st, "first")
			if err != nil {
				t.Fatal(err)
			}
			st.hooks = tt.hooks(t, uri)
			if tt.cfg != nil {
				st.connCfg = tt.cfg(t)
			}
			rev, err := touchDoc(ctx, st, "second")
			st.hooks = nil
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("Update = %d, %v; want error %v", rev, err, tt.err)
			}
			if err == nil && rev != before+1 {
				t.Errorf("Update = revision %d, want %d", rev, before+1)
			}
			if errors.Is(err, store.ErrCommitUnknown) && errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%v claims both outcomes", err)
			}
			want := 1
			if tt.written {
				want = 2
			}
			if n := countDocs(t, st); n != want {
				t.Errorf("%d docs visible, want %d", n, want)
			}
			// The store goes on writing, at the next free revision.
			next, err := touchDoc(ctx, st, "third")
			if err != nil {
				t.Fatalf("write after the fault: %v", err)
			}
			if wantRev := before + store.Revision(want); next != wantRev {
				t.Errorf("next write at revision %d, want %d", next, wantRev)
			}
			// The audit log has exactly one entry per committed write: the
			// fault left no write without its entry, nor an entry without
			// its write.
			rep, err := store.VerifyAudit(ctx, st)
			if err != nil || rep.Mismatch != nil || rep.Entries != want+1 || rep.Head != next {
				t.Errorf("audit after the fault: %+v (mismatch %+v), %v; want %d verified entries up to revision %d", rep, rep.Mismatch, err, want+1, next)
			}
		})
	}
}

// TestImportCommitAnswerLost: an Import whose commit answer is lost but
// which committed reports its revision and count.
func TestImportCommitAnswerLost(t *testing.T) {
	ctx := context.Background()
	st, _ := openTest(t, Options{})
	st.hooks = &testHooks{afterCommit: func(err error) error {
		if err != nil {
			return err
		}
		return io.ErrUnexpectedEOF
	}}
	r, err := tuple.Parse("doc:imported#viewer@user:bob")
	if err != nil {
		t.Fatal(err)
	}
	rev, n, err := st.Import(ctx, store.WriteMeta{}, func(yield func(tuple.Relationship, error) bool) { yield(r, nil) })
	st.hooks = nil
	if err != nil || rev != 1 || n != 1 {
		t.Fatalf("Import = %d, %d, %v; want 1, 1, nil", rev, n, err)
	}
	if got := countDocs(t, st); got != 1 {
		t.Errorf("%d docs visible, want 1", got)
	}
}

// backendsOf lists the backends connected to the database name, other
// than the caller's.
const backendsOf = `SELECT pg_terminate_backend(pid, 60000) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()`

// TestTerminatedBackends kills every connection of the store, then runs
// each kind of operation until it succeeds: every failure on the way
// must be store.ErrUnavailable, and the pool must recover.
func TestTerminatedBackends(t *testing.T) {
	ctx := context.Background()
	uri, name := newNamedDatabase(t)
	if err := Migrate(ctx, uri); err != nil {
		t.Fatal(err)
	}
	const maxConns = 4
	st, err := Open(ctx, uri, Options{GCInterval: -1, Logger: quietLogger(), MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := touchDoc(ctx, st, "0"); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, serverURI(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)

	attempts, written, failures := 0, 0, 0
	ops := []struct {
		name string
		run  func() error
	}{
		{"head", func() error { _, err := st.HeadRevision(ctx); return err }},
		{"query", func() error {
			rd, err := st.Snapshot(ctx, 1)
			if err != nil {
				return err
			}
			for _, err := range rd.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}) {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"point read", func() error {
			rd, err := st.Snapshot(ctx, 1)
			if err != nil {
				return err
			}
			r, err := tuple.Parse("doc:0#viewer@user:bob")
			if err != nil {
				return err
			}
			_, _, err = rd.(store.PointReader).ReadRelationship(ctx, r.Key(), time.Time{})
			return err
		}},
		{"append", func() error {
			rd, err := st.Snapshot(ctx, 1)
			if err != nil {
				return err
			}
			_, err = rd.(store.BatchReader).AppendRelationships(ctx, nil, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{})
			return err
		}},
		{"read schema", func() error {
			rd, err := st.Snapshot(ctx, 1)
			if err != nil {
				return err
			}
			_, _, err = rd.ReadSchema(ctx)
			return err
		}},
		{"update", func() error {
			attempts++
			_, err := touchDoc(ctx, st, fmt.Sprint("w", attempts))
			if err == nil {
				written++
			}
			return err
		}},
		{"import", func() error {
			r, err := tuple.Parse("doc:imported#viewer@user:bob")
			if err != nil {
				return err
			}
			_, _, err = st.Import(ctx, store.WriteMeta{}, func(yield func(tuple.Relationship, error) bool) { yield(r, nil) })
			return err
		}},
		{"gc", func() error { _, err := st.GC(ctx, time.Now()); return err }},
		{"watch", func() error { _, err := st.readChanges(ctx, 0, 10); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			// Fill the pool, so that dead connections wait in it.
			conns := make([]interface{ Release() }, 0, maxConns)
			for range maxConns {
				c, err := st.pool.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			for _, c := range conns {
				c.Release()
			}
			if _, err := admin.Exec(ctx, backendsOf, name); err != nil {
				t.Fatal(err)
			}
			tries := 0
			for {
				err := op.run()
				if err == nil {
					break
				}
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("after the backends were terminated: %v, want nil or store.ErrUnavailable", err)
				}
				failures++
				if tries++; tries > maxConns+1 {
					t.Fatalf("still failing after %d tries: %v", tries, err)
				}
			}
		})
	}
	// doc:0, the successful update and the import; no failed attempt.
	if n := countDocs(t, st); n != 1+written+1 {
		t.Errorf("%d docs, want %d (every write that reported success, and nothing else)", n, 1+written+1)
	}
	if failures == 0 {
		t.Error("no operation failed: the test did not exercise dead connections")
	}
}
