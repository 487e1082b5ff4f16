package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/api/authzed"
	"github.com/pemba-authz/pemba/api/cluster"
	"github.com/pemba-authz/pemba/api/playground"
	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/cmd/pemba/internal/cli"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/internal/sysmem"
)

// serveCommand is `pemba serve`: flags and wiring only; the server is
// assembled by package api/server.
func serveCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pemba serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen       = fs.String("listen", "127.0.0.1:50051", "gRPC address")
		storeKind    = fs.String("datastore", "pebble", "datastore: pebble (embedded, in -data-dir), postgres (at -datastore-uri) or memory (nothing persisted)")
		storeURI     = fs.String("datastore-uri", "", "postgres: connection `URI` (run 'pemba datastore migrate' on it first)")
		replicas     listFlag
		dataDir      = fs.String("data-dir", "./data", "pebble data directory")
		gcWindow     = fs.Duration("gc-window", 24*time.Hour, "how long old revisions stay readable (at_exact_snapshot, Watch resumption)")
		auditKeep    = fs.Duration("audit-retention", 0, "how long audit log entries are kept, independent of -gc-window (0: forever); GC prunes older ones and keeps the chain verifiable")
		keysFile     = fs.String("keys-file", "", "preshared keys: YAML with each key's scopes, tenant and limits, or one \"name secret\" per line (every scope); the name is the caller in logs, metrics and writes; read again on SIGHUP")
		noAuth       = fs.Bool("insecure-no-auth", false, "serve without authentication on a non-loopback address (on loopback it is the default when no -keys-file is given)")
		healthOpen   = fs.Bool("health-without-auth", true, "answer gRPC health checks without a key")
		reflect      = fs.Bool("reflection", false, "register gRPC reflection (for grpcurl)")
		timeout      = fs.Duration("request-timeout", server.DefaultRequestTimeout, "deadline of unary calls that come without one (negative: none)")
		tlsCert      = fs.String("tls-cert", "", "TLS certificate file (with -tls-key)")
		tlsKey       = fs.String("tls-key", "", "TLS private key file")
		httpAddr     = fs.String("http-listen", "", "serve the HTTP/JSON API at http://ADDR/v1/..., its OpenAPI document at /openapi.json and the AuthZEN Authorization API at /access/v1/..., with the same keys, TLS and limits as gRPC (empty: off)")
		metricsAddr  = fs.String("metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics and probes at /healthz and /readyz (empty: off)")
		maxRecv      = fs.Int("max-request-bytes", server.MaxRecvMsgBytes, "largest request message accepted; larger ones fail with RESOURCE_EXHAUSTED")
		maxConns     = fs.Int("max-connections", 0, "client connections open at once on the gRPC listener; more are closed on accept (0: no limit)")
		connStreams  = fs.Uint("max-streams-per-connection", server.DefaultMaxStreamsPerConnection, "concurrent calls and streams of one connection; more wait in the client")
		idleTimeout  = fs.Duration("idle-connection-timeout", 0, "close a client connection that has had no call for this long (0: never)")
		maxCalls     = fs.Int("max-concurrent-requests", 0, "overload: unary calls running at once, server-wide (0: no limit); the rest wait in a queue or are shed with RESOURCE_EXHAUSTED and a RetryInfo")
		maxQueued    = fs.Int("max-queued-requests", 0, "overload: calls that may wait for one of -max-concurrent-requests (0: none wait); a call whose deadline the queue cannot meet is shed at once")
		maxStreams   = fs.Int("max-concurrent-streams", server.DefaultMaxStreams, "overload: lookups, relationship reads, exports and imports running at once (0: no limit); the rest are shed with RESOURCE_EXHAUSTED")
		keyStreams   = fs.Int("max-streams-per-key", server.DefaultMaxStreamsPerKey, "overload: lookups, reads, exports and imports one key (or token subject) runs at once (0: no limit); more are refused with RESOURCE_EXHAUSTED")
		stallAfter   = fs.Duration("stream-stall-timeout", server.DefaultStreamStallTimeout, "end a lookup, read, export or other stream but Watch whose client has accepted no message for this long, with DEADLINE_EXCEEDED (0: never)")
		memBudget    = fs.Int64("memory-budget", engine.DefaultServeMemoryBudget, "bytes that the checks, expands and lookups in flight may hold together (an estimate); a request that would go past it is refused with RESOURCE_EXHAUSTED (0: no budget)")
		cacheBytes   = fs.Int64("cache-bytes", 0, "engine result cache size (0: default, negative: disabled)")
		compactAfter = fs.Int64("compact-after-import", engine.DefaultCompactAfterImport, "compact the Pebble store in the background after imports of at least this many relationships (and a quarter of the store) since the last compaction, once the nested-group index is rebuilt; negative: never")
		nestedMemory = fs.Int64("nested-memory-bytes", engine.DefaultNestedMemoryBytes, "bytes of memory for the nested-group index's closures, loaded for checks (Leopard's in-memory index; a closure that does not fit is read from the store); negative: none")
		nestedIndex  = fs.Bool("nested-index", true, "keep and read the nested-group index (transitive closure of self-nesting relations such as group#member, and of the tupleset of recursive arrows such as parent->manage); false walks them")
		blockCache   = fs.Int64("pebble-cache-bytes", 0, "pebble block cache size in bytes (0: a quarter of the memory available to the process, the machine's or its cgroup's limit, between 64 MiB and 8 GiB; 64 MiB where unknown)")
		maxDepth     = fs.Int("max-depth", 0, "most relations on one path of an answer, the one asked about included (0: the engine's default, 50); longer paths fail with MAX_DEPTH_EXCEEDED")
		quantum      = fs.Duration("quantum", 0, "how long minimize_latency reads share a revision (0: the engine's default, negative: never)")
		pprofOn      = fs.Bool("pprof", false, "also serve Go's profiles at http://ADDR/debug/pprof/ on -metrics-listen (CPU, heap, allocations, goroutines; unauthenticated, like the metrics)")
		gcPercent    = fs.Int("gc-percent", serveGCPercent, "Go GC target percentage (GOGC): the heap may grow this many percent over the live heap before a collection; the default trades memory for less GC CPU per request (when neither this flag nor its variable is given, a GOGC environment variable wins)")
	)
	var tokens tokenFlags
	tokens.register(fs)
	var dispatch dispatchFlags
	fs.StringVar(&dispatch.peers, "dispatch-peers", "", "cluster: comma-separated host:port of every node (this one included, the same list on each), all on one -datastore postgres; each permission is evaluated and cached by its owner node")
	fs.StringVar(&dispatch.self, "dispatch-self", "", "cluster: this node's entry in -dispatch-peers (default: the -listen address)")
	fs.DurationVar(&dispatch.timeout, "dispatch-timeout", cluster.DefaultTimeout, "cluster: how long to wait for a peer before evaluating its subproblem here")
	fs.StringVar(&dispatch.caFile, "dispatch-ca", "", "cluster: CA certificates (PEM) of the peers' TLS certificates (default: system roots; used with -tls-cert)")
	cli.Alias(fs, "store", "datastore")
	fs.Var(&replicas, "datastore-read-replica-uri", "postgres: a hot standby to read from when it has replayed the revision asked for (repeatable)")
	maxSchemaDefs := fs.Int("max-schema-definitions", engine.DefaultMaxSchemaDefinitions, "a schema write with more definitions is refused (RESOURCE_EXHAUSTED)")
	maxPermOps := fs.Int("max-permission-operators", engine.DefaultMaxPermissionOperators, "a schema write with a permission of more operators (+, &, -) is refused (RESOURCE_EXHAUSTED); at most "+fmt.Sprint(engine.DefaultMaxPermissionOperators)+", the parser's own limit")
	maxSchemaWork := fs.Int("max-schema-analysis-work", engine.DefaultMaxSchemaAnalysisWork, "a schema write whose evaluator set-up would take more units of work (one per relation, allowed type, expression node and arrow target; about 500 bytes each) is refused (RESOURCE_EXHAUSTED)")
	deprecated := fs.String("deprecated", "warn", "what a request that writes, checks or looks up a @deprecated relation or permission gets: warn (answered, with a pemba-warning response header, a log line and the pemba_engine_deprecated_uses_total metric) or refuse (FAILED_PRECONDITION)")
	logFormat := fs.String("log-format", "text", "log format: text (key=value lines) or json (one object per line); logs go to stderr")
	logLevel := fs.String("log-level", "info", "least severe level logged: debug, info, warn or error")
	otelTraces := fs.String("otel-traces", tracesOff, "OpenTelemetry tracing: off, otlp-grpc or otlp-http (an OTLP exporter configured by the standard OTEL_* environment variables: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME...); W3C trace context is taken from callers and sent to cluster peers, and log lines of traced calls carry trace_id and span_id")
	accessLog := fs.Bool("access-log", false, "log every call at info level: method, caller, code, duration, request id (at debug level without it)")
	shutdownGrace := fs.Duration("shutdown-grace", server.DefaultStopGrace, "on SIGTERM or SIGINT, how long calls in flight may finish before they are cut (Watch streams end at once, resumable)")
	playgroundOn := fs.Bool("playground", false, "serve the schema playground at /playground/ on -http-listen (a loopback address, unless -playground-public); it evaluates against a throwaway in-memory store per request, never the server's data")
	playgroundPublic := fs.Bool("playground-public", false, "allow -playground on an -http-listen address that other hosts can reach (the playground asks for no key)")
	if code := parseFlags(fs, "pemba serve [flags]", args, stdout, stderr); code >= 0 {
		return code
	}
	if err := flagsFromEnv(fs); err != nil {
		fmt.Fprintf(stderr, "pemba serve: %v\n", err)
		return 2
	}
	if *maxRecv <= 0 {
		fmt.Fprintf(stderr, "pemba serve: -max-request-bytes must be positive, not %d\n", *maxRecv)
		return 2
	}
	for _, l := range []struct {
		name string
		v    int
	}{{"max-schema-definitions", *maxSchemaDefs}, {"max-permission-operators", *maxPermOps}, {"max-schema-analysis-work", *maxSchemaWork}} {
		if l.v <= 0 {
			fmt.Fprintf(stderr, "pemba serve: -%s must be positive, not %d\n", l.name, l.v)
			return 2
		}
	}
	if *auditKeep < 0 {
		fmt.Fprintf(stderr, "pemba serve: -audit-retention must not be negative, not %v\n", *auditKeep)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pemba serve: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(stderr, "pemba serve: -tls-cert and -tls-key go together: give both the certificate (PEM, with its chain) and its private key (PEM)")
		return 2
	}
	deprecation, err := engine.ParseDeprecationPolicy(*deprecated)
	if err != nil {
		fmt.Fprintf(stderr, "pemba serve: -deprecated: want warn or refuse, not %q\n", *deprecated)
		return 2
	}
	if !validTraces(*otelTraces) {
		fmt.Fprintf(stderr, "pemba serve: -otel-traces: want off, otlp-grpc or otlp-http, not %q\n", *otelTraces)
		return 2
	}
	if *pprofOn && *metricsAddr == "" {
		fmt.Fprintln(stderr, "pemba serve: -pprof needs -metrics-listen")
		return 2
	}
	if *playgroundOn && *httpAddr == "" {
		fmt.Fprintln(stderr, "pemba serve: -playground needs -http-listen")
		return 2
	}
	if *playgroundOn && !*playgroundPublic && !cli.IsLoopback(*httpAddr) {
		fmt.Fprintf(stderr, "pemba serve: -playground: %s is reachable from other hosts; give -playground-public to serve the playground there\n", *httpAddr)
		return 2
	}
	if setGCPercent(fs, os.Getenv("GOGC")) {
		debug.SetGCPercent(*gcPercent)
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "pemba serve: %v\n", err)
		return 2
	}
	if *shutdownGrace <= 0 {
		fmt.Fprintf(stderr, "pemba serve: -shutdown-grace must be positive, not %v\n", *shutdownGrace)
		return 2
	}
	{
		info, _ := debug.ReadBuildInfo()
		v, commit, goVersion := buildVersion(version, info)
		log.Info("pemba starting", "version", v, "commit", commit, "go", goVersion)
	}
	fail := func(err error) int {
		log.Error("pemba serve", "err", err)
		return 1
	}
	var tracing server.Tracing
	if tp, err := newTracerProvider(ctx, *otelTraces, version); err != nil {
		return fail(err)
	} else if tp != nil {
		defer shutdownTracing(tp, log)
		tracing.TracerProvider = tp
		dispatch.dialOptions = tracing.DialOptions()
		log.Info("tracing on", "exporter", *otelTraces)
	}

	verifier, err := tokens.verifier(log)
	if err != nil {
		fmt.Fprintf(stderr, "pemba serve: %v\n", err)
		return 2
	}
	var keys []server.Key
	if *keysFile != "" {
		if keys, err = server.ReadKeysFile(*keysFile, log); err != nil {
			return fail(err)
		}
	}
	switch {
	case *keysFile != "" || verifier != nil:
	case *noAuth:
	case cli.IsLoopback(*listen) && (*httpAddr == "" || cli.IsLoopback(*httpAddr)):
		log.Warn("serving without authentication on a loopback address; give -keys-file to require keys", "listen", *listen)
	default:
		addr := *listen
		if cli.IsLoopback(addr) {
			addr = *httpAddr
		}
		fmt.Fprintf(stderr, "pemba serve: %s is reachable from other hosts: give -keys-file or -token-issuer, or -insecure-no-auth to serve without authentication\n", addr)
		return 2
	}
	var tlsConf *tls.Config
	if *tlsCert != "" || *tlsKey != "" {
		var err error
		if tlsConf, err = server.TLSConfigFromFiles(*tlsCert, *tlsKey); err != nil {
			return fail(fmt.Errorf("-tls-cert %s, -tls-key %s: %w", *tlsCert, *tlsKey, err))
		}
	}

	if *blockCache == 0 && *storeKind == "pebble" {
		*blockCache = serveBlockCache(sysmem.Limit())
		log.Info("pebble block cache sized by memory", "bytes", *blockCache)
	}
	st, err := engine.OpenStore(ctx, engine.StoreOptions{
		Kind: *storeKind, Dir: *dataDir, URI: *storeURI, GCWindow: *gcWindow, Logger: log, AuditRetention: *auditKeep,
		Postgres: engine.PostgresOptions{ReadReplicas: replicas},
		Pebble:   engine.PebbleOptions{CacheSize: *blockCache},
	})
	if errors.Is(err, engine.ErrStoreUsage) {
		fmt.Fprintf(stderr, "pemba serve: %v\n", err)
		return 2
	}
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	router, err := dispatch.router(*listen, *storeKind, engine.FingerprintOf(st), keys, *tlsCert != "", log)
	if err != nil {
		return fail(err)
	}
	eopts := engine.Options{Logger: log, CacheBytes: *cacheBytes, MaxDepth: *maxDepth, Quantum: *quantum, Warn: server.Warn, Deprecation: deprecation,
		TracerProvider: tracing.TracerProvider,
		Limits: engine.Limits{MaxSchemaDefinitions: *maxSchemaDefs, MaxPermissionOperators: *maxPermOps, MaxSchemaAnalysisWork: *maxSchemaWork,
			MemoryBudget: *memBudget},
		NoNestedIndex: !*nestedIndex, CompactAfterImport: *compactAfter, NestedMemoryBytes: *nestedMemory}
	reg := server.NewRegistry()
	if router != nil {
		defer router.Close()
		eopts.Router = router
		reg.MustRegister(router.Collector())
		log.Info("cluster dispatch on", "peers", dispatch.peers, "self", cmp.Or(dispatch.self, *listen))
	}
	eng, err := engine.Open(ctx, st, eopts)
	if err != nil {
		return fail(err)
	}
	defer eng.Close()

	srv, err := server.New(eng, server.Config{
		Keys: keys, Tokens: verifier, HealthWithoutAuth: *healthOpen, Reflection: *reflect, RequestTimeout: *timeout,
		Registerer: reg, Logger: log, TLS: tlsConf, MaxRecvMsgBytes: *maxRecv, AccessLog: *accessLog,
		Connections: server.Connections{Max: *maxConns, MaxStreams: uint32(min(*connStreams, math.MaxUint32)), IdleTimeout: *idleTimeout},
		Tracing:     tracing,
		Overload: server.Overload{MaxConcurrent: *maxCalls, MaxQueue: *maxQueued, MaxStreams: *maxStreams,
			MaxStreamsPerKey: *keyStreams, StreamStallTimeout: *stallAfter},
	})
	if err != nil {
		return fail(err)
	}
	// SpiceDB's authzed.api.v1 on the same listener (docs/compat.md).
	authzed.Register(srv, eng)
	var httpHandlers map[string]http.Handler
	if *httpAddr != "" {
		if httpHandlers, err = authzenHandlers(eng, srv, *maxRecv, log); err != nil {
			return fail(err)
		}
	}
	if *playgroundOn {
		pg := playground.New(playground.Options{})
		httpHandlers[playground.Path] = pg
		httpHandlers[playground.Path+"/"] = pg
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	stopReload := reloadKeysOnHUP(ctx, srv, *keysFile, log)
	defer stopReload()
	stopHook := context.AfterFunc(ctx, func() { log.Info("shutting down", "grace", *shutdownGrace) })
	defer stopHook()
	err = srv.Run(ctx, server.RunConfig{
		Listen: *listen, MetricsListen: *metricsAddr, Gatherer: reg, Pprof: *pprofOn,
		HTTPListen: *httpAddr, HTTPHandlers: httpHandlers, StopGrace: *shutdownGrace,
		HTTPListening: func(addr net.Addr) {
			log.Info("serving HTTP/JSON", "url", fmt.Sprintf("%s://%s/v1/", scheme, addr), "openapi", fmt.Sprintf("%s://%s/openapi.json", scheme, addr), "tls", tlsConf != nil)
			log.Info("serving AuthZEN", "url", fmt.Sprintf("%s://%s/access/v1/", scheme, addr), "metadata", fmt.Sprintf("%s://%s/.well-known/authzen-configuration", scheme, addr))
			if *playgroundOn {
				log.Info("serving the playground", "url", fmt.Sprintf("%s://%s%s/", scheme, addr, playground.Path))
			}
		},
		Listening: func(grpcAddr, metricsAddr net.Addr) {
			if metricsAddr != nil {
				log.Info("serving metrics", "url", fmt.Sprintf("http://%s/metrics", metricsAddr))
			}
			log.Info("serving gRPC", "addr", grpcAddr.String(), "datastore", st.Kind(), "authentication", len(keys) > 0 || verifier != nil, "keys", len(keys), "identity_tokens", verifier != nil, "tls", tlsConf != nil)
		},
	})
	if err != nil {
		return fail(err)
	}
	log.Info("stopped")
	return 0
}

// newLogger is serve's logger: slog to w, as text or JSON, from level up.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(server.LogHandler(slog.NewTextHandler(w, opts))), nil
	case "json":
		return slog.New(server.LogHandler(slog.NewJSONHandler(w, opts))), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

// serveBlockCache is serve's default Pebble block cache for a process
// with limit bytes of memory (known when ok): a quarter of it, within
// [64 MiB, 8 GiB]. Uncached checks on stores larger than the cache are
// bound by its misses (docs/benchmarks.md: enterprise large, 9.2 million
// relationships, 105-119 µs of CPU per check with 64 MiB, 43-47 µs with
// 512 MiB), and the cache holds memory only as blocks are read.
func serveBlockCache(limit int64, ok bool) int64 {
	const lo, hi = 64 << 20, 8 << 30
	if !ok {
		return lo
	}
	return min(max(limit/4, lo), hi)
}

// serveGCPercent is serve's default GC target: with Go's 100, collections
// (marking a live heap held mostly by the caches) were 20-30% of the
// server's CPU under a check load; at 400 they are about a quarter as
// frequent, for a heap up to 5x the live one.
const serveGCPercent = 400

// setGCPercent says whether -gc-percent applies: when given, or when GOGC
// (gogc) is not set.
func setGCPercent(fs *flag.FlagSet, gogc string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "gc-percent" })
	return given || gogc == ""
}

// flagsFromEnv sets every flag not given on the command line from its
// environment variable, if set: -data-dir from PEMBA_DATA_DIR, -listen from
// PEMBA_LISTEN, and so on (upper case, "-" becomes "_").
func flagsFromEnv(fs *flag.FlagSet) error {
	// By value, not name: an alias (-store) and its flag (-datastore) share
	// one, so either on the command line hides both variables.
	given := map[flag.Value]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Value] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Value] || err != nil {
			return
		}
		name := "PEMBA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment variable %s=%q is not a valid -%s: %s", name, v, f.Name, flagFormat(f, e))
			}
		}
	})
	return err
}

// flagFormat says what a flag's value must look like, for an error about
// a value that did not parse: the flag package's own errors for its basic
// types say only "parse error".
func flagFormat(f *flag.Flag, err error) string {
	var want string
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case time.Duration:
			want = "want a duration such as 30s, 5m or 1h30m"
		case bool:
			want = "want true or false"
		case int, int64, uint, uint64:
			want = "want a whole number"
		case float64:
			want = "want a number"
		}
	}
	switch {
	case want == "":
		return err.Error()
	case strings.Contains(err.Error(), "out of range"):
		return want + " (this one is out of range)"
	}
	return want
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *listFlag) Set(v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	*l = append(*l, v)
	return nil
}
