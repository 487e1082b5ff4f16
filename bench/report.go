package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pemba-authz/pemba/bench/histogram"
	"github.com/pemba-authz/pemba/bench/workload"
)

// ReportFormat is the version of the JSON report layout.
const ReportFormat = 1

// Report is the result of one run. It is written as JSON by WriteJSON and
// read back by ReadReport for Compare.
type Report struct {
	Format      int       `json:"format"`
	Started     time.Time `json:"started"`
	Workload    string    `json:"workload"`
	Scale       string    `json:"scale"`
	Seed        uint64    `json:"seed"`
	Target      string    `json:"target"` // e.g. "inprocess/pebble"
	Consistency string    `json:"consistency"`
	Concurrency int       `json:"concurrency"`
	// Rate is the open-loop arrival rate (0: closed loop).
	Rate float64 `json:"rate"`
	// Missed counts open-loop requests scheduled before the end of the
	// run that no worker was free to send: the target could not keep up,
	// and the percentiles understate its latency at that rate.
	Missed  int64    `json:"missed,omitempty"`
	Mix     string   `json:"mix"`
	Machine Machine  `json:"machine"`
	Load    LoadInfo `json:"load"`
	// ElapsedSeconds is the wall time of the measured phase.
	ElapsedSeconds float64    `json:"elapsed_seconds"`
	Ops            []OpReport `json:"ops"`
	Total          OpReport   `json:"total"`
	Cache          CacheInfo  `json:"cache"`
	// Plans counts, by plan, the planner's decisions that departed from
	// the top-down walk during the measured phase (in-process targets;
	// see pemba_engine_check_plans_total); absent when none did.
	Plans map[string]uint64 `json:"plans,omitempty"`
	// NestedMemory describes the nested-group index's closures held in
	// memory (in-process targets); absent when none was loaded.
	NestedMemory *NestedMemoryInfo `json:"nested_memory,omitempty"`
	CPU          CPUInfo           `json:"cpu"`
	// ServerCPU is the target server's CPU time during the measured phase
	// (with RunConfig.ServerMetrics; user and system together, as
	// process_cpu_seconds_total counts them, in UserSeconds).
	ServerCPU    *CPUInfo `json:"server_cpu,omitempty"`
	PeakRSSBytes int64    `json:"peak_rss_bytes"`
	// Samples are the first errors and unexpected answers, for diagnosis.
	Samples []string `json:"samples,omitempty"`
	// Slowest are the slowest requests of the measured phase, slowest first.
	Slowest []Slow `json:"slowest,omitempty"`
	// Timeline is the measured phase interval by interval (the HTML
	// report plots it).
	Timeline []Interval `json:"timeline,omitempty"`
	// Command is the command line that ran the benchmark, when the CLI
	// ran it.
	Command string `json:"command,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	// LoadAverage is /proc/loadavg when the run ended (Linux only): a
	// figure far above NumCPU means other processes competed for the CPU
	// and latencies are inflated; CPU per operation is less affected.
	LoadAverage string `json:"load_average,omitempty"`
}

// LoadInfo describes the data set and how it was loaded.
type LoadInfo struct {
	Relationships int     `json:"relationships"`
	Seconds       float64 `json:"seconds"`
	PerSecond     float64 `json:"per_second"`
	// Reused is true when the data directory was already loaded; the
	// load figures are then those recorded when it was.
	Reused bool `json:"reused"`
	// DiskBytes is the data directory's size after loading (0 in memory).
	DiskBytes           int64   `json:"disk_bytes"`
	DiskBytesPerMillion float64 `json:"disk_bytes_per_million"`
	// DiskBytesAfterRun is the directory's size when the run ended: the
	// store may not have flushed or compacted the import when DiskBytes
	// was taken.
	DiskBytesAfterRun int64 `json:"disk_bytes_after_run,omitempty"`
	// CPUSeconds is the process's CPU time during the load (in process:
	// the generator's, the import's and the store's background work).
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	// IndexSeconds is how long the engine's nested-group index took to
	// be ready after the import returned (its rebuild runs in the
	// background; the run starts once it is ready), and IndexCPUSeconds
	// the process's CPU time meanwhile; 0 when there was no rebuild or
	// over gRPC.
	IndexSeconds    float64 `json:"index_seconds,omitempty"`
	IndexCPUSeconds float64 `json:"index_cpu_seconds,omitempty"`
	// CompactSeconds is how long the compaction of the loaded store
	// took (in process, Pebble: Engine.CompactStore after the index is
	// ready; the disk sizes are measured after it), and
	// CompactCPUSeconds the process's CPU time meanwhile; 0 elsewhere.
	CompactSeconds    float64 `json:"compact_seconds,omitempty"`
	CompactCPUSeconds float64 `json:"compact_cpu_seconds,omitempty"`
}

// OpReport is the measurement of one operation (or of all, in Total).
type OpReport struct {
	Op         string  `json:"op"`
	Count      uint64  `json:"count"`
	Errors     uint64  `json:"errors"`
	Unexpected uint64  `json:"unexpected"`
	Throughput float64 `json:"throughput_per_second"`
	// MeanResults is the mean number of results of a lookup.
	MeanResults float64           `json:"mean_results,omitempty"`
	Latency     histogram.Summary `json:"latency"`
	// CDF is the latency distribution, about cdfPoints points spaced on
	// a log scale (the HTML report plots it).
	CDF []histogram.CDFPoint `json:"cdf,omitempty"`
}

// cdfPoints is about how many points an OpReport's CDF keeps.
const cdfPoints = 120

// CacheInfo is the target's result cache during the measured phase.
type CacheInfo struct {
	Enabled bool    `json:"enabled"`
	Hits    uint64  `json:"hits"`
	Misses  uint64  `json:"misses"`
	HitRate float64 `json:"hit_rate"`
}

// CPUInfo is the process's CPU time during the measured phase.
type CPUInfo struct {
	UserSeconds   float64 `json:"user_seconds"`
	SystemSeconds float64 `json:"system_seconds"`
	// PerOpMicros is CPU time per operation.
	PerOpMicros float64 `json:"per_op_micros"`
	// Cores is CPU time over wall time: how many cores were busy.
	Cores float64 `json:"cores"`
}

func newReport(wl workload.Workload, cfg RunConfig, ph *phase) *Report {
	mix := cfg.Mix
	if mix == (Mix{}) {
		mix = DefaultMix
	}
	r := &Report{
		Format:         ReportFormat,
		Started:        time.Now().Add(-ph.elapsed).UTC().Truncate(time.Second),
		Workload:       wl.Name(),
		Scale:          wl.Scale().String(),
		Seed:           wl.Seed(),
		Concurrency:    max(cfg.Concurrency, 1),
		Rate:           cfg.Rate,
		Missed:         ph.missed,
		Mix:            mix.String(),
		ElapsedSeconds: ph.elapsed.Seconds(),
		Machine: Machine{
			GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
			NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
			LoadAverage: loadAverage(),
		},
		Samples:  ph.samples,
		Slowest:  ph.slowest,
		Timeline: ph.timeline,
	}
	var all histogram.Histogram
	r.Total.Op = "total"
	for op := range ph.ops {
		o := &ph.ops[op]
		if mix[op] == 0 && o.hist.Count() == 0 {
			continue
		}
		rep := OpReport{
			Op:         workload.Op(op).String(),
			Count:      o.hist.Count(),
			Errors:     o.errors,
			Unexpected: o.unexpected,
			Throughput: float64(o.hist.Count()) / ph.elapsed.Seconds(),
			Latency:    o.hist.Summarize(),
			CDF:        o.hist.CDF(cdfPoints),
		}
		if o.hist.Count() > 0 && (op == int(workload.OpLookupResources) || op == int(workload.OpLookupSubjects)) {
			rep.MeanResults = float64(o.results) / float64(o.hist.Count())
		}
		r.Ops = append(r.Ops, rep)
		all.Merge(&o.hist)
		r.Total.Errors += o.errors
		r.Total.Unexpected += o.unexpected
	}
	r.Total.Count = all.Count()
	r.Total.Throughput = float64(all.Count()) / ph.elapsed.Seconds()
	r.Total.Latency = all.Summarize()
	r.Total.CDF = all.CDF(cdfPoints)
	return r
}

func (r *Report) setResources(a, b usage, ph *phase) {
	user, sys := b.user-a.user, b.sys-a.sys
	r.CPU = CPUInfo{UserSeconds: user.Seconds(), SystemSeconds: sys.Seconds(), Cores: (user + sys).Seconds() / ph.elapsed.Seconds()}
	if ph.count > 0 {
		r.CPU.PerOpMicros = float64((user + sys).Microseconds()) / float64(ph.count)
	}
	r.PeakRSSBytes = b.maxRSS
}

func (r *Report) setServerCPU(seconds float64, ph *phase) {
	r.ServerCPU = &CPUInfo{UserSeconds: seconds, Cores: seconds / ph.elapsed.Seconds()}
	if ph.count > 0 {
		r.ServerCPU.PerOpMicros = seconds * 1e6 / float64(ph.count)
	}
}

// NestedMemoryInfo is the engine's in-memory closures at the end of a
// run: their bytes, and the loads since the engine opened (the warm-up's
// included, which the measured phase's CPU does not count) with their
// total duration.
type NestedMemoryInfo struct {
	Bytes       int64   `json:"bytes"`
	Loads       uint64  `json:"loads"`
	LoadSeconds float64 `json:"load_seconds"`
}

// setNestedMemory records the closures in memory that s, the target's
// stats at the end of the run, tells of.
func (r *Report) setNestedMemory(s TargetStats) {
	if s.NestedMemoryLoads > 0 {
		r.NestedMemory = &NestedMemoryInfo{Bytes: s.NestedMemoryBytes, Loads: s.NestedMemoryLoads, LoadSeconds: s.NestedMemoryLoadSeconds}
	}
}

func (r *Report) setCache(a, b TargetStats) {
	r.Cache = CacheInfo{Enabled: b.CacheEnabled, Hits: b.CacheHits - a.CacheHits, Misses: b.CacheMisses - a.CacheMisses}
	if n := r.Cache.Hits + r.Cache.Misses; n > 0 {
		r.Cache.HitRate = float64(r.Cache.Hits) / float64(n)
	}
	for plan, n := range b.Plans {
		if d := n - a.Plans[plan]; d > 0 {
			if r.Plans == nil {
				r.Plans = map[string]uint64{}
			}
			r.Plans[plan] = d
		}
	}
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("bench: encode report: %w", err)
	}
	return nil
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	if r.Format != ReportFormat {
		return nil, fmt.Errorf("%w: %s: report format %d, want %d", ErrUsage, path, r.Format, ReportFormat)
	}
	return &r, nil
}

// dur formats nanoseconds for a table: three significant digits.
func dur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(ns)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}

// WriteTable writes r for humans.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	loop := "closed loop"
	if r.Rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f/s", r.Rate)
		if r.Missed > 0 {
			loop += fmt.Sprintf(" (%d requests missed: the target fell behind)", r.Missed)
		}
	}
	fmt.Fprintf(&b, "workload %s (scale %s, seed %d) on %s, %s, %d workers, %s, mix %s\n",
		r.Workload, r.Scale, r.Seed, r.Target, r.Consistency, r.Concurrency, loop, r.Mix)
	fmt.Fprintf(&b, "machine  %s %s/%s, %d CPUs (GOMAXPROCS %d)", r.Machine.GoVersion, r.Machine.OS, r.Machine.Arch, r.Machine.NumCPU, r.Machine.GOMAXPROCS)
	if r.Machine.LoadAverage != "" {
		fmt.Fprintf(&b, ", load average %s", r.Machine.LoadAverage)
	}
	b.WriteByte('\n')
	reused := ""
	if r.Load.Reused {
		reused = " (data directory reused; figures from its load)"
	}
	fmt.Fprintf(&b, "load     %d relationships in %.1fs (%.0f/s)%s", r.Load.Relationships, r.Load.Seconds, r.Load.PerSecond, reused)
	if r.Load.CPUSeconds > 0 && r.Load.Relationships > 0 {
		fmt.Fprintf(&b, ", %.1f µs of CPU per relationship", r.Load.CPUSeconds/float64(r.Load.Relationships)*1e6)
	}
	if r.Load.IndexSeconds > 0 {
		fmt.Fprintf(&b, "; nested-group index ready %.1fs later (%.1fs of CPU)", r.Load.IndexSeconds, r.Load.IndexCPUSeconds)
	}
	if r.Load.CompactSeconds > 0 {
		fmt.Fprintf(&b, "; compacted in %.1fs (%.1fs of CPU)", r.Load.CompactSeconds, r.Load.CompactCPUSeconds)
	}
	if r.Load.DiskBytes > 0 {
		fmt.Fprintf(&b, ", %.1f MiB on disk (%.1f MiB per million)", float64(r.Load.DiskBytes)/(1<<20), r.Load.DiskBytesPerMillion/(1<<20))
		if r.Load.DiskBytesAfterRun > 0 {
			fmt.Fprintf(&b, ", %.1f MiB after the run", float64(r.Load.DiskBytesAfterRun)/(1<<20))
		}
	}
	b.WriteString("\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tcount\terrors\tunexpected\tops/s\tmin\tmean\tp50\tp95\tp99\tp99.9\tmax\tresults\t")
	for _, o := range append(append([]OpReport(nil), r.Ops...), r.Total) {
		l := o.Latency
		res := ""
		if o.MeanResults > 0 {
			res = fmt.Sprintf("%.1f", o.MeanResults)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", o.Op, o.Count, o.Errors, o.Unexpected, o.Throughput,
			dur(l.Min), dur(int64(l.Mean)), dur(l.P50), dur(l.P95), dur(l.P99), dur(l.P999), dur(l.Max), res)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteByte('\n')
	if r.Cache.Enabled {
		fmt.Fprintf(&b, "cache    hit rate %.1f%% (%d hits, %d misses)\n", 100*r.Cache.HitRate, r.Cache.Hits, r.Cache.Misses)
	} else {
		b.WriteString("cache    disabled\n")
	}
	if len(r.Plans) > 0 {
		b.WriteString("plans   ")
		for _, plan := range slices.Sorted(maps.Keys(r.Plans)) {
			fmt.Fprintf(&b, " %s %d", plan, r.Plans[plan])
		}
		b.WriteByte('\n')
	}
	if m := r.NestedMemory; m != nil {
		fmt.Fprintf(&b, "nested   %.1f MiB of closures in memory, %d loads in %.1fs since the engine opened\n", float64(m.Bytes)/(1<<20), m.Loads, m.LoadSeconds)
	}
	fmt.Fprintf(&b, "cpu      %.1fs user + %.1fs system over %.1fs (%.2f cores), %.1fµs per op; peak RSS %.0f MiB\n",
		r.CPU.UserSeconds, r.CPU.SystemSeconds, r.ElapsedSeconds, r.CPU.Cores, r.CPU.PerOpMicros, float64(r.PeakRSSBytes)/(1<<20))
	if s := r.ServerCPU; s != nil {
		fmt.Fprintf(&b, "server   %.1fs CPU over %.1fs (%.2f cores), %.1fµs per op\n", s.UserSeconds, r.ElapsedSeconds, s.Cores, s.PerOpMicros)
	}
	for _, s := range r.Slowest {
		fmt.Fprintf(&b, "slow     %8s  %s\n", dur(s.LatencyNs), s.Request)
	}
	for _, s := range r.Samples {
		fmt.Fprintf(&b, "sample   %s\n", s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Compare writes, for each operation in both reports, b's figures over
// a's: above 1 means b is higher (more throughput, or slower latency).
func Compare(w io.Writer, a, b *Report) error {
	var s strings.Builder
	fmt.Fprintf(&s, "a: %s %s on %s, %s, %d workers\n", a.Workload, a.Scale, a.Target, a.Consistency, a.Concurrency)
	fmt.Fprintf(&s, "b: %s %s on %s, %s, %d workers\n", b.Workload, b.Scale, b.Target, b.Consistency, b.Concurrency)
	if a.Workload != b.Workload || a.Scale != b.Scale || a.Seed != b.Seed {
		s.WriteString("warning: the reports measure different data sets\n")
	}
	s.WriteString("ratios are b/a: throughput above 1 is better, latency below 1 is better\n\n")
	tw := tabwriter.NewWriter(&s, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tops/s\tp50\tp95\tp99\tp99.9\tmax\terrors a→b\t")
	byOp := map[string]OpReport{}
	for _, o := range a.Ops {
		byOp[o.Op] = o
	}
	for _, o := range append(append([]OpReport(nil), b.Ops...), b.Total) {
		x, ok := byOp[o.Op]
		if o.Op == "total" {
			x, ok = a.Total, true
		}
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d→%d\t\n", o.Op,
			ratio(o.Throughput, x.Throughput), ratio(float64(o.Latency.P50), float64(x.Latency.P50)),
			ratio(float64(o.Latency.P95), float64(x.Latency.P95)), ratio(float64(o.Latency.P99), float64(x.Latency.P99)),
			ratio(float64(o.Latency.P999), float64(x.Latency.P999)), ratio(float64(o.Latency.Max), float64(x.Latency.Max)),
			x.Errors, o.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&s, "\nload rate %s, disk per million %s, cpu per op %s, peak RSS %s, cache hit rate %s → %s\n",
		ratio(b.Load.PerSecond, a.Load.PerSecond), ratio(b.Load.DiskBytesPerMillion, a.Load.DiskBytesPerMillion),
		ratio(b.CPU.PerOpMicros, a.CPU.PerOpMicros), ratio(float64(b.PeakRSSBytes), float64(a.PeakRSSBytes)),
		hitRate(a.Cache), hitRate(b.Cache))
	_, err := io.WriteString(w, s.String())
	return err
}

// ratio formats b/a, or "-" when either is zero (not measured).
func ratio(b, a float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", b/a)
}

func hitRate(c CacheInfo) string {
	if !c.Enabled {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*c.HitRate)
}
