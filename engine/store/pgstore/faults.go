package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pemba-authz/pemba/engine/store"
)

// isConnectionError reports whether err is a failure of the connection to
// the database rather than of a statement: the server unreachable,
// shutting down or starting up, or the connection broken. Such errors are
// store.ErrUnavailable; the caller's context errors are not (check them
// first).
func isConnectionError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return connectionSQLState(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	// SafeToRetry: pgx failed before sending anything (a closed or
	// broken connection). Timeout: a network timeout (the caller's
	// deadline is excluded by the caller).
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ENOENT)
}

// connectionSQLState reports whether a server error code means the
// session, not the statement, failed.
func connectionSQLState(code string) bool {
	switch code {
	case "57P01", // admin_shutdown: terminated, or the server stops (fast)
		"57P02", // crash_shutdown: another backend crashed
		"57P03", // cannot_connect_now: starting up or shutting down
		"57P05", // idle_session_timeout
		"53300": // too_many_connections
		return true
	}
	return len(code) == 5 && code[:2] == "08" // connection_exception
}

// txnID identifies a write transaction on the server, so that a commit
// whose answer was lost can be looked up: its transaction id (xid8, as
// text) and the process id of its backend, which come back from the
// revision counter's UPDATE (it assigns the transaction id anyway), and
// the revision and audit entry it writes, which tell it from a later
// transaction given the same id (commitStatusOnce).
type txnID struct {
	xid   string
	pid   uint32
	rev   store.Revision
	audit store.AuditHash // known once the commit is queued
}

// commitStatus is what the server says became of a transaction.
type commitStatus int

const (
	statusCommitted commitStatus = iota + 1
	statusAborted
)

// DefaultCommitOutcomeTimeout is how long Update keeps asking whether a
// commit whose answer was lost happened, when Options.CommitOutcomeTimeout
// is zero.
const DefaultCommitOutcomeTimeout = 5 * time.Second

// resolveCommit asks the server, on fresh connections made from cfg,
// what became of transaction id: committed or
// aborted (a transaction the server crashed in counts as aborted, and so
// does one the server never saw: see commitStatusOnce). While the answer is "in progress"
// it terminates the transaction's backend, which can only be waiting for
// a client that is gone or finishing the commit it was sent, and asks
// again. It keeps trying, with backoff, for bound or until ctx ends, and
// then fails with store.ErrCommitUnknown.
func resolveCommit(ctx context.Context, cfg *pgx.ConnConfig, id txnID, bound time.Duration) (commitStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	delay := 20 * time.Millisecond
	var last error
	for {
		st, err := commitStatusOnce(ctx, cfg, id)
		if err == nil {
			return st, nil
		}
		last = err
		if errors.Is(err, errStatusLost) {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("%w: transaction %s: status unknown after %v: %v", store.ErrCommitUnknown, id.xid, bound, last)
		case <-t.C:
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
	return 0, fmt.Errorf("%w: transaction %s: %v", store.ErrCommitUnknown, id.xid, last)
}

// errStatusLost: the server no longer knows the transaction (older than
// its commit log); asking again cannot help.
var errStatusLost = errors.New("pgstore: transaction status no longer kept by the server")

// errInProgress: the transaction has not finished yet.
var errInProgress = errors.New("pgstore: transaction still in progress")

// xactStatusSQL asks what became of transaction $1 (an xid8 as text),
// and whether revision $2 is the one it wrote: the revision's audit entry
// has its hash $3 (which covers the entry's time, caller and changes and
// the previous entry's hash), or the entry has been pruned. terminateSQL
// ends backend $1 if it still runs transaction $2.
const (
	xactStatusSQL = `SELECT pg_xact_status($1::text::xid8),
	EXISTS (SELECT 1 FROM pemba_audit WHERE revision = $2 AND hash = $3)
		OR (SELECT revision FROM pemba_audit_anchor) >= $2`
	terminateSQL = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE pid = $1 AND backend_xid = $2::text::xid8::xid`
	// syncBarrier commits a transaction that writes WAL (a transaction
	// that writes none, even with an id, does not wait for standbys), so
	// its commit waits for synchronous standbys as configured. It
	// rewrites the one-row metadata table, which nothing else writes.
	syncBarrier = `UPDATE pemba_metadata SET store_id = store_id`
)

// commitStatusOnce asks once, on a new connection (the pool's idle
// connections may be as dead as the one that failed).
//
// After a failover (or a crash that lost the end of the WAL) the server
// may not know the transaction: its id is then "in the future", and the
// server gives it out again, usually to the next write, which then takes
// the same revision too. Neither means that the lost transaction
// committed on this server, whose WAL would otherwise hold its commit
// record (and so its id), so both count as aborted: a committed id must
// also have written the transaction's own audit entry.
func commitStatusOnce(ctx context.Context, cfg *pgx.ConnConfig, id txnID) (commitStatus, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var (
		st   *string
		ours bool
	)
	if err := conn.QueryRow(ctx, xactStatusSQL, id.xid, int64(id.rev), id.audit[:]).Scan(&st, &ours); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "22023" { // invalid_parameter_value: "transaction ID ... is in the future"
			return statusAborted, nil // never assigned here
		}
		return 0, err
	}
	switch {
	case st == nil:
		return 0, errStatusLost
	case *st == "committed" && ours:
		// Terminating a backend that waits for a synchronous standby
		// (below, on an earlier try), or its server's crash restart,
		// commits its transaction without the standby. A commit of this
		// session waits for the standby like any other, and its WAL
		// follows the transaction's: once it returns, the transaction is
		// as durable as an acknowledged one.
		if _, err := conn.Exec(ctx, syncBarrier); err != nil {
			return 0, fmt.Errorf("wait until the commit is replicated: %w", err)
		}
		return statusCommitted, nil
	case *st == "committed", *st == "aborted": // committed: the id was given out again
		return statusAborted, nil
	}
	// In progress. Only the backend with this pid running this very
	// transaction is terminated, so a reused pid is safe.
	if _, err := conn.Exec(ctx, terminateSQL, int64(id.pid), id.xid); err != nil {
		return 0, fmt.Errorf("%w (terminate its backend: %v)", errInProgress, err)
	}
	return 0, errInProgress
}

// commitFailed decides what a failed commit of revision rev means. Before
// anything was sent, or on a statement error, nothing committed. When the
// connection failed or the context ended with COMMIT possibly sent, it
// asks the server (resolveCommit): committed returns the revision as a
// success, aborted returns store.ErrUnavailable (nothing written), no
// answer store.ErrCommitUnknown.
func (s *Store) commitFailed(ctx context.Context, what string, rev store.Revision, id txnID, err error) (store.Revision, error) {
	var pgErr *pgconn.PgError
	definite := pgconn.SafeToRetry(err) || (errors.As(err, &pgErr) && !connectionSQLState(pgErr.Code))
	if definite || !(isConnectionError(err) || ctx.Err() != nil) {
		return 0, s.wrap(ctx, what, err)
	}
	rctx := ctx
	if ctx.Err() != nil {
		// The caller gave up, but the answer still decides whether to
		// report success; look it up within the bound regardless.
		rctx = context.WithoutCancel(ctx)
	}
	st, rerr := resolveCommit(rctx, s.connCfg, id, s.opts.CommitOutcomeTimeout)
	switch {
	case rerr != nil:
		s.opts.Logger.Error("pgstore: commit outcome unknown", "revision", uint64(rev), "xid", id.xid, "err", err, "resolve_err", rerr)
		return 0, fmt.Errorf("pgstore: %s: %w (commit failed: %v)", what, rerr, err)
	case st == statusCommitted:
		s.opts.Logger.Warn("pgstore: commit answer lost, but the transaction committed", "revision", uint64(rev), "xid", id.xid, "err", err)
		return rev, nil
	}
	if ctx.Err() != nil {
		return 0, s.wrap(ctx, what, err)
	}
	return 0, fmt.Errorf("pgstore: %s: %w: the transaction rolled back: %v", what, store.ErrUnavailable, err)
}

// testHooks inject faults in tests; nil in production.
type testHooks struct {
	// beforeCommit runs in Update after fn, before the writes and COMMIT
	// are sent, with the transaction's id.
	beforeCommit func(ctx context.Context, id txnID)
	// afterCommit sees the commit's error (of Update or Import) and may
	// replace it.
	afterCommit func(err error) error
}
