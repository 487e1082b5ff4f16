package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine"
)

// Options configure a whole benchmark: data set, target and run.
type Options struct {
	Workload string
	Scale    workload.Scale
	Seed     uint64
	// Mode is "inprocess" (default) or "grpc".
	Mode string
	// API is the gRPC API grpc mode speaks: "pemba" (default, pemba.v1)
	// or "spicedb" (authzed.api.v1, through authzed-go's client: SpiceDB
	// itself, or pemba serve's compatible API).
	API string
	// Addr and Key locate and authenticate to the server in grpc mode.
	Addr string
	// Conns is how many connections grpc mode spreads its calls over
	// (0: DefaultGRPCConns).
	Conns int
	Key   string
	// TLS, when set, secures grpc mode's connections (nil: plaintext).
	TLS *tls.Config
	// SkipLoad, in grpc mode and for the postgres store, uses the data
	// the server or database already holds (loaded by an earlier run with
	// the same workload, scale and seed).
	SkipLoad bool
	// Store is "pebble" (default), "postgres" (at DatastoreURI) or
	// "memory".
	Store string
	// DatastoreURI is the PostgreSQL connection URI of the postgres store.
	// A database that already holds data is refused unless SkipLoad says
	// it holds this data set.
	DatastoreURI string
	// DataDir holds the Pebble store (under store/) and a record of what
	// was loaded (bench.json). A directory already loaded with the same
	// workload, scale and seed is reused without loading; empty means a
	// temporary directory, removed afterwards.
	DataDir     string
	Consistency Consistency
	// Engine and Pebble configure the in-process engine and store.
	Engine engine.Options
	Pebble engine.PebbleOptions
	Run    RunConfig
}

// dataset is the record bench.json keeps of a loaded data directory.
type dataset struct {
	Workload      string  `json:"workload"`
	Scale         string  `json:"scale"`
	Seed          uint64  `json:"seed"`
	Relationships int     `json:"relationships"`
	LoadSeconds   float64 `json:"load_seconds"`
	DiskBytes     int64   `json:"disk_bytes"`
	// The load's CPU and the nested-group index's rebuild after it (see
	// LoadInfo).
	CPUSeconds      float64 `json:"cpu_seconds,omitempty"`
	IndexSeconds    float64 `json:"index_seconds,omitempty"`
	IndexCPUSeconds float64 `json:"index_cpu_seconds,omitempty"`
	// The compaction after them (LoadInfo.CompactSeconds).
	CompactSeconds    float64 `json:"compact_seconds,omitempty"`
	CompactCPUSeconds float64 `json:"compact_cpu_seconds,omitempty"`
}

const datasetFile = "bench.json"

// Execute loads (or reuses) the data set, runs the benchmark and returns
// its report.
func Execute(ctx context.Context, o Options) (rep *Report, err error) {
	wl, err := workload.New(o.Workload, o.Scale, o.Seed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	switch o.Mode {
	case "", "inprocess":
		if o.API != "" && o.API != "pemba" {
			return nil, fmt.Errorf("%w: -api %s needs -mode grpc", ErrUsage, o.API)
		}
	case "grpc":
		return executeGRPC(ctx, o, wl)
	default:
		return nil, fmt.Errorf("%w: mode %q (want inprocess or grpc)", ErrUsage, o.Mode)
	}
	if o.Store == "" {
		o.Store = "pebble"
	}
	dir := o.DataDir
	if o.Store == "pebble" && dir == "" {
		if dir, err = os.MkdirTemp("", "pemba-bench-"); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	}
	var prev *dataset
	storeDir := ""
	if o.Store == "pebble" {
		storeDir = filepath.Join(dir, "store")
		if prev, err = readDataset(dir, storeDir, wl); err != nil {
			return nil, err
		}
	}
	eo := o.Engine
	if eo.CompactAfterImport == 0 {
		// The load compacts once it is done, and times it (below), not
		// in the background during the run.
		eo.CompactAfterImport = -1
	}
	t, err := NewInProcess(ctx, InProcessOptions{Store: o.Store, Dir: storeDir, URI: o.DatastoreURI, Consistency: o.Consistency, Engine: eo, Pebble: o.Pebble})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.Close()) }()
	if o.Store == "postgres" {
		// A database keeps no record of what was loaded: an empty one is
		// loaded, a used one only reused when the caller says so.
		head, err := t.Head(ctx)
		if err != nil {
			return nil, err
		}
		switch {
		case o.SkipLoad && head == 0:
			return nil, fmt.Errorf("%w: -skip-load, but the database holds nothing", ErrDataDir)
		case o.SkipLoad:
			prev = &dataset{}
		case head != 0:
			return nil, fmt.Errorf("%w: the database already holds data (head revision %d): point -datastore-uri at an empty database, or give -skip-load if it holds %s/%s seed %d",
				ErrDataDir, head, wl.Name(), wl.Scale(), wl.Seed())
		}
	}

	info := LoadInfo{Reused: prev != nil}
	if prev != nil {
		info.Relationships, info.Seconds, info.DiskBytes = prev.Relationships, prev.LoadSeconds, prev.DiskBytes
		info.CPUSeconds, info.IndexSeconds, info.IndexCPUSeconds = prev.CPUSeconds, prev.IndexSeconds, prev.IndexCPUSeconds
		info.CompactSeconds, info.CompactCPUSeconds = prev.CompactSeconds, prev.CompactCPUSeconds
	} else {
		u0, err := readUsage()
		if err != nil {
			return nil, err
		}
		lr, err := Load(ctx, t, wl, o.Run.Progress)
		if err != nil {
			return nil, err
		}
		info.Relationships, info.Seconds = lr.Relationships, lr.Elapsed.Seconds()
		// The import returns before the nested-group index is rebuilt:
		// wait for it, so that the run measures the index, and report
		// how long it took.
		u1, err := readUsage()
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if err := t.e.WaitNestedIndex(ctx); err != nil {
			return nil, fmt.Errorf("bench: nested-group index: %w", err)
		}
		wait := time.Since(start)
		u2, err := readUsage()
		if err != nil {
			return nil, err
		}
		info.CPUSeconds = (u1.user + u1.sys - u0.user - u0.sys).Seconds()
		if t.e.Stats().NestedIndexRebuilds > 0 {
			info.IndexSeconds = wait.Seconds()
			info.IndexCPUSeconds = (u2.user + u2.sys - u1.user - u1.sys).Seconds()
		}
		// The store's count of its statistics (saved in the store) goes
		// before the compaction, so that no write of the load's is left
		// outside the bottom level; the load left its rows (and the
		// index's) in overlapping levels that background compactions
		// would still be merging during the run, and that every uncached
		// read seeks in turn: compact once, as an operator would after a
		// bulk import.
		if err := t.e.SettleStatistics(ctx); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		u2, err = readUsage()
		if err != nil {
			return nil, err
		}
		start = time.Now()
		if err := t.e.CompactStore(ctx); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		compact := time.Since(start)
		u3, err := readUsage()
		if err != nil {
			return nil, err
		}
		if o.Store == "pebble" {
			info.CompactSeconds = compact.Seconds()
			info.CompactCPUSeconds = (u3.user + u3.sys - u2.user - u2.sys).Seconds()
		}
		if storeDir != "" {
			if info.DiskBytes, err = dirSize(storeDir); err != nil {
				return nil, err
			}
			if err := writeDataset(dir, dataset{
				Workload: wl.Name(), Scale: wl.Scale().String(), Seed: wl.Seed(),
				Relationships: info.Relationships, LoadSeconds: info.Seconds, DiskBytes: info.DiskBytes,
				CPUSeconds: info.CPUSeconds, IndexSeconds: info.IndexSeconds, IndexCPUSeconds: info.IndexCPUSeconds,
				CompactSeconds: info.CompactSeconds, CompactCPUSeconds: info.CompactCPUSeconds,
			}); err != nil {
				return nil, err
			}
		}
	}
	if info.Seconds > 0 {
		info.PerSecond = float64(info.Relationships) / info.Seconds
	}
	if info.Relationships > 0 {
		info.DiskBytesPerMillion = float64(info.DiskBytes) / float64(info.Relationships) * 1e6
	}
	// The store's background count of its statistics (at open without a
	// saved count, after the load's import) would otherwise run inside
	// the measured phase and be charged to its operations.
	if err := t.e.SettleStatistics(ctx); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	rep, err = Measure(ctx, t, wl, o.Run)
	if rep != nil {
		rep.Target = "inprocess/" + o.Store
		rep.Consistency = o.Consistency.String()
		if storeDir != "" {
			size, serr := dirSize(storeDir)
			err = errors.Join(err, serr)
			info.DiskBytesAfterRun = size
		}
		rep.Load = info
	}
	return rep, err
}

// executeGRPC runs the benchmark against a server; the server owns the
// data directory, so there is no disk size and no reuse record.
func executeGRPC(ctx context.Context, o Options, wl workload.Workload) (rep *Report, err error) {
	gopts := GRPCOptions{Addr: o.Addr, Key: o.Key, Consistency: o.Consistency, TLS: o.TLS, Conns: o.Conns}
	var t Target
	target := "grpc/"
	switch o.API {
	case "", "pemba":
		t, err = NewGRPC(gopts)
	case "spicedb":
		t, err = NewSpiceDB(gopts)
		target = "grpc-spicedb/"
	default:
		err = fmt.Errorf("%w: api %q (want pemba or spicedb)", ErrUsage, o.API)
	}
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.Close()) }()
	info := LoadInfo{Reused: o.SkipLoad}
	if !o.SkipLoad {
		lr, err := Load(ctx, t, wl, o.Run.Progress)
		if err != nil {
			return nil, err
		}
		info.Relationships, info.Seconds = lr.Relationships, lr.Elapsed.Seconds()
		info.PerSecond = float64(lr.Relationships) / lr.Elapsed.Seconds()
	}
	rep, err = Measure(ctx, t, wl, o.Run)
	if rep != nil {
		rep.Target = target + o.Addr
		rep.Consistency = o.Consistency.String()
		rep.Load = info
	}
	return rep, err
}

// readDataset returns the record of a loaded data directory matching wl,
// nil for a directory with nothing loaded, and an error for one that holds
// another data set or an unfinished load.
func readDataset(dir, storeDir string, wl workload.Workload) (*dataset, error) {
	b, err := os.ReadFile(filepath.Join(dir, datasetFile))
	if errors.Is(err, fs.ErrNotExist) {
		if entries, _ := os.ReadDir(storeDir); len(entries) > 0 {
			return nil, fmt.Errorf("%w: %s has a store but no %s (an interrupted load?); remove it", ErrDataDir, dir, datasetFile)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var d dataset
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", filepath.Join(dir, datasetFile), err)
	}
	if d.Workload != wl.Name() || d.Scale != wl.Scale().String() || d.Seed != wl.Seed() {
		return nil, fmt.Errorf("%w: %s holds %s/%s seed %d, not %s/%s seed %d", ErrDataDir, dir,
			d.Workload, d.Scale, d.Seed, wl.Name(), wl.Scale(), wl.Seed())
	}
	return &d, nil
}

func writeDataset(dir string, d dataset) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, datasetFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// Print writes rep as a table or, when asJSON, as JSON.
func Print(w io.Writer, rep *Report, asJSON bool) error {
	if asJSON {
		return rep.WriteJSON(w)
	}
	return rep.WriteTable(w)
}
