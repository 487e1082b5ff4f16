package pebblestore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/internal/changefeed"
)

// formatVersion is the key and value format this binary writes and reads.
// Bump it, with a migration, on any incompatible change to keys.go or
// value.go.
//
//	1  the first format
//	2  adds the expiry index ('x' keys); Open upgrades a format 1 store
//	3  the same keys under Pemba's own comparer (comparer.go), whose Split
//	   lets Pebble keep bloom filters over tuple keys; Open copies a format
//	   1 or 2 directory into a new one (upgrade.go)
//	4  adds the audit log ('a' keys and the audit anchor, audit.go); Open
//	   starts the log of an older store after its head revision. Format 3
//	   binaries refuse it, so that none writes a revision without its
//	   audit entry.
const formatVersion = 4

// FormatVersion is the on-disk format this package writes (see
// formatVersion), for `pemba version`.
const FormatVersion = formatVersion

// pebbleFormat pins Pebble's own on-disk format, so that upgrading the
// Pebble module never silently upgrades a data directory.
const pebbleFormat = pebble.FormatColumnarBlocks

// memTableSize is larger than Pebble's 4 MiB default, so that import
// batches go through the memtable instead of becoming flushable batches
// that must be sorted first.
const memTableSize = 32 << 20

// DefaultCacheSize is the block cache of a store opened without
// Options.CacheSize: small data sets fit whole, and on large ones it holds
// the index and filter blocks and the hot data blocks.
const DefaultCacheSize = 64 << 20

// bloomBitsPerKey sizes the bloom filters over tuple keys: 10 bits per key
// give about 1% false positives.
const bloomBitsPerKey = 10

// indexBlockSize is the size of an sstable's index blocks: large enough
// that a table of the sizes this store writes (up to about 30 MiB) has a
// single-level index. On a store larger than the CPU's caches a seek is
// bound by cache misses, and a second level costs one more block-cache
// lookup and search per seek: with 256 KiB, the 8.8 MB tables of a
// compacted deep-chain medium store had two-level indexes, and checks took
// 7% more CPU (docs/benchmarks.md); with 4 KiB ones, 15% more.
const indexBlockSize = 1 << 20

// Options configure Open. The zero value is usable.
type Options struct {
	// GCWindow is how long old revisions stay readable. Default 24h.
	GCWindow time.Duration
	// GCInterval is how often the background GC runs. Default 1m; negative
	// disables the background GC (GC can still be called).
	GCInterval time.Duration
	// Now is the clock for commit times and the background GC. Default time.Now.
	Now func() time.Time
	// MaxBatchOps limits Touch, Create and Delete calls per transaction.
	// Default store.DefaultMaxBatchOps.
	MaxBatchOps int
	// NoSync commits without waiting for fsync. Much faster writes, but a
	// machine crash (not a process crash) can lose the latest acknowledged
	// transactions; the store stays consistent (a prefix of the history).
	NoSync bool
	// FS is the filesystem; default the operating system's. Tests use vfs.NewMem().
	FS vfs.FS
	// CacheSize is the block cache size in bytes. Default DefaultCacheSize. The
	// cache Pebble gets is 64 MiB larger, for the memtables (32 MiB
	// each) that Pebble accounts inside it.
	CacheSize int64
	// Logger receives GC reports and Pebble's messages. Default slog.Default().
	Logger *slog.Logger
	// AuditRetention is how long audit entries are kept, independent of
	// GCWindow: each GC run prunes entries committed before now minus
	// AuditRetention (PruneAudit). Zero keeps them forever.
	AuditRetention time.Duration

	// importBatch overrides importBatchBytes, so that tests (crashfs_test.go)
	// get imports of many batches from few relationships.
	importBatch int
	// noAutoCompactions turns Pebble's background compactions off, so
	// that tests (compact_test.go) see the levels their flushes made.
	noAutoCompactions bool
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
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.importBatch <= 0 {
		o.importBatch = importBatchBytes
	}
	return o
}

// Store is a relationship store in one Pebble database. It implements
// store.Store, store.GarbageCollector and store.BulkLoader. It is safe for
// concurrent use.
type Store struct {
	gcCount store.GCCounter // GC runs, for metrics
	db      *pebble.DB
	// keyBufs holds the key buffers of batch queries (takeKeyBuf).
	keyBufs sync.Pool
	dir     string
	opts    Options
	id      string

	head    atomic.Uint64 // newest committed (durable, published) revision
	horizon atomic.Uint64 // oldest readable revision

	// wmu serialises writers (Update, Import) and guards lastCommit.
	wmu        sync.Mutex
	lastCommit time.Time       // commit times never go backwards
	auditHead  store.AuditHash // hash of the newest audit entry, guarded by wmu
	// applied is the newest revision written to Pebble, perhaps not yet
	// fsynced: writers build on it; readers see only head. Written
	// under wmu.
	applied atomic.Uint64
	// syncMu makes one writer fsync the write-ahead log on behalf of all
	// that wait (group commit); durable is the newest revision it covers.
	syncMu  sync.Mutex
	durable atomic.Uint64

	gcMu sync.Mutex // one GC at a time

	// failed is set when a write to Pebble failed fatally (fault.go):
	// writes fail from then on, reads go on.
	failed atomic.Pointer[error]

	iters iterPool

	// stats keeps the planner's counts (store.StatsKeeper).
	stats store.StatsCounter

	// commits wakes watchers on every commit.
	commits changefeed.Signal

	// active counts the operations using the Pebble database and closed
	// is set when Close begins; Close then waits on lifeCond (under
	// lifeMu) until active is 0. They are atomics, not fields under
	// lifeMu, because every query takes and releases an operation: a
	// mutex there was the second contention point of concurrent checks
	// after the iterator pool's (docs/benchmarks.md, issue #17).
	active atomic.Int64
	_      [56]byte // closed, read by every query, apart from active's writes
	closed atomic.Bool
	_      [63]byte
	// readers counts the queries using the database, like active, spread
	// over padded counters (readerShard): with one counter, two cores
	// checking at once took turns owning its cache line on every read,
	// and the line of closed with it (docs/benchmarks.md, issue #17).
	readers []shardCount
	// shardHints hands each P its own shard index (see readerShard).
	shardHints sync.Pool
	nextShard  atomic.Int64
	lifeMu     sync.Mutex
	lifeCond   *sync.Cond
	closedCh   chan struct{} // closed by Close
	gcDone     chan struct{} // closed when the background GC goroutine exits
}

var (
	_ store.Store            = (*Store)(nil)
	_ store.GarbageCollector = (*Store)(nil)
	_ store.BulkLoader       = (*Store)(nil)
	_ store.StatsKeeper      = (*Store)(nil)
	_ store.StatsReader      = (*reader)(nil)
	_ store.Failer           = (*Store)(nil)
)

// Open opens the store in dir, creating it if needed. It refuses a
// directory written in a newer format (ErrFormatTooNew) and one holding a
// Pebble database that is not a Pemba store (ErrNotPemba). An import that a
// crash interrupted is rolled back here.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := upgradeComparer(dir, opts); err != nil {
		return nil, lockedError(dir, err)
	}
	popts := pebbleOptions(opts, comparer)
	db, err := pebble.Open(dir, popts)
	popts.Cache.Unref()
	if err != nil {
		return nil, lockedError(dir, fmt.Errorf("pebblestore: open %s: %w", dir, err))
	}
	if err := removeCheckpoints(dir, opts); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s := &Store{
		db:       db,
		dir:      dir,
		opts:     opts,
		closedCh: make(chan struct{}),
		gcDone:   make(chan struct{}),
		iters:    newIterPool(),
	}
	s.lifeCond = sync.NewCond(&s.lifeMu)
	s.readers = make([]shardCount, len(s.iters.slots))
	s.shardHints.New = func() any {
		h := int(s.nextShard.Add(1)-1) % len(s.readers)
		return &h
	}
	if err := s.loadCatching(); err != nil {
		if s.failure() != nil {
			// Pebble cannot be closed cleanly after a fatal error.
			return nil, err
		}
		return nil, errors.Join(err, db.Close())
	}
	s.stats.Count = s.countStatistics
	s.stats.Start(s.savedStatistics())
	if opts.GCInterval > 0 {
		go s.gcLoop()
	} else {
		close(s.gcDone)
	}
	return s, nil
}

// pebbleOptions are the Pebble options of a store with comparer cmp. The
// caller releases its reference to the block cache (Options.Cache.Unref)
// once the database is open: the database holds its own.
func pebbleOptions(opts Options, cmp *pebble.Comparer) *pebble.Options {
	// Pebble reserves the memory of its memtables (up to two in normal
	// operation) inside the block cache; without room for them a busy
	// store caches no blocks at all. Size the cache so that CacheSize
	// stays usable for blocks.
	cache := pebble.NewCache(opts.CacheSize + 2*memTableSize)
	popts := &pebble.Options{
		FS:                 opts.FS,
		Cache:              cache,
		Comparer:           cmp,
		FormatMajorVersion: pebbleFormat,
		Logger:             pebbleLogger{opts.Logger},
		MemTableSize:       memTableSize,

		DisableAutomaticCompactions: opts.noAutoCompactions,
	}
	if cmp == comparer {
		// Filters over tuple keys (comparer's Split), on every level:
		// most point reads of a check find nothing, and a filter says so
		// without a block read. L0 too, where small stores keep
		// everything.
		for i := range popts.Levels {
			popts.Levels[i].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
			popts.Levels[i].IndexBlockSize = indexBlockSize
		}
	}
	return popts
}

// loadCatching is load, with a fatal Pebble error (a disk fault while
// initialising, upgrading or rolling back an import) returned.
func (s *Store) loadCatching() (err error) {
	defer s.catchFatal(&err, store.ErrUnavailable)
	return s.load()
}

// load checks the format version, creates the metadata of a new store and
// reads it back, and rolls back an interrupted import.
func (s *Store) load() error {
	format, err := s.getUvarint(keyFormat)
	if err != nil {
		return err
	}
	if format == 0 {
		if err := s.initialize(); err != nil {
			return err
		}
		format = formatVersion
	}
	if format > formatVersion {
		return &FormatError{Found: format, Supported: formatVersion}
	}
	if format == 2 {
		// Format 2 lives only under Pebble's default comparer, which
		// upgradeComparer replaces before this point.
		return fmt.Errorf("pebblestore: format 2 under the format 3 comparer: %w", store.ErrCorrupt)
	}
	if format == 1 {
		if err := s.buildExpiryIndex(); err != nil {
			return err
		}
	}
	id, closer, err := s.db.Get(keyStoreID)
	if err != nil {
		return fmt.Errorf("pebblestore: read store id: %w", err)
	}
	s.id = string(id)
	closer.Close()
	for _, m := range []struct {
		key []byte
		dst *atomic.Uint64
	}{{keyHead, &s.head}, {keyHorizon, &s.horizon}} {
		v, err := s.getRev(m.key)
		if err != nil {
			return err
		}
		m.dst.Store(uint64(v))
	}
	s.applied.Store(s.head.Load())
	s.durable.Store(s.head.Load())
	if err := s.rollbackImport(); err != nil {
		return err
	}
	if h := s.head.Load(); h > 0 {
		hdr, err := s.readChangeHeader(store.Revision(h))
		if err != nil {
			return err
		}
		s.lastCommit = hdr.time
	}
	return s.loadAudit()
}

// buildExpiryIndex upgrades a format 1 store to format 2: it adds the
// expiry index entry of every live version that expires, in bounded
// batches, and then the new format version. Entries are idempotent, so a
// crash part-way leaves format 1, and the next Open starts again.
func (s *Store) buildExpiryIndex() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagForward}, UpperBound: []byte{tagForward + 1}})
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		val, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: build the expiry index: %w", err)
		}
		exp, err := valueExpiration(val)
		if err != nil {
			return fmt.Errorf("pebblestore: build the expiry index: key %q: %w", it.Key(), err)
		}
		if exp.IsZero() {
			continue
		}
		_ = b.Set(expiryKey(nil, exp, it.Key()), nil, nil)
		n++
		if b.Len() >= importBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("pebblestore: build the expiry index: %w", err)
			}
			b.Reset()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: build the expiry index: %w", err)
	}
	// The synced commit makes the earlier batches durable too.
	_ = b.Set(keyFormat, binary.AppendUvarint(nil, formatVersion), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: build the expiry index: %w", err)
	}
	s.opts.Logger.Info("pebblestore: built the expiry index (format 1 to 3)", "entries", n)
	return nil
}

// initialize writes the metadata of a new store, refusing a non-empty
// database that has none.
func (s *Store) initialize() error {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	nonEmpty := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	if nonEmpty {
		return fmt.Errorf("%w: no format version key", ErrNotPemba)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("pebblestore: store id: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(keyStoreID, []byte(hex.EncodeToString(raw[:])), nil)
	_ = b.Set(keyHead, revBytes(0), nil)
	_ = b.Set(keyHorizon, revBytes(0), nil)
	_ = b.Set(keyGCDone, revBytes(0), nil)
	_ = b.Set(keyAuditAnchor, anchorBytes(store.AuditAnchor{}), nil)
	// The format key goes last in the same batch: a store is either fully
	// initialised or empty.
	_ = b.Set(keyFormat, binary.AppendUvarint(nil, formatVersion), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: initialise: %w", err)
	}
	return nil
}

func revBytes(r store.Revision) []byte { return binary.BigEndian.AppendUint64(nil, uint64(r)) }

// getRev reads an 8-byte revision meta key; absent reads as 0.
func (s *Store) getRev(key []byte) (store.Revision, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pebblestore: read %s: %w", key, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("pebblestore: meta key %s has %d bytes: %w", key, len(v), store.ErrCorrupt)
	}
	return store.Revision(binary.BigEndian.Uint64(v)), nil
}

// getUvarint reads a uvarint meta key; absent reads as 0.
func (s *Store) getUvarint(key []byte) (uint64, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pebblestore: read %s: %w", key, err)
	}
	defer closer.Close()
	x, n := binary.Uvarint(v)
	if n <= 0 || n != len(v) || x == 0 {
		return 0, fmt.Errorf("pebblestore: meta key %s: %w", key, store.ErrCorrupt)
	}
	return x, nil
}

// acquire registers an operation that uses the database; it fails once
// Close has begun.
func (s *Store) acquire() error { return s.enter(&s.active) }

// release ends an operation that acquire registered.
func (s *Store) release() { s.leave(&s.active) }

// enter counts an operation in c (active, or a shard of readers); it
// fails once Close has begun.
func (s *Store) enter(c *atomic.Int64) error {
	c.Add(1)
	if s.closed.Load() {
		// Close may be waiting for the counts to drop: leave wakes it.
		s.leave(c)
		return store.ErrClosed
	}
	return nil
}

// leave ends an operation that enter counted in c.
func (s *Store) leave(c *atomic.Int64) {
	c.Add(-1)
	if s.closed.Load() {
		// Close waits for the sum of every count (activeOps); broadcast
		// under lifeMu, so that a Close between its check of activeOps
		// and its Wait cannot miss it.
		s.lifeMu.Lock()
		s.lifeCond.Broadcast()
		s.lifeMu.Unlock()
	}
}

// shardCount is one of Store.readers, alone on its cache line.
type shardCount struct {
	n atomic.Int64
	_ [56]byte
}

// readerShard returns the shard of Store.readers (and the home slot in
// the iterator pool) for a query: the calling P's, through a sync.Pool,
// which keeps one value per P. It is a hint: a goroutine that moves to
// another P keeps using the shard it took, which stays correct.
func (s *Store) readerShard() int {
	h := s.shardHints.Get().(*int)
	s.shardHints.Put(h)
	return *h
}

// acquireReader is acquire for a query, counted in shard i.
func (s *Store) acquireReader(i int) error { return s.enter(&s.readers[i].n) }

// releaseReader ends a query that acquireReader(i) registered.
func (s *Store) releaseReader(i int) { s.leave(&s.readers[i].n) }

// activeOps is the number of operations and queries using the database.
func (s *Store) activeOps() int64 {
	n := s.active.Load()
	for i := range s.readers {
		n += s.readers[i].n.Load()
	}
	return n
}

// Close stops the background GC, waits for running operations (open
// query loops included) to finish and closes the database. Watch loops end
// with store.ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return store.ErrClosed
	}
	close(s.closedCh)
	s.stats.Stop() // its scan holds an operation
	s.lifeMu.Lock()
	for s.activeOps() > 0 {
		s.lifeCond.Wait()
	}
	s.lifeMu.Unlock()
	<-s.gcDone
	s.closeIters()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebblestore: close: %w", err)
	}
	return nil
}

// Kind returns "pebble".
func (s *Store) Kind() string { return "pebble" }

// ID returns the random ID chosen when the store was created.
func (s *Store) ID() string { return s.id }

// HeadRevision returns the newest committed revision.
func (s *Store) HeadRevision(ctx context.Context) (store.Revision, error) {
	// Counted like a query (readerShard): requests ask for the head and
	// a snapshot each, from every core at once.
	home := s.readerShard()
	if err := s.acquireReader(home); err != nil {
		return 0, err
	}
	defer s.releaseReader(home)
	return store.Revision(s.head.Load()), nil
}

// Horizon returns the oldest readable revision.
func (s *Store) Horizon() store.Revision { return store.Revision(s.horizon.Load()) }

// Snapshot returns a reader at rev.
func (s *Store) Snapshot(ctx context.Context, rev store.Revision) (store.Reader, error) {
	home := s.readerShard()
	if err := s.acquireReader(home); err != nil {
		return nil, err
	}
	defer s.releaseReader(home)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if h := store.Revision(s.head.Load()); rev > h {
		return nil, &store.FutureError{Requested: rev, Head: h}
	}
	if hz := store.Revision(s.horizon.Load()); rev < hz {
		return nil, &store.CompactedError{Requested: rev, Horizon: hz}
	}
	return &reader{s: s, rev: rev}, nil
}

// wake wakes the watchers waiting for a commit.
func (s *Store) wake() { s.commits.Broadcast() }

// pebbleLogger sends Pebble's messages to slog: its chatty informational
// messages at debug level.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble on an unrecoverable failure, after which
// Pebble must not continue (a failed write-ahead log write or sync among
// them); it logs and panics with a fatalError, which the store's write
// methods recover when it happens in their goroutine (fault.go).
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic(fatalError{msg: msg})
}

// countStatistics counts the relationships at the head and saves the
// count under keyStats, so that a reopened store at the same head need not
// count again (a scan of the whole forward index: about a second of CPU
// per million relationships).
func (s *Store) countStatistics(ctx context.Context) (*store.Statistics, error) {
	r, err := s.Snapshot(ctx, store.Revision(s.head.Load()))
	if err != nil {
		return nil, fmt.Errorf("pebblestore: count statistics: %w", err)
	}
	st, err := store.CountStatistics(ctx, r, s.opts.Now())
	if err != nil {
		return nil, err
	}
	if err := s.saveStatistics(st); err != nil {
		// Counted but not saved: serve the count; the next open counts.
		s.opts.Logger.Warn("pebblestore: save statistics", "err", err)
	}
	return st, nil
}

// saveStatistics writes st under keyStats (unsynced: a lost copy only
// costs a count at the next open), unless the store failed; a fatal Pebble
// error during the write fails the store as a write's would (fault.go).
func (s *Store) saveStatistics(st *store.Statistics) (err error) {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.writable(); err != nil {
		return err
	}
	defer s.catchFatal(&err, store.ErrUnavailable)
	if err := s.db.Set(keyStats, store.EncodeStatistics(st), pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: save statistics: %w", err)
	}
	return nil
}

// savedStatistics returns the saved count when it was taken at the head
// revision; nil when there is none, it is older, or it does not decode
// (the background count then replaces it).
func (s *Store) savedStatistics() *store.Statistics {
	v, closer, err := s.db.Get(keyStats)
	if err != nil {
		return nil
	}
	defer closer.Close()
	st, err := store.DecodeStatistics(v)
	if err != nil || st.Revision != store.Revision(s.head.Load()) {
		return nil
	}
	return st
}

// Statistics returns the latest counts of relationships (store.StatsKeeper):
// counted when the store opens and again after enough writes.
func (s *Store) Statistics() *store.Statistics { return s.stats.Statistics() }

// RefreshStatistics counts the relationships at the head revision now.
func (s *Store) RefreshStatistics(ctx context.Context) (*store.Statistics, error) {
	return s.stats.Refresh(ctx)
}

// MaxBatchOps reports the per-transaction limit (store.BatchLimiter).
func (s *Store) MaxBatchOps() int { return s.opts.MaxBatchOps }

// GCTotals counts the GC runs since Open (store.GCReporter).
func (s *Store) GCTotals() store.GCTotals { return s.gcCount.GCTotals() }
