package server

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
)

// metrics are the server's Prometheus collectors, registered on the
// registry given in Config (never the global one).
type metrics struct {
	requests *prometheus.CounterVec   // method, code
	latency  *prometheus.HistogramVec // method
	inFlight *prometheus.GaugeVec     // method
	checks   *prometheus.CounterVec   // outcome
	dispatch prometheus.Histogram     // subproblems dispatched per check
	depth    prometheus.Histogram     // deepest nesting per check
	callers  *prometheus.CounterVec   // caller, tenant, code

	// The label children used on every call, looked up once: a
	// WithLabelValues call hashes the labels under a lock, and the short
	// method name took an allocation per call.
	methods  sync.Map                              // full method name -> *methodMetrics
	outcomes [4]atomic.Pointer[prometheus.Counter] // by pb.Permissionship
}

// methodMetrics holds one method's children, each made on first use so
// that a series appears only once it has a value, as with WithLabelValues.
type methodMetrics struct {
	name     string // shortMethod of the full name
	inFlight prometheus.Gauge
	latency  prometheus.Observer
	codes    [numCodes]atomic.Pointer[prometheus.Counter]
}

// numCodes is the number of gRPC status codes (OK to Unauthenticated).
const numCodes = int(codes.Unauthenticated) + 1

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pemba", Subsystem: "grpc", Name: "requests_total",
			Help: "gRPC calls handled, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pemba", Subsystem: "grpc", Name: "request_duration_seconds",
			Help: "Time to handle a gRPC call (for streams: the whole stream), by method.",
			// From 100µs (cached checks) to ~26s (long exports land in +Inf).
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"method"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pemba", Subsystem: "grpc", Name: "in_flight",
			Help: "Calls being handled (open streams included), by method.",
		}, []string{"method"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pemba", Name: "check_results_total",
			Help: "Permission checks answered (single and bulk items), by outcome.",
		}, []string{"outcome"}),
		dispatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "pemba", Name: "check_dispatches",
			Help: "Subproblems dispatched per permission check (single and bulk items), cache and memo hits included.",
			// 1 (a cached root) to 4096.
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		depth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "pemba", Name: "check_depth",
			Help:    "Deepest relation nesting reached per permission check (single and bulk items); 0 for a root answered from the cache.",
			Buckets: []float64{0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50},
		}),
		callers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pemba", Subsystem: "grpc", Name: "caller_requests_total",
			Help: "Authenticated gRPC calls (HTTP API calls included), by caller (the key's name; \"jwt\" for identity tokens), tenant (\"\" for none) and status code.",
		}, []string{"caller", "tenant", "code"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.inFlight, m.checks, m.dispatch, m.depth, m.callers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	return m, nil
}

// method returns the children of a method's series.
func (m *metrics) method(fullMethod string) *methodMetrics {
	if mm, ok := m.methods.Load(fullMethod); ok {
		return mm.(*methodMetrics)
	}
	name := shortMethod(fullMethod)
	mm, _ := m.methods.LoadOrStore(fullMethod, &methodMetrics{
		name:     name,
		inFlight: m.inFlight.WithLabelValues(name),
		latency:  m.latency.WithLabelValues(name),
	})
	return mm.(*methodMetrics)
}

// started records a call starting; the caller decrements the returned
// method's inFlight when the call ends.
func (m *metrics) started(fullMethod string) *methodMetrics {
	mm := m.method(fullMethod)
	mm.inFlight.Inc()
	return mm
}

// observe records one finished call.
func (m *metrics) observe(mm *methodMetrics, code codes.Code, seconds float64) {
	m.count(mm, code).Inc()
	mm.latency.Observe(seconds)
}

// count returns the requests counter of a method and code.
func (m *metrics) count(mm *methodMetrics, code codes.Code) prometheus.Counter {
	if int(code) >= numCodes {
		return m.requests.WithLabelValues(mm.name, code.String())
	}
	if c := mm.codes[code].Load(); c != nil {
		return *c
	}
	c := m.requests.WithLabelValues(mm.name, code.String())
	mm.codes[code].Store(&c)
	return c
}

// callerDone counts one authenticated call of p that ended with code.
func (m *metrics) callerDone(p *Principal, code codes.Code) {
	if int(code) >= numCodes || p.counts == nil {
		m.callers.WithLabelValues(p.metricsLabel(), p.Tenant, code.String()).Inc()
		return
	}
	if c := p.counts[code].Load(); c != nil {
		(*c).Inc()
		return
	}
	c := m.callers.WithLabelValues(p.metricsLabel(), p.Tenant, code.String())
	p.counts[code].Store(&c)
	c.Inc()
}

// checked records the outcome, dispatch count and depth of one check.
func (m *metrics) checked(p pb.Permissionship, dispatches, depth int) {
	m.outcome(p).Inc()
	m.dispatch.Observe(float64(dispatches))
	m.depth.Observe(float64(depth))
}

// outcome returns the counter of one check outcome.
func (m *metrics) outcome(p pb.Permissionship) prometheus.Counter {
	if p < 0 || int(p) >= len(m.outcomes) {
		return m.checks.WithLabelValues(outcomeLabel(p))
	}
	if c := m.outcomes[p].Load(); c != nil {
		return *c
	}
	c := m.checks.WithLabelValues(outcomeLabel(p))
	m.outcomes[p].Store(&c)
	return c
}

func outcomeLabel(p pb.Permissionship) string {
	switch p {
	case pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION:
		return "has_permission"
	case pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION:
		return "no_permission"
	case pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return "conditional"
	}
	return "unspecified"
}

// shortMethod turns "/pemba.v1.PermissionsService/CheckPermission" into
// "PermissionsService/CheckPermission" to keep labels short. SpiceDB's
// services (package api/authzed) have the same names, so theirs keep the
// prefix "authzed.": "authzed.PermissionsService/CheckPermission".
func shortMethod(full string) string {
	full = strings.TrimPrefix(full, "/")
	if rest, ok := strings.CutPrefix(full, "authzed.api.v1."); ok {
		return "authzed." + rest
	}
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		svc := full[:i]
		if j := strings.LastIndexByte(svc, '.'); j >= 0 {
			svc = svc[j+1:]
		}
		return svc + full[i:]
	}
	return full
}

// engineCollector exports the engine's own counters (result cache,
// compiled schemas) at scrape time.
type engineCollector struct {
	stats                                      func() engine.Stats
	hits, misses, evictions, bytes, entries, n *prometheus.Desc
	deprecated, compilesOnRead                 *prometheus.Desc
	plans                                      *prometheus.Desc
	memInUse, memBudget, memRefused            *prometheus.Desc
	nestedBuilding, nestedRebuilds             *prometheus.Desc
	nestedFailures, nestedSeconds, nestedLast  *prometheus.Desc
	compactions, compactionFailures            *prometheus.Desc
	memBytes, memLoads, memTooLarge            *prometheus.Desc
	memFailures, memSeconds                    *prometheus.Desc
}

func newEngineCollector(stats func() engine.Stats) *engineCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("pemba_engine_"+name, help, nil, nil)
	}
	return &engineCollector{
		stats:              stats,
		hits:               d("cache_hits_total", "Result cache hits."),
		misses:             d("cache_misses_total", "Result cache misses."),
		evictions:          d("cache_evictions_total", "Result cache evictions."),
		bytes:              d("cache_bytes", "Bytes held by the result cache."),
		entries:            d("cache_entries", "Entries held by the result cache."),
		n:                  d("compiled_schemas", "Compiled schemas kept by the engine."),
		deprecated:         d("deprecated_uses_total", "Requests that named a @deprecated relation or permission (warned or refused)."),
		memInUse:           d("memory_in_use_bytes", "Bytes charged to the checks, expands and lookups in flight (an estimate; see -memory-budget)."),
		memBudget:          d("memory_budget_bytes", "The -memory-budget (0: unbounded)."),
		memRefused:         d("memory_refused_total", "Requests refused by -memory-budget (RESOURCE_EXHAUSTED, reason MEMORY_BUDGET_EXCEEDED)."),
		nestedBuilding:     d("nested_index_building", "1 while a rebuild of the nested-group index runs (checks of the relations it rebuilds walk meanwhile), else 0."),
		nestedRebuilds:     d("nested_index_rebuilds_total", "Rebuilds of the nested-group index run (after bulk imports, oversized writes, schema changes, at start)."),
		nestedFailures:     d("nested_index_rebuild_failures_total", "Rebuilds of the nested-group index that failed (the index stays stale; checks walk)."),
		compactions:        d("import_compactions_total", "Compactions of the store started by large imports (after the nested-group index's rebuild)."),
		compactionFailures: d("import_compaction_failures_total", "Compactions of the store started by large imports that failed."),
		nestedSeconds:      d("nested_index_rebuild_seconds_total", "Time spent rebuilding the nested-group index."),
		nestedLast:         d("nested_index_last_rebuild_seconds", "Duration of the last rebuild of the nested-group index."),
		memBytes:           d("nested_memory_bytes", "Bytes of the nested-group index's closures held in memory for checks (see -nested-memory-bytes)."),
		memLoads:           d("nested_memory_loads_total", "Loads of a nested-group index's closure into memory (at start, after its rows changed)."),
		memTooLarge:        d("nested_memory_too_large_total", "Loads given up because the closure did not fit -nested-memory-bytes (its checks read the store)."),
		memFailures:        d("nested_memory_load_failures_total", "Loads of a closure into memory that failed otherwise (its checks read the store)."),
		memSeconds:         d("nested_memory_load_seconds_total", "Time spent loading closures into memory."),
		compilesOnRead: d("schema_compiles_on_read_total",
			"Stored schemas compiled by a request rather than by the schema write that stored them (after a restart, a cache eviction, or a write by another process)."),
		plans: prometheus.NewDesc("pemba_engine_check_plans_total",
			"Walks the planner decided otherwise than top-down from the resource, by plan: arrow_subject_probe, arrow_subject_statistics, subject_sets_subject_probe, subject_sets_subject_statistics (from the subject's side, after a probe or by the store's statistics), resource_statistics (top-down without a probe: the subject's side is wide), union_subject (a wide union decided by one walk up from the subject), children_statistics (a union or intersection evaluated cheapest child first by the statistics), exclusion_subtraction_first (an exclusion whose subtraction was evaluated first), exclusion_base_skipped (of those, one whose subtraction held: the base was not evaluated), narrow_read (a relation read whole in one scan), nested_index_memory (closure rows of the nested-group index read from memory).",
			[]string{"plan"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.evictions, c.bytes, c.entries, c.n, c.deprecated, c.compilesOnRead, c.plans, c.memInUse, c.memBudget, c.memRefused,
		c.nestedBuilding, c.nestedRebuilds, c.nestedFailures, c.nestedSeconds, c.nestedLast, c.compactions, c.compactionFailures,
		c.memBytes, c.memLoads, c.memTooLarge, c.memFailures, c.memSeconds} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.n, prometheus.GaugeValue, float64(s.CompiledSchemas))
	ch <- prometheus.MustNewConstMetric(c.deprecated, prometheus.CounterValue, float64(s.DeprecatedUses))
	ch <- prometheus.MustNewConstMetric(c.memInUse, prometheus.GaugeValue, float64(s.MemoryInUse))
	ch <- prometheus.MustNewConstMetric(c.memBudget, prometheus.GaugeValue, float64(s.MemoryBudget))
	ch <- prometheus.MustNewConstMetric(c.memRefused, prometheus.CounterValue, float64(s.MemoryRefused))
	ch <- prometheus.MustNewConstMetric(c.compilesOnRead, prometheus.CounterValue, float64(s.SchemaCompilesOnRead))
	building := 0.0
	if s.NestedIndexBuilding {
		building = 1
	}
	ch <- prometheus.MustNewConstMetric(c.nestedBuilding, prometheus.GaugeValue, building)
	ch <- prometheus.MustNewConstMetric(c.nestedRebuilds, prometheus.CounterValue, float64(s.NestedIndexRebuilds))
	ch <- prometheus.MustNewConstMetric(c.nestedFailures, prometheus.CounterValue, float64(s.NestedIndexRebuildFailures))
	ch <- prometheus.MustNewConstMetric(c.compactions, prometheus.CounterValue, float64(s.ImportCompactions))
	ch <- prometheus.MustNewConstMetric(c.compactionFailures, prometheus.CounterValue, float64(s.ImportCompactionFailures))
	ch <- prometheus.MustNewConstMetric(c.nestedSeconds, prometheus.CounterValue, s.NestedIndexRebuildTime.Seconds())
	ch <- prometheus.MustNewConstMetric(c.nestedLast, prometheus.GaugeValue, s.NestedIndexLastRebuild.Seconds())
	ch <- prometheus.MustNewConstMetric(c.memBytes, prometheus.GaugeValue, float64(s.NestedMemoryBytes))
	ch <- prometheus.MustNewConstMetric(c.memLoads, prometheus.CounterValue, float64(s.NestedMemoryLoads))
	ch <- prometheus.MustNewConstMetric(c.memTooLarge, prometheus.CounterValue, float64(s.NestedMemoryTooLarge))
	ch <- prometheus.MustNewConstMetric(c.memFailures, prometheus.CounterValue, float64(s.NestedMemoryLoadFailures))
	ch <- prometheus.MustNewConstMetric(c.memSeconds, prometheus.CounterValue, s.NestedMemoryLoadTime.Seconds())
	for _, plan := range slices.Sorted(maps.Keys(s.Plans)) {
		ch <- prometheus.MustNewConstMetric(c.plans, prometheus.CounterValue, float64(s.Plans[plan]), plan)
	}
	if !s.CacheEnabled {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Cache.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Cache.Misses))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(s.Cache.Evictions))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Cache.Bytes))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Cache.Entries))
}
