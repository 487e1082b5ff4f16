package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/bench/histogram"
	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/internal/progress"
)

// RunConfig configures the measured phase of a run.
type RunConfig struct {
	// Concurrency is the number of workers (default 1).
	Concurrency int
	// Duration bounds the run by wall time.
	Duration time.Duration
	// Ops, when positive, bounds the run by operation count (tests use
	// it: a count is deterministic, a duration is not). With both set,
	// the run stops at whichever limit comes first.
	Ops int64
	// WarmupDuration and WarmupOps bound a warm-up phase run the same
	// way before measuring; its results are discarded.
	WarmupDuration time.Duration
	WarmupOps      int64
	// Rate, when positive, makes the run open-loop: requests are
	// scheduled at Rate per second and latency counts from the schedule.
	Rate float64
	// Mix weighs the operations (zero value: DefaultMix).
	Mix Mix
	// Progress receives a status line every ProgressEvery (nil: none).
	Progress      io.Writer
	ProgressEvery time.Duration
	// TimelineEvery is the length of the report's timeline intervals
	// (0: one second).
	TimelineEvery time.Duration
	// ServerMetrics, when set, is the URL of the target server's
	// Prometheus metrics: its process_cpu_seconds_total is read before
	// and after the measured phase, for the server's CPU per operation.
	ServerMetrics string
}

// opResult accumulates one operation's measurements.
type opResult struct {
	hist       histogram.Histogram
	errors     uint64
	unexpected uint64
	results    uint64
}

// worker holds everything one goroutine records: no sharing, no locks.
type worker struct {
	src  workload.Source
	rng  *rand.Rand
	ops  [workload.NumOps]opResult
	done atomic.Int64 // read by the progress line
	// live, errs and opDone are read by the timeline while the worker
	// records: atomics on the worker's own cache lines, read once an
	// interval.
	live    histogram.Live
	errs    atomic.Uint64
	opDone  [workload.NumOps]atomic.Uint64
	missed  int64    // open loop: requests the schedule had no time for
	samples []string // first errors and unexpected answers
	slowest []Slow   // the slowest requests, unordered, at most maxSlow
}

const (
	maxSamples = 5
	maxSlow    = 5
)

// Slow is one of the slowest requests of a run.
type Slow struct {
	Request   string `json:"request"`
	LatencyNs int64  `json:"latency_ns"`
}

// noteSlow keeps req if it is among the worker's slowest so far. The
// request is formatted only when it qualifies, which soon becomes rare.
func (w *worker) noteSlow(req *workload.Request, lat time.Duration) {
	if len(w.slowest) < maxSlow {
		w.slowest = append(w.slowest, Slow{req.String(), int64(lat)})
		return
	}
	least := 0
	for i, s := range w.slowest {
		if s.LatencyNs < w.slowest[least].LatencyNs {
			least = i
		}
	}
	if int64(lat) > w.slowest[least].LatencyNs {
		w.slowest[least] = Slow{req.String(), int64(lat)}
	}
}

func (w *worker) note(format string, args ...any) {
	if len(w.samples) < maxSamples {
		w.samples = append(w.samples, fmt.Sprintf(format, args...))
	}
}

// phase is the merged result of one measured phase.
type phase struct {
	ops     [workload.NumOps]opResult
	count   int64
	missed  int64
	elapsed time.Duration
	samples []string
	slowest []Slow
	// timeline is the phase interval by interval.
	timeline []Interval
}

// run drives one phase. Worker i draws requests from wl.Source(streamBase+i).
func run(ctx context.Context, t Target, wl workload.Workload, cfg RunConfig, streamBase uint64, dur time.Duration, limit int64, label string) (*phase, error) {
	n := max(cfg.Concurrency, 1)
	mix := cfg.Mix
	if mix == (Mix{}) {
		mix = DefaultMix
	}
	p := newPicker(mix)
	workers := make([]*worker, n)
	for i := range workers {
		stream := streamBase + uint64(i)
		workers[i] = &worker{src: wl.Source(stream), rng: rand.New(rand.NewPCG(wl.Seed(), stream))}
	}
	var (
		next     atomic.Int64 // tickets: operations claimed so far
		start    = time.Now()
		deadline time.Time
		interval time.Duration
	)
	if dur > 0 {
		deadline = start.Add(dur)
	}
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	stopProgress := showProgress(cfg, label, start, workers)
	stopTimeline := timeline(cfg.TimelineEvery, start, workers)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				ticket := next.Add(1) - 1
				if limit > 0 && ticket >= limit {
					return
				}
				var sent time.Time
				if interval > 0 {
					// Open loop: the ticket's schedule is the start time
					// of the latency, however late the worker is.
					sent = start.Add(time.Duration(ticket) * interval)
					if !deadline.IsZero() && !sent.Before(deadline) {
						return
					}
					if d := time.Until(sent); d > 0 {
						time.Sleep(d)
					} else if !deadline.IsZero() && time.Now().After(deadline) {
						// Scheduled in time but not sent by the end: the
						// target fell behind. Counted, not waited for.
						w.missed++
						continue
					}
				} else {
					sent = time.Now()
					if !deadline.IsZero() && !sent.Before(deadline) {
						return
					}
				}
				w.do(ctx, t, p.pick(w.rng.IntN(p.total)), sent)
			}
		})
	}
	wg.Wait()
	stopProgress()
	ph := &phase{elapsed: time.Since(start), timeline: stopTimeline()}
	for _, w := range workers {
		for op := range ph.ops {
			a, b := &ph.ops[op], &w.ops[op]
			a.hist.Merge(&b.hist)
			a.errors += b.errors
			a.unexpected += b.unexpected
			a.results += b.results
		}
		ph.count += w.done.Load()
		ph.missed += w.missed
		ph.slowest = append(ph.slowest, w.slowest...)
		for _, s := range w.samples {
			if len(ph.samples) < 2*maxSamples {
				ph.samples = append(ph.samples, s)
			}
		}
	}
	slices.SortFunc(ph.slowest, func(a, b Slow) int { return cmp.Compare(b.LatencyNs, a.LatencyNs) })
	ph.slowest = ph.slowest[:min(len(ph.slowest), maxSlow)]
	if err := ctx.Err(); err != nil {
		return ph, fmt.Errorf("bench: %s interrupted: %w", label, err)
	}
	return ph, nil
}

// do sends one request of kind op and records it.
func (w *worker) do(ctx context.Context, t Target, op workload.Op, sent time.Time) {
	req := w.src.Next(op)
	out, err := t.Do(ctx, &req)
	lat := time.Since(sent)
	r := &w.ops[op]
	r.hist.RecordDuration(lat)
	w.live.Record(int64(lat))
	w.opDone[op].Add(1)
	switch {
	case err != nil:
		r.errors++
		w.errs.Add(1)
		w.note("%s: %v", req.String(), err)
	case req.Expect != workload.ExpectUnknown && out.Allowed != (req.Expect == workload.ExpectAllowed):
		r.unexpected++
		w.note("unexpected answer allowed=%v: %s", out.Allowed, req.String())
	}
	r.results += uint64(out.Results)
	w.noteSlow(&req, lat)
	w.done.Add(1)
}

// showProgress prints a status line every cfg.ProgressEvery until the returned
// function is called.
func showProgress(cfg RunConfig, label string, start time.Time, workers []*worker) func() {
	if cfg.Progress == nil {
		return func() {}
	}
	every := cfg.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		var last int64
		lastAt := start
		for {
			select {
			case <-done:
				fmt.Fprintln(cfg.Progress)
				return
			case now := <-tick.C:
				var total int64
				for _, w := range workers {
					total += w.done.Load()
				}
				rate := float64(total-last) / now.Sub(lastAt).Seconds()
				fmt.Fprintf(cfg.Progress, "\r%s %6.1fs  %10d ops  %9.0f ops/s ", label, now.Sub(start).Seconds(), total, rate)
				last, lastAt = total, now
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// Interval is one step of a run's timeline: what completed in it.
type Interval struct {
	// At is the end of the interval, in seconds from the phase's start;
	// Seconds is its length (the last one may be short).
	At      float64 `json:"at_seconds"`
	Seconds float64 `json:"seconds"`
	Count   uint64  `json:"count"`
	Errors  uint64  `json:"errors,omitempty"`
	// Throughput is Count per second; OpThroughput splits it by
	// operation (operations with none are left out).
	Throughput   float64            `json:"throughput_per_second"`
	OpThroughput map[string]float64 `json:"op_throughput,omitempty"`
	// Latency percentiles of the requests completed in the interval, in
	// nanoseconds, each the upper bound of a bucket 12.5% wide.
	P50 int64 `json:"p50_ns"`
	P90 int64 `json:"p90_ns"`
	P99 int64 `json:"p99_ns"`
	Max int64 `json:"max_ns"`
}

// maxIntervals bounds a timeline: past it, intervals double in length.
const maxIntervals = 1200

// timeline samples the workers every interval until the returned
// function is called, which returns the intervals (the last one ends
// then; one shorter than half an interval is folded into the one before,
// whose few stragglers would otherwise draw a spike).
func timeline(every time.Duration, start time.Time, workers []*worker) func() []Interval {
	if every <= 0 {
		every = time.Second
	}
	type snapshot struct {
		at     time.Time
		counts histogram.LiveCounts
		errs   uint64
		ops    [workload.NumOps]uint64
	}
	take := func(now time.Time) *snapshot {
		s := &snapshot{at: now}
		for _, w := range workers {
			w.live.AddTo(&s.counts)
			s.errs += w.errs.Load()
			for op := range s.ops {
				s.ops[op] += w.opDone[op].Load()
			}
		}
		return s
	}
	between := func(a, b *snapshot) Interval {
		d := b.counts
		d.Sub(&a.counts)
		secs := b.at.Sub(a.at).Seconds()
		// The count is the operations' counters, not the histogram's: a
		// worker records its latency and then counts its operation, so a
		// sample taken between the two sees one and not the other, and
		// only one source can make the interval's parts add up to it.
		var count uint64
		for op, n := range b.ops {
			count += n - a.ops[op]
		}
		iv := Interval{
			At: b.at.Sub(start).Seconds(), Seconds: secs, Count: count, Errors: b.errs - a.errs,
			P50: d.Quantile(0.5), P90: d.Quantile(0.9), P99: d.Quantile(0.99), Max: d.Quantile(1),
		}
		if secs > 0 {
			iv.Throughput = float64(iv.Count) / secs
			for op, n := range b.ops {
				if n > a.ops[op] {
					if iv.OpThroughput == nil {
						iv.OpThroughput = map[string]float64{}
					}
					iv.OpThroughput[workload.Op(op).String()] = float64(n-a.ops[op]) / secs
				}
			}
		}
		return iv
	}
	var (
		out    []Interval
		before *snapshot // the start of out's last interval (nil: unknown)
		prev   = &snapshot{at: start}
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				cur := take(now)
				out = append(out, between(prev, cur))
				before, prev = prev, cur
				if len(out) == maxIntervals {
					out = mergePairs(out)
					before = nil
					every *= 2
					tick.Reset(every)
				}
			}
		}
	})
	return func() []Interval {
		close(done)
		wg.Wait()
		cur := take(time.Now())
		if before != nil && cur.at.Sub(prev.at) < every/2 {
			out[len(out)-1] = between(before, cur)
		} else {
			out = append(out, between(prev, cur))
		}
		return out
	}
}

// mergePairs halves a timeline by joining neighbouring intervals; the
// joined percentiles are the larger of the two (an upper bound).
func mergePairs(ivs []Interval) []Interval {
	out := ivs[:0]
	for i := 0; i+1 < len(ivs); i += 2 {
		a, b := ivs[i], ivs[i+1]
		m := Interval{
			At: b.At, Seconds: a.Seconds + b.Seconds, Count: a.Count + b.Count, Errors: a.Errors + b.Errors,
			P50: max(a.P50, b.P50), P90: max(a.P90, b.P90), P99: max(a.P99, b.P99), Max: max(a.Max, b.Max),
		}
		m.Throughput = float64(m.Count) / m.Seconds
		for _, x := range []Interval{a, b} {
			for op, r := range x.OpThroughput {
				if m.OpThroughput == nil {
					m.OpThroughput = map[string]float64{}
				}
				m.OpThroughput[op] += r * x.Seconds / m.Seconds
			}
		}
		out = append(out, m)
	}
	return out
}

// LoadResult describes a data set load.
type LoadResult struct {
	Relationships int
	Elapsed       time.Duration
}

// Load writes wl's schema and relationships into t, showing progress on
// out (nil: none): a bar on a terminal, a line every
// progress.PlainEvery elsewhere.
func Load(ctx context.Context, t Target, wl workload.Workload, out io.Writer) (LoadResult, error) {
	var rep *progress.Reporter
	if out != nil {
		rep = progress.New(out, "load", progress.Options{Unit: "relationships"})
	}
	start := time.Now()
	n, err := t.Load(ctx, wl.Schema(), counted(wl.Relationships(), rep))
	rep.Finish()
	res := LoadResult{Relationships: n, Elapsed: time.Since(start)}
	if err != nil {
		return res, err
	}
	if n == 0 {
		return res, fmt.Errorf("%w: the target imported no relationships", ErrRun)
	}
	return res, nil
}

// counted passes seq through, counting the relationships taken.
func counted(seq iter.Seq2[tuple.Relationship, error], rep *progress.Reporter) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for r, err := range seq {
			rep.Add(1)
			if !yield(r, err) {
				return
			}
		}
	}
}

// Measure runs the warm-up and then the measured phase against an already
// loaded target and reports the measured phase.
func Measure(ctx context.Context, t Target, wl workload.Workload, cfg RunConfig) (*Report, error) {
	if cfg.Duration <= 0 && cfg.Ops <= 0 {
		return nil, fmt.Errorf("%w: a run needs a duration or an operation count", ErrUsage)
	}
	// Warm-up streams are numbered after the measured ones, so that the
	// measured requests do not depend on whether there was a warm-up.
	warmBase := uint64(max(cfg.Concurrency, 1))
	if cfg.WarmupDuration > 0 || cfg.WarmupOps > 0 {
		if _, err := run(ctx, t, wl, cfg, warmBase, cfg.WarmupDuration, cfg.WarmupOps, "warmup"); err != nil {
			return nil, err
		}
	}
	if s, ok := t.(settler); ok {
		if err := s.settle(ctx); err != nil {
			return nil, err
		}
	}
	before := t.Stats()
	var server0 float64
	if cfg.ServerMetrics != "" {
		var err error
		if server0, err = serverCPU(ctx, cfg.ServerMetrics); err != nil {
			return nil, err
		}
	}
	usage0, err := readUsage()
	if err != nil {
		return nil, err
	}
	// An interrupted run still reports what it measured, with the error.
	ph, runErr := run(ctx, t, wl, cfg, 0, cfg.Duration, cfg.Ops, "run   ")
	usage1, err := readUsage()
	if err != nil {
		return nil, errors.Join(runErr, err)
	}
	after := t.Stats()
	rep := newReport(wl, cfg, ph)
	rep.setResources(usage0, usage1, ph)
	if cfg.ServerMetrics != "" {
		server1, err := serverCPU(ctx, cfg.ServerMetrics)
		if err != nil {
			return rep, errors.Join(runErr, err)
		}
		rep.setServerCPU(server1-server0, ph)
	}
	rep.setCache(before, after)
	rep.setNestedMemory(after)
	if runErr != nil {
		return rep, runErr
	}
	if ph.count == 0 {
		return rep, fmt.Errorf("%w: no operation completed", ErrRun)
	}
	return rep, nil
}
