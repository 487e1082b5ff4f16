package bench

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// allOps exercises every operation.
var allOps = Mix{workload.OpCheck: 70, workload.OpLookupResources: 10, workload.OpLookupSubjects: 10, workload.OpWrite: 10}

// checkReport verifies that a report is complete and consistent.
func checkReport(t *testing.T, rep *Report, wantOps int64) {
	t.Helper()
	var sum uint64
	for _, o := range rep.Ops {
		sum += o.Count
		l := o.Latency
		if o.Count > 0 && !slices.IsSorted([]int64{l.Min, l.P50, l.P95, l.P99, l.P999, l.Max}) {
			t.Errorf("%s: percentiles out of order: %+v", o.Op, l)
		}
		if o.Count > 0 && (o.Throughput <= 0 || l.Max <= 0) {
			t.Errorf("%s: %d ops but throughput %v, max %v", o.Op, o.Count, o.Throughput, l.Max)
		}
	}
	if sum != rep.Total.Count || int64(sum) != wantOps {
		t.Errorf("operations: per-op sum %d, total %d, want %d", sum, rep.Total.Count, wantOps)
	}
	if rep.ElapsedSeconds <= 0 || rep.Machine.NumCPU == 0 || rep.PeakRSSBytes <= 0 || rep.Mix == "" {
		t.Errorf("report incomplete: %+v", rep)
	}
	if rep.Cache.Hits+rep.Cache.Misses > 0 && (rep.Cache.HitRate < 0 || rep.Cache.HitRate > 1) {
		t.Errorf("cache hit rate %v", rep.Cache.HitRate)
	}
}

// notImplemented reports whether every error sample says the operation is
// not implemented yet (the evaluator is being written alongside).
func TestEveryWorkloadInProcess(t *testing.T) {
	// Operation counts, not durations: wide-arrow's checks fan out over
	// 10,000 parents and take far longer than the others.
	ops := map[string]int64{"enterprise": 400, "deep-chain": 200, "wide-group": 400, "wide-arrow": 12}
	for _, name := range workload.Names() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			wl, err := workload.New(name, workload.Small, 1)
			if err != nil {
				t.Fatal(err)
			}
			tg, err := NewInProcess(ctx, InProcessOptions{Store: "memory"})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			lr, err := Load(ctx, tg, wl, nil)
			if err != nil {
				t.Fatalf("load (relationships must fit the schema): %v", err)
			}
			if lr.Relationships != wl.Size() {
				t.Errorf("loaded %d relationships, workload has %d", lr.Relationships, wl.Size())
			}
			rep, err := Measure(ctx, tg, wl, RunConfig{Concurrency: 2, Ops: ops[name], Mix: allOps})
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, ops[name])
			for _, o := range rep.Ops {
				if o.Unexpected != 0 {
					t.Errorf("%s: %d answers differ from the generator's expectation; samples: %q", o.Op, o.Unexpected, rep.Samples)
				}
				if o.Errors != 0 {
					t.Errorf("%s: %d errors; samples: %q", o.Op, o.Errors, rep.Samples)
				}
			}
		})
	}
}

// fake is a Target that answers instantly: checks as expected, writes
// fail when failWrites is set.
type fake struct {
	failWrites bool
	loaded     int
	calls      atomic.Int64
}

var errFake = errors.New("fake: write refused")

func (f *fake) Load(_ context.Context, _ string, rels iter.Seq2[tuple.Relationship, error]) (int, error) {
	for _, err := range rels {
		if err != nil {
			return f.loaded, err
		}
		f.loaded++
	}
	return f.loaded, nil
}

func (f *fake) Do(_ context.Context, req *workload.Request) (Outcome, error) {
	f.calls.Add(1)
	if req.Op == workload.OpWrite && f.failWrites {
		return Outcome{}, errFake
	}
	return Outcome{Allowed: req.Expect == workload.ExpectAllowed, Results: 3}, nil
}

func (f *fake) Stats() TargetStats {
	n := uint64(f.calls.Load())
	return TargetStats{CacheEnabled: true, CacheHits: n, CacheMisses: n}
}

func (f *fake) Close() error { return nil }

func TestRunModes(t *testing.T) {
	wl, err := workload.New("deep-chain", workload.Small, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		cfg        RunConfig
		failWrites bool
	}{
		{"closed loop", RunConfig{Concurrency: 3, Ops: 1000, Mix: allOps}, false},
		{"closed loop with warm-up", RunConfig{Concurrency: 2, Ops: 500, WarmupOps: 100}, false},
		// A rate far above what the fake needs: the schedule is never late
		// enough to matter, and the test needs no sleeps of its own.
		{"open loop", RunConfig{Concurrency: 2, Ops: 500, Rate: 1e7, Mix: allOps}, false},
		{"failing writes", RunConfig{Concurrency: 2, Ops: 800, Mix: allOps}, true},
		// The progress line runs in its own goroutine; its output is not
		// checked (how many lines depends on time), only that it is safe.
		{"with progress", RunConfig{Concurrency: 2, Ops: 2000, Progress: &bytes.Buffer{}, ProgressEvery: time.Millisecond}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{failWrites: tc.failWrites}
			rep, err := Measure(context.Background(), f, wl, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, tc.cfg.Ops)
			if want := tc.cfg.Ops + tc.cfg.WarmupOps; f.calls.Load() != want {
				t.Errorf("target saw %d requests, want %d (warm-up included)", f.calls.Load(), want)
			}
			for _, o := range rep.Ops {
				wantErrors := uint64(0)
				if tc.failWrites && o.Op == "write" {
					wantErrors = o.Count
				}
				if o.Errors != wantErrors || o.Unexpected != 0 {
					t.Errorf("%s: %d errors, %d unexpected; want %d, 0", o.Op, o.Errors, o.Unexpected, wantErrors)
				}
				if strings.HasPrefix(o.Op, "lookup") && o.MeanResults != 3 {
					t.Errorf("%s: mean results %v, want 3", o.Op, o.MeanResults)
				}
			}
			if tc.failWrites && (len(rep.Samples) == 0 || !strings.Contains(rep.Samples[0], errFake.Error())) {
				t.Errorf("samples %q do not show the write error", rep.Samples)
			}
			if rep.Cache.HitRate != 0.5 {
				t.Errorf("cache hit rate %v, want 0.5", rep.Cache.HitRate)
			}
		})
	}
}

// settlingFake is fake with background work to settle (settler).
type settlingFake struct {
	fake
	settledAfter []int64 // the requests seen at each settle
}

func (f *settlingFake) settle(context.Context) error {
	f.settledAfter = append(f.settledAfter, f.calls.Load())
	return nil
}

// TestMeasureSettles checks that Measure lets a target's background work
// settle once, after the warm-up and before the measured phase.
func TestMeasureSettles(t *testing.T) {
	wl, err := workload.New("deep-chain", workload.Small, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, warm := range []int64{0, 50} {
		f := &settlingFake{}
		if _, err := Measure(context.Background(), f, wl, RunConfig{Concurrency: 2, Ops: 200, WarmupOps: warm}); err != nil {
			t.Fatal(err)
		}
		if len(f.settledAfter) != 1 || f.settledAfter[0] != warm {
			t.Errorf("warm-up of %d: settled after %v requests, want once after %d", warm, f.settledAfter, warm)
		}
	}
}

func TestRequestsAreDeterministic(t *testing.T) {
	// One worker, same seed: the same requests in the same order.
	wl, _ := workload.New("enterprise", workload.Small, 5)
	record := func() []string {
		var got []string
		rec := &recorder{seen: &got}
		if _, err := Measure(context.Background(), rec, wl, RunConfig{Concurrency: 1, Ops: 300, Mix: allOps}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	a, b := record(), record()
	if !slices.Equal(a, b) {
		t.Error("two runs with one worker sent different requests")
	}
}

type recorder struct {
	fake
	seen *[]string
}

func (r *recorder) Do(ctx context.Context, req *workload.Request) (Outcome, error) {
	*r.seen = append(*r.seen, req.String())
	return r.fake.Do(ctx, req)
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in      string
		want    Mix
		wantErr bool
	}{
		{"check=90,lookup-resources=5,write=5", DefaultMix, false},
		{"check=1", Mix{workload.OpCheck: 1}, false},
		{" check=2 , lookup-subjects=3", Mix{workload.OpCheck: 2, workload.OpLookupSubjects: 3}, false},
		{"check=0", Mix{}, true},
		{"check=-1", Mix{}, true},
		{"expand=3", Mix{}, true},
		{"check", Mix{}, true},
		{"", Mix{}, true},
	}
	for _, tc := range tests {
		got, err := ParseMix(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseMix(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, ErrUsage) {
			t.Errorf("ParseMix(%q): error %v does not wrap ErrUsage", tc.in, err)
		}
		if err == nil {
			if again, _ := ParseMix(got.String()); again != got {
				t.Errorf("ParseMix(%q).String() = %q does not read back", tc.in, got)
			}
		}
	}
	p := newPicker(Mix{workload.OpCheck: 2, workload.OpWrite: 1})
	for n, want := range []workload.Op{workload.OpCheck, workload.OpCheck, workload.OpWrite} {
		if got := p.pick(n); got != want {
			t.Errorf("pick(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestReportOutputs(t *testing.T) {
	wl, _ := workload.New("wide-group", workload.Small, 1)
	rep, err := Measure(context.Background(), &fake{}, wl, RunConfig{Concurrency: 2, Ops: 300, Mix: allOps})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := Print(&table, rep, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"check", "lookup-resources", "lookup-subjects", "write", "total", "p99.9", "cache"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	path := filepath.Join(t.TempDir(), "a.json")
	var js bytes.Buffer
	if err := Print(&js, rep, true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, js.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Ops, rep.Ops) || !reflect.DeepEqual(back.Total, rep.Total) || !reflect.DeepEqual(back.Timeline, rep.Timeline) {
		t.Errorf("JSON round trip changed the report")
	}
	var cmp bytes.Buffer
	if err := Compare(&cmp, rep, back); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cmp.String(), "1.00x") || strings.Contains(cmp.String(), "warning") {
		t.Errorf("comparing a report with itself:\n%s", cmp.String())
	}
}

func TestExecuteReusesDataDir(t *testing.T) {
	dir := t.TempDir()
	o := Options{
		Workload: "deep-chain", Scale: workload.Small, Seed: 1, Store: "pebble", DataDir: dir,
		Run: RunConfig{Concurrency: 2, Ops: 100, Mix: Mix{workload.OpCheck: 9, workload.OpWrite: 1}},
	}
	ctx := context.Background()
	first, err := Execute(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if first.Load.Reused || first.Load.Relationships == 0 || first.Load.DiskBytes == 0 || first.Load.DiskBytesAfterRun == 0 || first.Target != "inprocess/pebble" {
		t.Errorf("first run load: %+v, target %s", first.Load, first.Target)
	}
	if first.Load.CompactSeconds <= 0 {
		t.Errorf("first run load: compact_seconds %v, want the compaction after the load timed", first.Load.CompactSeconds)
	}
	checkReport(t, first, 100)
	second, err := Execute(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Load.Reused || second.Load.Relationships != first.Load.Relationships || second.Load.CompactSeconds != first.Load.CompactSeconds {
		t.Errorf("second run load: %+v, want reused with %d relationships and the first load's compaction", second.Load, first.Load.Relationships)
	}
	o.Seed = 2
	if _, err := Execute(ctx, o); !errors.Is(err, ErrDataDir) {
		t.Errorf("another seed in a loaded directory: error %v, want ErrDataDir", err)
	}
	for _, mode := range []string{"grpc", "carrier-pigeon"} { // grpc without an address
		o.Mode = mode
		if _, err := Execute(ctx, o); !errors.Is(err, ErrUsage) {
			t.Errorf("mode %s: error %v, want ErrUsage", mode, err)
		}
	}
}

func TestInterruptedRunStillReports(t *testing.T) {
	wl, _ := workload.New("deep-chain", workload.Small, 1)
	ctx, cancel := context.WithCancel(context.Background())
	f := &cancelAfter{n: 50, cancel: cancel}
	rep, err := Measure(ctx, f, wl, RunConfig{Concurrency: 2, Ops: 1_000_000})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if rep == nil || rep.Total.Count < 50 {
		t.Fatalf("report %v: want the operations done before the interruption", rep)
	}
}

// cancelAfter cancels the run's context after n requests.
type cancelAfter struct {
	fake
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Do(ctx context.Context, req *workload.Request) (Outcome, error) {
	if c.calls.Load() >= c.n {
		c.cancel()
	}
	return c.fake.Do(ctx, req)
}

func TestLookupResourcesPages(t *testing.T) {
	// With a page of 2, every lookup must still find all results (5 per
	// deep-chain member), paging with the last result as the cursor.
	ctx := context.Background()
	wl, _ := workload.New("deep-chain", workload.Small, 1)
	open := func(limit int) *InProcess {
		tg, err := NewInProcess(ctx, InProcessOptions{Store: "memory", Engine: engine.Options{Limits: engine.Limits{MaxLookupLimit: limit}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tg.Close() })
		if _, err := Load(ctx, tg, wl, nil); err != nil {
			t.Fatal(err)
		}
		return tg
	}
	paged, whole := open(2), open(0)
	src := wl.Source(0)
	for range 20 {
		req := src.Next(workload.OpLookupResources)
		a, err := paged.Do(ctx, &req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := whole.Do(ctx, &req)
		if err != nil {
			t.Fatal(err)
		}
		if a.Results != b.Results || b.Results != 5 {
			t.Errorf("%s: %d results in pages of 2, %d in one; want 5", req.String(), a.Results, b.Results)
		}
	}
}
