package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
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
		blockCache  = fs.Int64("pebble-cache-bytes", 0, "pebble block cache size (0: the store's default)")
		output      = fs.String("output", "table", "table or json")
		cpuProfile  = fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		quiet       = fs.Bool("quiet", false, "no progress lines on stderr")
	)
	cli.Alias(fs, "store", "datastore")
	cli.Alias(fs, "addr", "address")
	cli.Hide(fs, "key-file")
	if code := parseFlags(fs, "pemba bench run [flags]", args, stdout, stderr); code >= 0 {
		return code
	}
	sc, err := workload.ParseScale(*scale)
	if err != nil {
		fmt.Fprintln(stderr, "pemba bench:", err)
		return 2
	}
	m, err := bench.ParseMix(*mix)
	if err != nil {
		fmt.Fprintln(stderr, "pemba bench:", err)
		return 2
	}
	c, err := bench.ParseConsistency(*consistency)
	if err != nil {
		fmt.Fprintln(stderr, "pemba bench:", err)
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
			fmt.Fprintln(stderr, "pemba bench:", err)
			return 2
		}
		key = strings.TrimSpace(string(b))
	}
	var tlsConf *tls.Config
	if *useTLS || *tlsCA != "" {
		if tlsConf, err = cli.ClientTLS("-tls-ca", *tlsCA); err != nil {
			fmt.Fprintln(stderr, "pemba bench:", err)
			return 2
		}
	}
	o := bench.Options{
		Workload: *name, Scale: sc, Seed: *seed, Mode: *mode, Store: *storeKind, DataDir: *dataDir, DatastoreURI: *storeURI,
		API: *api, Addr: *addr, Key: key, TLS: tlsConf, SkipLoad: *skipLoad,
		Consistency: c,
		Run: bench.RunConfig{
			Concurrency: *concurrency, Duration: *duration, Ops: *ops, WarmupDuration: *warmup,
			Rate: *rate, Mix: m, Progress: stderr,
		},
	}
	if *ops > 0 {
		o.Run.Duration = 0
	}
	if *quiet {
		o.Run.Progress = nil
	}
	o.Engine.CacheBytes = *cacheBytes
	o.Pebble.CacheSize = *blockCache
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "pemba bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "pemba bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := bench.Execute(ctx, o)
	if rep != nil {
		if perr := bench.Print(stdout, rep, *output == "json"); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "pemba bench:", err)
		if errors.Is(err, bench.ErrUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func benchCompare(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: pemba bench compare a.json b.json"
	if len(args) > 0 && isHelp(args[len(args)-1]) {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	if len(args) != 2 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	a, err := bench.ReadReport(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "pemba bench:", err)
		return 1
	}
	b, err := bench.ReadReport(args[1])
	if err != nil {
		fmt.Fprintln(stderr, "pemba bench:", err)
		return 1
	}
	if err := bench.Compare(stdout, a, b); err != nil {
		fmt.Fprintln(stderr, "pemba bench:", err)
		return 1
	}
	return 0
}
