package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/bench"
	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/cmd/pemba/internal/cli"
)

// benchCommand is `pemba bench run|compare`: flags only; the work is done
// by package bench.
func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: pemba bench run [flags] | pemba bench compare a.json b.json"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	subs := map[string]func() int{
		"run":     func() int { return benchRun(ctx, args[1:], stdout, stderr) },
		"compare": func() int { return benchCompare(args[1:], stdout, stderr) },
	}
	if args[0] == cli.ListSubcommands {
		listSubcommands(stdout, subs)
		return 0
	}
	if sub, ok := subs[args[0]]; ok {
		return sub()
	}
	fmt.Fprintf(stderr, "pemba bench: unknown subcommand %q (want run or compare)\n", args[0])
	return 2
}

func benchRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pemba bench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		name        = fs.String("workload", "enterprise", "workload: "+strings.Join(workload.Names(), ", "))
		scale       = fs.String("scale", "small", "data set scale: small (~10k), medium (~1M), large (~10M relationships)")
		seed        = fs.Uint64("seed", 1, "seed of the data set and requests")
		mode        = fs.String("mode", "inprocess", "target: inprocess, or grpc (a running pemba serve)")
		addr        = fs.String("address", "127.0.0.1:50051", "grpc mode: server address, or the nodes of a cluster separated by commas (connections go to each in turn)")
		api         = fs.String("api", "pemba", "grpc mode: the API to drive: pemba (pemba.v1) or spicedb (authzed.api.v1 through authzed-go's client: SpiceDB, or pemba serve's SpiceDB-compatible API)")
		token       = fs.String("token", "", "grpc mode: preshared key, sent as a bearer token (env PEMBA_TOKEN)")
		keyFile     = fs.String("key-file", "", "grpc mode: file holding the preshared key (instead of -token)")
		useTLS      = fs.Bool("tls", false, "grpc mode: connect with TLS, the server verified with the system's roots (default: plaintext)")
		tlsCA       = fs.String("tls-ca", "", "grpc mode: connect with TLS, the server verified with the CA certificates in this PEM `file`")
		skipLoad    = fs.Bool("skip-load", false, "grpc mode, or -datastore postgres: the server or database already holds this data set")
		storeKind   = fs.String("datastore", "pebble", "in-process datastore: pebble (in -data-dir), postgres (at -datastore-uri) or memory")
		storeURI    = fs.String("datastore-uri", os.Getenv("PEMBA_DATASTORE_URI"), "postgres: connection URI of an empty database, migrated if needed (default: $PEMBA_DATASTORE_URI)")
		dataDir     = fs.String("data-dir", "", "data directory, reused if already loaded with the same workload (default: temporary)")
		concurrency = fs.Int("concurrency", 4, "workers")
		duration    = fs.Duration("duration", 10*time.Second, "measured phase duration")
		ops         = fs.Int64("ops", 0, "stop after this many operations instead of -duration")
		warmup      = fs.Duration("warmup", 2*time.Second, "warm-up duration (not measured)")
		rate        = fs.Float64("rate", 0, "open loop: requests per second (0: closed loop)")
		mix         = fs.String("mix", "check=90,lookup-resources=5,write=5", "operation weights")
		consistency = fs.String("consistency", "minimize_latency", "minimize_latency or fully_consistent")
		cacheBytes  = fs.Int64("cache-bytes", 0, "engine result cache size (0: default, negative: disabled)")
		nestedIndex = fs.Bool("nested-index", true, "in-process engine: keep and read the nested-group index (false: walk nested groups and recursive arrows)")
		blockCache  = fs.Int64("pebble-cache-bytes", 0, "pebble block cache size (0: the store's default)")
		nestedMem   = fs.Int64("nested-memory-bytes", 0, "in-process engine: memory for the nested-group index's closures, loaded for checks (0: the engine's default, negative: none; read from the store)")
		output      = fs.String("output", "table", "table or json")
		cpuProfile  = fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		mutexProf   = fs.String("mutexprofile", "", "write a profile of lock contention (sync.Mutex and RWMutex holders that made others wait; one event in 10 sampled) over the whole run to this file")
		blockProf   = fs.String("blockprofile", "", "write a profile of goroutine blocking (locks, channels, select; events over 10µs sampled) over the whole run to this file")
		quiet       = fs.Bool("quiet", false, "no progress lines on stderr")
		conns       = fs.Int("conns", bench.DefaultGRPCConns, "grpc mode: connections the calls are spread over, round robin (one HTTP/2 connection serializes every frame through one reader and one writer)")
		serverMet   = fs.String("server-metrics", "", "grpc mode: the server's Prometheus metrics `URL` (pemba serve -metrics-listen: http://HOST:PORT/metrics); its CPU per operation is reported beside the client's")
		htmlFile    = fs.String("html", "", "also write a self-contained HTML report (charts over time, latency distribution, tables) to this `file`")
		pngDir      = fs.String("png-dir", "", "also save the report's charts as PNG files in this `directory` (throughput.png, latency.png, cdf.png)")
	)
	cli.Alias(fs, "store", "datastore")
	cli.Alias(fs, "addr", "address")
	cli.Hide(fs, "key-file")
	if code := parseFlags(fs, "pemba bench run [flags]", args, stdout, stderr); code >= 0 {
		return code
	}
	sc, err := workload.ParseScale(*scale)
	if err != nil {
		benchError(stderr, err)
		return 2
	}
	m, err := bench.ParseMix(*mix)
	if err != nil {
		benchError(stderr, err)
		return 2
	}
	c, err := bench.ParseConsistency(*consistency)
	if err != nil {
		benchError(stderr, err)
		return 2
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "pemba bench: -output %q (want table or json)\n", *output)
		return 2
	}
	key := *token
	if key == "" {
		key = os.Getenv("PEMBA_TOKEN")
	}
	if *keyFile != "" {
		if *token != "" {
			fmt.Fprintln(stderr, "pemba bench: give -token or -key-file, not both")
			return 2
		}
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			benchError(stderr, err)
			return 2
		}
		key = strings.TrimSpace(string(b))
	}
	var tlsConf *tls.Config
	if *useTLS || *tlsCA != "" {
		if tlsConf, err = cli.ClientTLS("-tls-ca", *tlsCA); err != nil {
			benchError(stderr, err)
			return 2
		}
	}
	o := bench.Options{
		Workload: *name, Scale: sc, Seed: *seed, Mode: *mode, Store: *storeKind, DataDir: *dataDir, DatastoreURI: *storeURI,
		API: *api, Addr: *addr, Conns: *conns, Key: key, TLS: tlsConf, SkipLoad: *skipLoad,
		Consistency: c,
		Run: bench.RunConfig{
			Concurrency: *concurrency, Duration: *duration, Ops: *ops, WarmupDuration: *warmup,
			Rate: *rate, Mix: m, Progress: stderr, ServerMetrics: *serverMet,
		},
	}
	if *ops > 0 {
		o.Run.Duration = 0
	}
	if *quiet {
		o.Run.Progress = nil
	}
	o.Engine.CacheBytes = *cacheBytes
	o.Engine.NoNestedIndex = !*nestedIndex
	o.Engine.NestedMemoryBytes = *nestedMem
	o.Pebble.CacheSize = *blockCache
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			benchError(stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			benchError(stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if *mutexProf != "" {
		runtime.SetMutexProfileFraction(10)
		defer writeProfile("mutex", *mutexProf, stderr)
	}
	if *blockProf != "" {
		runtime.SetBlockProfileRate(10_000)
		defer writeProfile("block", *blockProf, stderr)
	}
	rep, err := bench.Execute(ctx, o)
	if rep != nil {
		rep.Command = commandLine("pemba bench run", args)
		if perr := bench.Print(stdout, rep, *output == "json"); perr != nil {
			err = errors.Join(err, perr)
		}
		err = errors.Join(err, writeCharts(*htmlFile, *pngDir, []*bench.Report{rep}, nil, stderr))
	}
	if err != nil {
		benchError(stderr, err)
		if errors.Is(err, bench.ErrUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func benchCompare(args []string, stdout, stderr io.Writer) int {
	const usage = "pemba bench compare [-html FILE] [-png-dir DIR] [-labels A,B,...] a.json b.json [more.json ...]"
	fs := flag.NewFlagSet("pemba bench compare", flag.ContinueOnError)
	var (
		htmlFile = fs.String("html", "", "write a self-contained HTML report overlaying the runs to this `file` (then one or more reports may be given)")
		pngDir   = fs.String("png-dir", "", "save the overlaid charts as PNG files in this `directory`")
		labels   = fs.String("labels", "", "comma-separated names of the runs in the charts (default: target and start time)")
	)
	if code := parseFlags(fs, usage, args, stdout, stderr); code >= 0 {
		return code
	}
	files := fs.Args()
	charts := *htmlFile != "" || *pngDir != ""
	if len(files) == 0 || (!charts && len(files) != 2) {
		fmt.Fprintf(stderr, "pemba bench compare: give two reports (or, with -html or -png-dir, one or more)\nusage: %s\n", usage)
		return 2
	}
	runs := make([]*bench.Report, len(files))
	for i, f := range files {
		r, err := bench.ReadReport(f)
		if err != nil {
			benchError(stderr, err)
			return 1
		}
		runs[i] = r
	}
	var names []string
	if *labels != "" {
		names = strings.Split(*labels, ",")
		if len(names) != len(runs) {
			fmt.Fprintf(stderr, "pemba bench compare: -labels gives %d names for %d reports\n", len(names), len(runs))
			return 2
		}
	}
	if len(runs) == 2 {
		if err := bench.Compare(stdout, runs[0], runs[1]); err != nil {
			benchError(stderr, err)
			return 1
		}
	}
	if err := writeCharts(*htmlFile, *pngDir, runs, names, stderr); err != nil {
		benchError(stderr, err)
		return 1
	}
	return 0
}

// writeCharts writes the HTML report and the PNG charts asked for, saying
// where on stderr.
func writeCharts(htmlFile, pngDir string, runs []*bench.Report, labels []string, stderr io.Writer) error {
	if htmlFile != "" {
		if err := bench.WriteHTMLFile(htmlFile, runs, labels); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "HTML report written to %s\n", htmlFile)
	}
	if pngDir != "" {
		if err := os.MkdirAll(pngDir, 0o755); err != nil {
			return err
		}
		paths, err := bench.WritePNGs(pngDir, "", runs, labels)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "charts written: %s\n", strings.Join(paths, " "))
	}
	return nil
}

// commandLine is the command as a shell would take it back: name, then
// each argument, quoted where it holds anything but plain characters.
// The values of secret flags (a token, a datastore URI with its
// password) are replaced by "REDACTED": reports are shared.
func commandLine(name string, args []string) string {
	parts := []string{name}
	secret := false
	for _, a := range args {
		flagName, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case secret:
			a, secret = "REDACTED", false
		case strings.HasPrefix(a, "-") && (flagName == "token" || flagName == "datastore-uri"):
			if hasValue {
				a = a[:strings.Index(a, "=")+1] + "REDACTED"
			} else {
				secret = true
			}
		}
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ':' || r == ',' || r == '=' ||
				r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// benchError prints err once prefixed "pemba bench:" (package bench's
// errors already start with "bench:").
func benchError(stderr io.Writer, err error) {
	fmt.Fprintln(stderr, "pemba bench:", strings.TrimPrefix(err.Error(), "bench: "))
}

// writeProfile writes the runtime profile name (mutex, block) to path,
// reporting a failure on stderr.
func writeProfile(name, path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup(name).WriteTo(f, 0)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		benchError(stderr, fmt.Errorf("%s profile: %w", name, err))
	}
}
