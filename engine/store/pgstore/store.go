package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/internal/changefeed"
)

// Options configure Open. The zero value is usable.
type Options struct {
	// GCWindow is how long old revisions stay readable. Default 24h.
	GCWindow time.Duration
	// GCInterval is how often the background GC runs. Default 1m; negative
	// disables the background GC (GC can still be called).
	GCInterval time.Duration
	// Now is the clock for commit times, Create's expiration check and the
	// background GC. Default time.Now.
	Now func() time.Time
	// MaxBatchOps limits Touch, Create and Delete calls per transaction.
	// Default store.DefaultMaxBatchOps.
	MaxBatchOps int
	// MaxConns is the size of the connection pool. Default:
	// pool_max_conns in the URI, else DefaultMaxConns.
	MaxConns int32
	// ReadReplicas are URIs of streaming replicas of the database (hot
	// standbys). A snapshot at revision R reads from a replica that has
	// replayed R, else from the primary; see replica.go.
	ReadReplicas []string
	// Logger receives GC reports and listener errors. Default slog.Default().
	Logger *slog.Logger
	// CommitOutcomeTimeout bounds how long a write whose COMMIT got no
	// answer (the connection failed) keeps asking the database whether it
	// committed before failing with store.ErrCommitUnknown. Default
	// DefaultCommitOutcomeTimeout.
	CommitOutcomeTimeout time.Duration
	// AuditRetention is how long audit entries are kept, independent of
	// GCWindow: each GC run prunes entries committed before now minus
	// AuditRetention (PruneAudit). Zero keeps them forever.
	AuditRetention time.Duration
}

func (o Options) withDefaults() Options {
	if o.GCWindow <= 0 {
		o.GCWindow = 24 * time.Hour
	}
	if o.GCInterval == 0 {
		o.GCInterval = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBatchOps <= 0 {
		o.MaxBatchOps = store.DefaultMaxBatchOps
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CommitOutcomeTimeout <= 0 {
		o.CommitOutcomeTimeout = DefaultCommitOutcomeTimeout
	}
	return o
}

// pollInterval bounds how long a watcher waits when no notification comes:
// NOTIFY only wakes watchers early, it never decides what they read.
const pollInterval = time.Second

// notifyChannel is the LISTEN/NOTIFY channel that commits signal on.
const notifyChannel = "pemba_changes"

// The one-row reads: the store's identity, the GC horizon and the head.
const (
	selectStoreID = `SELECT store_id FROM pemba_metadata`
	selectHorizon = `SELECT horizon FROM pemba_horizon`
	selectHead    = `SELECT head FROM pemba_revision`
	listenSQL     = `LISTEN ` + notifyChannel
)

// Store is a relationship store in a PostgreSQL database. It implements
// store.Store, store.GarbageCollector and store.BulkLoader, and is safe
// for concurrent use, also by several processes sharing one database.
type Store struct {
	gcCount  store.GCCounter // GC runs, for metrics
	pool     *pgxpool.Pool
	connCfg  *pgx.ConnConfig // for connections outside the pool (commit resolution)
	replicas []*replica
	opts     Options
	id       string

	// head caches the newest revision known committed: a lower bound of
	// the database's, refreshed when a caller asks for more.
	head atomic.Uint64
	// horizonSeen caches the GC horizon last seen: a lower bound of the
	// database's, raised by GC and by every query (which reads it).
	horizonSeen atomic.Uint64

	gcMu sync.Mutex // one GC at a time in this process
	// writer is a one-slot semaphore: one write transaction at a time in
	// this process (see Update). A channel, so waiting honours contexts.
	writer chan struct{}

	// commits wakes watchers on a local commit or a notification from
	// another process.
	commits changefeed.Signal

	// listening is closed once the listener's first LISTEN succeeded
	// (tests wait for it before relying on notifications).
	listening     chan struct{}
	listeningOnce sync.Once

	closed   atomic.Bool
	closeMu  sync.Mutex
	closedCh chan struct{}  // closed by Close
	cancel   func()         // stops the background goroutines
	bg       sync.WaitGroup // background goroutines

	hooks *testHooks // fault injection in tests; nil otherwise
}

var (
	_ store.Store            = (*Store)(nil)
	_ store.GarbageCollector = (*Store)(nil)
	_ store.BulkLoader       = (*Store)(nil)
)

// Open connects to the database named by uri (a PostgreSQL URL or
// key=value string) and returns the store in it. It refuses a database
// that Migrate has not brought to this binary's SchemaVersion
// (ErrNotMigrated) or that a newer Pemba migrated (ErrSchemaTooNew).
func Open(ctx context.Context, uri string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	cfg, err := pgxpool.ParseConfig(uri)
	if err != nil {
		return nil, fmt.Errorf("pgstore: parse datastore uri: %w", err)
	}
	cfg.MaxConns = poolSize(uri, cfg.MaxConns, opts.MaxConns)
	sessionDefaults(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	s := &Store{pool: pool, connCfg: cfg.ConnConfig.Copy(), opts: opts, closedCh: make(chan struct{}), listening: make(chan struct{}), writer: make(chan struct{}, 1)}
	if err := s.load(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.openReplicas(ctx, opts.ReadReplicas); err != nil {
		s.closeReplicas()
		pool.Close()
		return nil, err
	}
	bgCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.bg.Add(1)
	go s.listen(bgCtx, cfg.ConnConfig.Copy())
	if opts.GCInterval > 0 {
		s.bg.Add(1)
		go s.gcLoop(bgCtx)
	}
	return s, nil
}

// sessionDefaults sets the session parameters Pemba's queries are planned
// for, unless the datastore URI sets them: jit off. Pemba's queries are
// index range scans of a few rows; PostgreSQL's JIT fires on estimated
// cost, and a page of a relationship export once paid about 2 s of JIT
// compilation for a 10 ms scan (1.08M relationships exported in 9 minutes
// with JIT, 5.9 s without).
func sessionDefaults(cfg *pgx.ConnConfig) {
	if _, ok := cfg.RuntimeParams["jit"]; !ok {
		cfg.RuntimeParams["jit"] = "off"
	}
}

// load checks the schema version and reads the store's identity and head.
func (s *Store) load(ctx context.Context) error {
	if err := checkVersion(ctx, s.pool); err != nil {
		return err
	}
	if err := s.pool.QueryRow(ctx, selectStoreID).Scan(&s.id); err != nil {
		return fmt.Errorf("pgstore: read store id: %w", err)
	}
	var horizon int64
	if err := s.pool.QueryRow(ctx, selectHorizon).Scan(&horizon); err != nil {
		return fmt.Errorf("pgstore: read gc horizon: %w", err)
	}
	s.advanceHorizon(store.Revision(horizon))
	_, err := s.refreshHead(ctx)
	return err
}

// refreshHead reads the committed head from the database and caches it.
func (s *Store) refreshHead(ctx context.Context) (store.Revision, error) {
	var head int64
	if err := s.pool.QueryRow(ctx, selectHead).Scan(&head); err != nil {
		return 0, s.wrap(ctx, "read head revision", err)
	}
	s.advanceHead(store.Revision(head))
	return store.Revision(head), nil
}

// advanceHead raises the cached head to rev (never lowers it).
func (s *Store) advanceHead(rev store.Revision) { advance(&s.head, rev) }

// wrap prefixes err, turning the errors of a closed pool into
// store.ErrClosed and connection failures into store.ErrUnavailable (with
// the cause in the message only, so that a timeout inside pgx is not
// mistaken for the caller's deadline). Errors of the caller's context
// stay as they are.
func (s *Store) wrap(ctx context.Context, what string, err error) error {
	ctxDone := ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !pgconn.Timeout(err)
	switch {
	case s.closed.Load() && !ctxDone:
		return fmt.Errorf("pgstore: %s: %w", what, store.ErrClosed)
	case !ctxDone && isConnectionError(err):
		return fmt.Errorf("pgstore: %s: %w: %v", what, store.ErrUnavailable, err)
	}
	return fmt.Errorf("pgstore: %s: %w", what, err)
}

// Close stops the background goroutines, waits for running operations to
// return their connections and closes the pool. Watch loops end with
// store.ErrClosed. A second Close returns store.ErrClosed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Load() {
		return store.ErrClosed
	}
	s.closed.Store(true)
	close(s.closedCh)
	s.cancel()
	s.bg.Wait()
	s.closeReplicas()
	s.pool.Close()
	return nil
}

// lockWriter waits for this process's write slot.
func (s *Store) lockWriter(ctx context.Context) error {
	select {
	case s.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closedCh:
		return store.ErrClosed
	}
}

func (s *Store) unlockWriter() { <-s.writer }

// checkOpen fails with store.ErrClosed once Close has begun.
func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// Kind returns "postgres".
func (s *Store) Kind() string { return "postgres" }

// ID returns the random ID chosen when the database was migrated.
func (s *Store) ID() string { return s.id }

// HeadRevision returns the newest committed revision. Revisions commit in
// order (see doc.go), so every lower revision has committed too.
func (s *Store) HeadRevision(ctx context.Context) (store.Revision, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	return s.refreshHead(ctx)
}

// Snapshot returns a reader at rev. It asks the database only when rev is
// above the cached head or might be below the horizon.
func (s *Store) Snapshot(ctx context.Context, rev store.Revision) (store.Reader, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if rev > store.Revision(s.head.Load()) {
		head, err := s.refreshHead(ctx)
		if err != nil {
			return nil, err
		}
		if rev > head {
			return nil, &store.FutureError{Requested: rev, Head: head}
		}
	}
	// Every query checks the horizon in its own statement, so the cached
	// horizon (which may lag another process's GC) only fails early.
	if hz := store.Revision(s.horizonSeen.Load()); rev < hz {
		return nil, &store.CompactedError{Requested: rev, Horizon: hz}
	}
	q, onReplica := s.readPool(ctx, rev)
	return &reader{s: s, q: q, rev: rev, onReplica: onReplica}, nil
}

// advanceHorizon raises the cached horizon to rev (never lowers it).
func (s *Store) advanceHorizon(rev store.Revision) { advance(&s.horizonSeen, rev) }

// wake wakes the watchers waiting for a commit.
func (s *Store) wake() { s.commits.Broadcast() }

// listen holds a connection outside the pool that LISTENs for commits of
// other processes and wakes this process's watchers. When the connection
// fails it reconnects after pollInterval; watchers poll meanwhile.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	defer s.bg.Done()
	delay := pollInterval
	for ctx.Err() == nil {
		start := time.Now()
		err := s.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > maxListenDelay {
			delay = pollInterval // it ran for a while: a fresh failure
		}
		s.opts.Logger.Warn("pgstore: notification listener failed; watchers poll until it reconnects", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, maxListenDelay)
	}
}

// maxListenDelay caps the listener's reconnection backoff.
const maxListenDelay = 30 * time.Second

func (s *Store) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, listenSQL); err != nil {
		return err
	}
	// Commits made while no listener was connected woke nobody.
	s.wake()
	s.listeningOnce.Do(func() { close(s.listening) })
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		s.wake()
	}
}

// MaxBatchOps reports the per-transaction limit (store.BatchLimiter).
func (s *Store) MaxBatchOps() int { return s.opts.MaxBatchOps }

// GCTotals counts the GC runs since Open (store.GCReporter).
func (s *Store) GCTotals() store.GCTotals { return s.gcCount.GCTotals() }

// DefaultMaxConns is the pool size when neither Options.MaxConns nor
// pool_max_conns in the URI gives one: at least 16, and 4 per CPU on
// larger hosts. Checks hold a connection for one query at a time, but
// under many concurrent requests a small pool queues them: with 64 gRPC
// clients on 2 cores, pgx's default of 4 gave a p99 twice as long as 16
// (docs/benchmarks.md).
func DefaultMaxConns() int32 { return int32(max(16, 4*runtime.NumCPU())) }

// poolSize is the pool size for uri: the option when set, else the URI's
// pool_max_conns (already parsed into fromURI), else DefaultMaxConns.
func poolSize(uri string, fromURI, opt int32) int32 {
	switch {
	case opt > 0:
		return opt
	case strings.Contains(uri, "pool_max_conns"):
		return fromURI
	}
	return DefaultMaxConns()
}
