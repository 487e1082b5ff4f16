// Package engine is Pemba's facade: it ties a store, the schema compiler
// and the evaluator together and is what the API layer and the command
// line call.
//
// # Responsibilities
//
// The engine owns what no single lower package can decide alone:
//
//   - consistency: turning a Consistency (and its zookie) into the revision
//     a request is answered at, and minting the zookie of every answer;
//   - the schema in force at a revision, compiled and set up once per
//     schema write (outside the write lock) and cached by the revision
//     that wrote it;
//   - write validation: every relationship is checked against the schema in
//     force, preconditions are evaluated in the write's own transaction;
//   - schema-change safety: a schema that removes a relation or allowed
//     subject type that stored relationships still use is refused;
//   - request limits, with typed errors the API layer maps to status codes.
//
// Everything else is delegated: evaluation to package eval, storage to the
// store.Store given to Open, parsing to packages tuple and schema.
//
// # The one door
//
// Packages above the engine (the APIs, the benchmark, the command line,
// validation runs) import engine, engine/tuple and schema, nothing else of
// Pemba (layout_test.go checks it). What they need of the layers below is
// named here: the vocabulary of answers, writes and cluster dispatch in
// facade.go (aliases of the types eval and store own), and opening and
// inspecting a datastore in datastore.go.
//
// # Errors
//
// Every error the engine returns wraps one sentinel per concept (see
// errors.go), tested with errors.Is. Where a lower package already names a
// concept, the engine's name is that very sentinel (ErrSnapshotExpired is
// store.ErrRevisionCompacted, ErrMaxDepth is eval.ErrMaxDepth), so callers
// above the engine need only the engine's names. The engine says what went
// wrong, never which status code that is: api/server/errors.go holds the
// one table from sentinels to codes.
//
// # Concurrency
//
// An Engine is safe for concurrent use. Schema writes are serialised with
// relationship writes inside one Engine, so a relationship is always
// validated against the schema it is committed under. Several engines (or
// processes) writing one store concurrently do not get that guarantee.
package engine

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/pemba-authz/pemba/engine/cache"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/token"
	"github.com/pemba-authz/pemba/schema"
)

// Defaults for Options fields left zero.
const (
	DefaultCacheBytes        = 64 << 20
	DefaultQuantum           = 5 * time.Second
	DefaultMaxContextBytes   = 64 << 10
	DefaultMaxLookupLimit    = 10_000
	DefaultMaxBulkCheckItems = 1_000
	DefaultMaxPreconditions  = 100
	DefaultMaxReadPageSize   = 1_000
	// DefaultMaxContextualRelationships and DefaultMaxContextualBytes
	// bound the contextual relationships of one read (see
	// Limits.MaxContextualRelationships).
	DefaultMaxContextualRelationships = 1_000
	DefaultMaxContextualBytes         = 256 << 10
	// DefaultMaxPermissionSetResources bounds the resources of one
	// permission set (see Limits.MaxPermissionSetResources).
	DefaultMaxPermissionSetResources = 100
	// DefaultSchemaScanLimit bounds the relationships counted per removed
	// item when a schema change is checked.
	DefaultSchemaScanLimit = 100_000
	// DefaultMaxLookupNodes bounds the memory of one lookup: some 300
	// bytes a node reached (a lookup over 100,000 documents, 200,000
	// nodes, allocates 64 MB), so about 300 MB.
	DefaultMaxLookupNodes = 1_000_000
	// DefaultServeMemoryBudget is pemba serve's -memory-budget (the
	// engine's own default is none): room for three walks of
	// DefaultMaxLookupNodes at once, far below the memory of a machine
	// that serves them.
	DefaultServeMemoryBudget = 1 << 30
	// schemaCacheSize is how many compiled schemas are kept; schema writes
	// are rare and requests cluster around the newest revisions.
	schemaCacheSize = 8
	// inForceCacheSize bounds the revision -> schema map.
	inForceCacheSize = 1024
)

// Options configure an Engine. The zero value is usable.
type Options struct {
	// MaxDepth bounds the relations on one path of an answer, for every
	// query (see eval.Options.MaxDepth; 0: eval.DefaultMaxDepth).
	MaxDepth int
	// Concurrency bounds the evaluator's parallel dispatch per request
	// (0: DefaultConcurrency()).
	Concurrency int
	// CacheBytes sizes the result cache: 0 means DefaultCacheBytes, a
	// negative value disables the cache.
	CacheBytes int64
	// Quantum is how long a fetched head revision is reused by
	// MinimizeLatency requests (0: DefaultQuantum; negative: never reuse).
	Quantum time.Duration
	// Now is the clock (nil: time.Now). It decides quantization and which
	// relationships have expired.
	Now func() time.Time
	// Logger receives diagnostics (nil: discard).
	Logger *slog.Logger
	// Limits bound request sizes; zero fields take defaults.
	Limits Limits
	// Router, when set, makes this engine one node of a cluster over a
	// shared store: permissions owned by other nodes are evaluated there
	// (see eval.Router and DispatchCheck).
	Router eval.Router
	// Deprecation says what a request naming a @deprecated relation or
	// permission gets: a warning (the default) or a refusal.
	Deprecation DeprecationPolicy
	// Warn, when set, receives each warning meant for the caller of a
	// request (a deprecated relation used), with the request's context,
	// so that the API layer can return it (a response header). Warnings
	// are logged either way.
	Warn func(ctx context.Context, msg string)
	// TracerProvider, when set, records spans (OpenTelemetry): one per
	// Check, CheckBulk and cluster dispatch answered, with child spans for
	// the evaluator's subproblems, cache hits, cluster dispatches and
	// datastore queries (see trace.go). nil records nothing and costs
	// nothing. The engine uses only the trace API: the caller configures
	// the SDK, its sampler and exporter.
	TracerProvider trace.TracerProvider
	// NoNestedIndex turns the nested-group index off (see nested.go):
	// checks and lookups of nested relations walk the relationships, and writes
	// maintain no closure rows (they mark the index stale instead, so
	// that an engine opened later with the index on rebuilds it).
	NoNestedIndex bool
	// CompactAfterImport is how many relationships imported since the
	// last compaction (and a quarter of the store's relationships at
	// least) make the engine compact the store in the background once
	// the import, and the nested-group index's rebuild it started, are
	// done (store.Compacter: Pebble; see compact.go). 0:
	// DefaultCompactAfterImport; negative: never.
	CompactAfterImport int64
	// NestedMemoryBytes bounds the memory of the nested-group index's
	// closures that the engine loads for checks (closuremem.go: Leopard's
	// in-memory index; a closure that does not fit is read from the
	// store). 0: DefaultNestedMemoryBytes; negative: none loaded.
	NestedMemoryBytes int64
}

// Limits bound the size of requests. Exceeding one fails with a *LimitError.
type Limits struct {
	// MaxUpdatesPerWrite bounds the updates of one WriteRelationships
	// call; 0 means the store's per-transaction limit
	// (store.DefaultMaxBatchOps unless the store reports its own through
	// a MaxBatchOps() int method).
	MaxUpdatesPerWrite int
	// MaxPreconditions bounds the preconditions of one write.
	MaxPreconditions int
	// MaxContextBytes bounds a caveat context, as JSON.
	MaxContextBytes int
	// MaxLookupLimit bounds the Limit of LookupResources, a page size. A
	// request without a Limit gets every result, never a silently
	// truncated list.
	MaxLookupLimit int
	// MaxBulkCheckItems bounds the items of one CheckBulk call.
	MaxBulkCheckItems int
	// MaxReadPageSize bounds the page size of ReadRelationships.
	MaxReadPageSize int
	// MaxLookupNodes bounds the (object, relation) nodes one
	// LookupResources or LookupSubjects reaches and holds in memory
	// (whatever its page size: results come out sorted, so the walk is
	// complete before the first; a lookup the evaluator streams, over a
	// union of relations naming its subjects directly, holds none); past it the lookup fails with a
	// *LimitError (RESOURCE_EXHAUSTED at the API).
	MaxLookupNodes int
	// MemoryBudget bounds the bytes that the checks, expands and lookups
	// in flight hold together (an estimate: relationships read, nodes
	// of walks, memoized subproblems; see eval.Memory); a request that
	// would take them past it fails with ErrMemoryBudget. 0: unbounded.
	MemoryBudget int64
	// MaxContextualRelationships bounds the contextual relationships of
	// one read request, and MaxContextualBytes their size: the bytes of
	// their keys (resource, relation, subject as text) plus their caveat
	// contexts as JSON. Each caveat context is also bounded by
	// MaxContextBytes, as in a write. Exceeding either fails with
	// ErrInvalidRequest.
	MaxContextualRelationships int
	MaxContextualBytes         int
	// MaxPermissionSetResources bounds the resources of one
	// CheckPermissionSet (the rows of its matrix); more fail with
	// ErrInvalidRequest.
	MaxPermissionSetResources int
	// MaxSchemaDefinitions bounds the definitions of a schema written
	// (DefaultMaxSchemaDefinitions).
	MaxSchemaDefinitions int
	// MaxPermissionOperators bounds the operators (+, &, -) of each
	// permission of a schema written (DefaultMaxPermissionOperators;
	// the parser refuses more than schema.MaxOperators whatever this
	// says).
	MaxPermissionOperators int
	// MaxSchemaAnalysisWork bounds the work of setting a schema up for
	// evaluation, as eval.AnalysisWork counts it
	// (DefaultMaxSchemaAnalysisWork).
	MaxSchemaAnalysisWork int
	// SchemaScanLimit bounds how many orphaned relationships WriteSchema
	// counts per changed relation before it stops (the refusal then says
	// "or more").
	SchemaScanLimit int
}

// Engine answers permission questions over one store. Create it with Open.
type Engine struct {
	st          store.Store
	fingerprint token.Fingerprint
	now         func() time.Time
	log         *slog.Logger
	limits      Limits
	evalOpts    eval.Options
	cache       *eval.Cache // nil when disabled
	memory      *eval.Memory
	heads       *headQuantizer
	deprecation deprecation
	tracer      trace.Tracer // nil: tracing off

	compactor importCompactor
	closures  closureMemory

	// writeMu serialises schema writes against relationship writes (read
	// lock) so that validation and commit see the same schema.
	writeMu sync.RWMutex

	compiles singleflight.Group // stored schemas being compiled, by revision
	schemaMu sync.Mutex
	schemas  map[store.Revision]*compiled // by the revision that wrote them
	order    []store.Revision             // insertion order, for eviction
	// inForce maps a read revision to the schema in force there (nil: none
	// written yet). History is immutable, so an entry never goes stale; it
	// saves a store read per request, since requests share revisions.
	inForce map[store.Revision]*compiled
	// lastInForce is the latest inForce entry used, read without a lock:
	// requests within a quantum share one revision.
	lastInForce atomic.Pointer[schemaInForce]
	lastZookie  atomic.Pointer[mintedZookie]
	// pending is the schema a schema write is committing, compiled and
	// set up outside the lock: a request that reads its text at the new
	// revision before the write has remembered it takes it from here.
	pending atomic.Pointer[pendingSchema]
	// compilesOnRead counts stored schemas compiled by schemaOf.
	compilesOnRead atomic.Int64

	// builder runs the nested-group index's rebuilds (nestedbuild.go).
	builder nestedBuilder

	closed atomic.Bool
}

// compiled is a schema in force together with its evaluator.
type compiled struct {
	schema *schema.Schema
	eval   *eval.Evaluator
	// invariants indexes the schema's write-time invariants; nil when it
	// declares none.
	invariants *invariantIndex
	// renames is set when the schema renames a relation
	// (@renamed_from): evaluation then reads through an aliasReader.
	renames bool
	// aliasStats caches the store's statistics seen through the renames
	// (aliasReader.Statistics).
	aliasStats atomic.Pointer[aliasStats]
	// nested are the relations of the nested-group index; nil when the
	// schema has none.
	nested map[relKey]*nestedRel
}

// DefaultConcurrency is the branch concurrency of a request when
// Options.Concurrency is 0: 1 (sequential) with 2 or fewer Ps, else the
// evaluator's default.
//
// Measured on a loaded 2-core machine (docs/benchmarks.md, Evaluator),
// parallel branches cost 2.3-3x the CPU of sequential evaluation per
// uncached check and were slower in wall time too: with no idle core, the
// extra goroutines only add scheduling and cancellation. Under concurrent
// requests every core is already busy, so parallel branches can pay off
// only on hosts with spare cores; that case is not measured here, and the
// evaluator's default is kept for it.
func DefaultConcurrency() int {
	if runtime.GOMAXPROCS(0) <= 2 {
		return 1
	}
	return eval.DefaultConcurrency
}

// batchLimiter is implemented by stores that report their own
// per-transaction operation limit.

// Open returns an engine over st. The engine does not own st: Close leaves
// it open, and the caller closes it after closing the engine.
func Open(ctx context.Context, st store.Store, opts Options) (*Engine, error) {
	if st == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidRequest)
	}
	e := &Engine{
		st:          st,
		fingerprint: FingerprintOf(st),
		now:         opts.Now,
		log:         opts.Logger,
		limits:      opts.Limits.withDefaults(st),
		schemas:     make(map[store.Revision]*compiled),
		inForce:     make(map[store.Revision]*compiled),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.CacheBytes == 0:
		e.cache = eval.NewCache(DefaultCacheBytes)
	case opts.CacheBytes > 0:
		e.cache = eval.NewCache(opts.CacheBytes)
	}
	quantum := opts.Quantum
	if quantum == 0 {
		quantum = DefaultQuantum
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency()
	}
	e.memory = eval.NewMemory(e.limits.MemoryBudget)
	e.evalOpts = eval.Options{MaxDepth: opts.MaxDepth, Concurrency: conc, Cache: e.cache, Router: opts.Router, MaxLookupNodes: e.limits.MaxLookupNodes,
		Plans: new(eval.PlanCounters), NestedIndex: !opts.NoNestedIndex, Memory: e.memory}
	if opts.TracerProvider != nil {
		e.tracer = opts.TracerProvider.Tracer(TracerName)
		e.evalOpts.Tracer = e.tracer
	}
	e.closures = closureMemory{e: e, maxBytes: cmp.Or(opts.NestedMemoryBytes, DefaultNestedMemoryBytes)}
	if e.evalOpts.NestedIndex && e.closures.maxBytes > 0 {
		e.evalOpts.Closures = &e.closures
	}
	e.heads = &headQuantizer{st: st, now: e.now, quantum: quantum}
	e.builder.init()
	e.compactor.threshold = opts.CompactAfterImport
	if e.compactor.threshold == 0 {
		e.compactor.threshold = DefaultCompactAfterImport
	}
	e.deprecation = deprecation{policy: opts.Deprecation, warn: opts.Warn}
	// Fail early on a store that cannot even report its head. The head is
	// not remembered: the first quantum starts with the first read.
	if _, err := st.HeadRevision(ctx); err != nil {
		return nil, fmt.Errorf("engine: head revision: %w", err)
	}
	if err := e.ensureNested(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

func (l Limits) withDefaults(st store.Store) Limits {
	if l.MaxUpdatesPerWrite <= 0 {
		l.MaxUpdatesPerWrite = store.DefaultMaxBatchOps
		if b, ok := st.(store.BatchLimiter); ok && b.MaxBatchOps() > 0 {
			l.MaxUpdatesPerWrite = b.MaxBatchOps()
		}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxPreconditions, DefaultMaxPreconditions)
	def(&l.MaxContextBytes, DefaultMaxContextBytes)
	def(&l.MaxLookupLimit, DefaultMaxLookupLimit)
	def(&l.MaxBulkCheckItems, DefaultMaxBulkCheckItems)
	def(&l.MaxReadPageSize, DefaultMaxReadPageSize)
	def(&l.SchemaScanLimit, DefaultSchemaScanLimit)
	def(&l.MaxSchemaDefinitions, DefaultMaxSchemaDefinitions)
	def(&l.MaxPermissionOperators, DefaultMaxPermissionOperators)
	def(&l.MaxSchemaAnalysisWork, DefaultMaxSchemaAnalysisWork)
	def(&l.MaxLookupNodes, DefaultMaxLookupNodes)
	def(&l.MaxContextualRelationships, DefaultMaxContextualRelationships)
	def(&l.MaxContextualBytes, DefaultMaxContextualBytes)
	def(&l.MaxPermissionSetResources, DefaultMaxPermissionSetResources)
	return l
}

// Close stops the engine: later calls fail with ErrClosed, and a
// background rebuild of the nested-group index is cancelled (the index
// stays stale; the next engine opened on the store rebuilds it) and
// waited for. It does not close the store, which belongs to the caller.
func (e *Engine) Close() error {
	e.closed.Store(true)
	// The builder's context is the compaction's and the loads'.
	e.compactor.job.close(e.builder.close)
	e.closures.job.close(nil)
	return nil
}

// Fingerprint identifies the engine's store in zookies and dispatches.
func (e *Engine) Fingerprint() token.Fingerprint { return e.fingerprint }

// Limits returns the limits in force, defaults filled in.
func (e *Engine) Limits() Limits { return e.limits }

// Stats are counters for metrics.
type Stats struct {
	// CacheEnabled reports whether a result cache is configured; Cache is
	// meaningful only then.
	CacheEnabled bool
	Cache        cache.Stats
	// CompiledSchemas is how many compiled schemas are cached.
	CompiledSchemas int
	// DeprecatedUses counts requests that named a @deprecated relation
	// or permission (warned or refused).
	DeprecatedUses int64
	// Plans counts the planner's decisions that departed from the
	// top-down walk, by plan (see eval.Plan), since the engine opened.
	Plans map[string]uint64
	// MemoryInUse is the bytes charged to requests in flight,
	// MemoryBudget the budget (0: unbounded) and MemoryRefused the
	// requests it refused (Limits.MemoryBudget).
	MemoryInUse, MemoryBudget int64
	MemoryRefused             uint64
	// SchemaCompilesOnRead counts stored schemas compiled by a request
	// rather than by the schema write that stored them: after a restart,
	// a cache eviction, or a write by another process.
	SchemaCompilesOnRead int64
	// NestedIndexBuilding is set while a rebuild of the nested-group
	// index runs (checks of the relations it rebuilds walk meanwhile).
	NestedIndexBuilding bool
	// NestedIndexRebuilds counts the rebuilds run since the engine opened
	// (background and RebuildNestedIndex), NestedIndexRebuildFailures
	// those that failed; NestedIndexRebuildTime is their total duration,
	// NestedIndexLastRebuild the last one's.
	NestedIndexRebuilds, NestedIndexRebuildFailures uint64
	// ImportCompactions counts the compactions of the store that imports
	// started (Options.CompactAfterImport), ImportCompactionFailures those
	// that failed.
	ImportCompactions, ImportCompactionFailures    uint64
	NestedIndexRebuildTime, NestedIndexLastRebuild time.Duration
	// NestedMemoryBytes is the memory of the closures loaded for checks
	// (Options.NestedMemoryBytes); NestedMemoryLoads counts the loads,
	// NestedMemoryLoadTime their total duration, NestedMemoryTooLarge
	// those a closure did not fit the budget, NestedMemoryLoadFailures
	// those that failed otherwise.
	NestedMemoryBytes                                                 int64
	NestedMemoryLoads, NestedMemoryTooLarge, NestedMemoryLoadFailures uint64
	NestedMemoryLoadTime                                              time.Duration
}

// HoldMemory charges n bytes that the caller holds for a request outside
// the engine (the server's large request messages) to the memory budget
// until it calls release, so that requests in flight are bounded together;
// it fails with ErrMemoryBudget when they do not fit.
func (e *Engine) HoldMemory(n int64) (release func(), err error) {
	release, err = e.memory.Hold(n)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return release, nil
}

// Stats returns current counters.
func (e *Engine) Stats() Stats {
	var s Stats
	if e.cache != nil {
		s.CacheEnabled = true
		s.Cache = e.cache.Stats()
	}
	e.schemaMu.Lock()
	s.CompiledSchemas = len(e.schemas)
	e.schemaMu.Unlock()
	s.DeprecatedUses = e.deprecation.uses.Load()
	s.Plans = e.evalOpts.Plans.Counts()
	s.MemoryInUse, s.MemoryBudget, s.MemoryRefused = e.memory.InUse(), e.memory.Limit(), e.memory.Refused()
	s.SchemaCompilesOnRead = e.compilesOnRead.Load()
	b := &e.builder
	s.NestedIndexBuilding = b.building.Load()
	s.NestedIndexRebuilds, s.NestedIndexRebuildFailures = b.rebuilds.Load(), b.failures.Load()
	s.ImportCompactions, s.ImportCompactionFailures = e.compactor.runs.Load(), e.compactor.failures.Load()
	s.NestedIndexRebuildTime, s.NestedIndexLastRebuild = time.Duration(b.totalNanos.Load()), time.Duration(b.lastNanos.Load())
	m := &e.closures
	s.NestedMemoryBytes = m.bytes.Load()
	s.NestedMemoryLoads, s.NestedMemoryTooLarge, s.NestedMemoryLoadFailures = m.loads.Load(), m.tooLarge.Load(), m.failures.Load()
	s.NestedMemoryLoadTime = time.Duration(m.loadNanos.Load())
	return s
}

func (e *Engine) checkOpen() error {
	if e.closed.Load() {
		return fmt.Errorf("engine: %w", ErrClosed)
	}
	return nil
}

// view is everything a read needs: a snapshot and the schema in force.
type view struct {
	rev    store.Revision
	reader store.Reader
	c      *compiled // nil when no schema is written at rev
}

// open resolves c and opens a view at the resulting revision.
func (e *Engine) open(ctx context.Context, c Consistency) (*view, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	rev, err := e.resolve(ctx, c)
	if err != nil {
		return nil, err
	}
	return e.openAt(ctx, rev)
}

func (e *Engine) openAt(ctx context.Context, rev store.Revision) (*view, error) {
	r, err := e.snapshotAt(ctx, rev)
	if err != nil {
		return nil, err
	}
	cs, err := e.schemaOf(ctx, r)
	if err != nil {
		return nil, err
	}
	return &view{rev: rev, reader: r, c: cs}, nil
}

// needSchema is open for requests that cannot work without a schema.
func (e *Engine) needSchema(ctx context.Context, c Consistency) (*view, error) {
	v, err := e.open(ctx, c)
	if err != nil {
		return nil, err
	}
	if v.c == nil {
		return nil, fmt.Errorf("%w (at revision %d)", ErrNoSchema, v.rev)
	}
	return v, nil
}

// schemaOf returns the compiled schema in force for reader r, compiling
// and caching it on first use; nil when no schema was written.
func (e *Engine) schemaOf(ctx context.Context, r store.Reader) (*compiled, error) {
	rev := r.Revision()
	if l := e.lastInForce.Load(); l != nil && l.rev == rev {
		return l.c, nil
	}
	e.schemaMu.Lock()
	c, ok := e.inForce[rev]
	e.schemaMu.Unlock()
	if ok {
		e.lastInForce.Store(&schemaInForce{rev: rev, c: c})
		return c, nil
	}
	text, written, err := r.ReadSchema(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: read schema at revision %d: %w", rev, err)
	}
	if text != "" || written != 0 {
		e.schemaMu.Lock()
		c, ok = e.schemas[written]
		e.schemaMu.Unlock()
		if !ok {
			// Concurrent first requests compile once: compiling caveats
			// costs milliseconds.
			v, err, _ := e.compiles.Do(strconv.FormatUint(uint64(written), 10), func() (any, error) {
				if p := e.pending.Load(); p != nil && p.text == text {
					return e.remember(written, p.c), nil
				}
				e.compilesOnRead.Add(1)
				s, err := schema.Compile(schemaFilename, text)
				if err != nil {
					// The engine compiled this text before storing it; failing now
					// means the compiler changed incompatibly or the store is corrupt.
					e.log.ErrorContext(ctx, "stored schema does not compile", "written", uint64(written), "error", err)
					return nil, fmt.Errorf("engine: stored schema (written at revision %d) no longer compiles: %w", written, err)
				}
				return e.remember(written, e.newCompiled(s)), nil
			})
			if err != nil {
				return nil, err
			}
			c = v.(*compiled)
		}
	}
	e.schemaMu.Lock()
	if len(e.inForce) >= inForceCacheSize {
		clear(e.inForce) // cheaper than LRU bookkeeping; refills in one request per revision
	}
	e.inForce[rev] = c
	e.schemaMu.Unlock()
	e.lastInForce.Store(&schemaInForce{rev: rev, c: c})
	return c, nil
}

type pendingSchema struct {
	text string
	c    *compiled
}

type schemaInForce struct {
	rev store.Revision
	c   *compiled
}

func (e *Engine) newCompiled(s *schema.Schema) *compiled {
	return &compiled{schema: s, eval: eval.New(s, e.evalOpts), renames: hasRenames(s), invariants: newInvariantIndex(s, e.evalOpts),
		nested: nestedIndexOf(s)}
}

// remember caches c as the schema written at revision written and returns
// the cached one (an earlier entry wins, so all requests share one
// evaluator per schema).
func (e *Engine) remember(written store.Revision, c *compiled) *compiled {
	e.schemaMu.Lock()
	defer e.schemaMu.Unlock()
	if prev, ok := e.schemas[written]; ok {
		return prev
	}
	e.schemas[written] = c
	e.order = append(e.order, written)
	if len(e.order) > schemaCacheSize {
		evicted := e.schemas[e.order[0]]
		delete(e.schemas, e.order[0])
		e.order = e.order[1:]
		// Revisions that used the evicted schema look it up again.
		for rev, ic := range e.inForce {
			if ic == evicted {
				delete(e.inForce, rev)
			}
		}
		if l := e.lastInForce.Load(); l != nil && l.c == evicted {
			e.lastInForce.CompareAndSwap(l, nil)
		}
	}
	return c
}

// schemaFilename names stored schema text in compile errors.
const schemaFilename = "schema"

// Ping reports whether the engine can answer: it is open, its store
// returns a head revision and has not failed (store.Failer, a Pebble store
// after a disk fault). Health checks call it.
func (e *Engine) Ping(ctx context.Context) error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	if _, err := e.st.HeadRevision(ctx); err != nil {
		return fmt.Errorf("engine: ping: %w", err)
	}
	if f, ok := e.st.(store.Failer); ok {
		if err := f.Failure(); err != nil {
			return fmt.Errorf("engine: ping: %w", err)
		}
	}
	return nil
}
