package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/internal/browsertest"
)

// TestTimeline checks that the timeline accounts for every operation of
// the run, once, in order, and that halving it keeps the counts.
func TestTimeline(t *testing.T) {
	wl, _ := workload.New("wide-group", workload.Small, 1)
	f := &fake{failWrites: true}
	rep, err := Measure(context.Background(), f, wl, RunConfig{Concurrency: 3, Ops: 20000, Mix: allOps, TimelineEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Timeline) == 0 {
		t.Fatal("no timeline")
	}
	var count, errs uint64
	last := 0.0
	for i, iv := range rep.Timeline {
		if iv.At <= last || iv.Seconds <= 0 {
			t.Fatalf("interval %d %+v does not follow %v", i, iv, last)
		}
		if iv.Count > 0 && !(iv.P50 <= iv.P90 && iv.P90 <= iv.P99 && iv.P99 <= iv.Max) {
			t.Errorf("interval %d: percentiles out of order: %+v", i, iv)
		}
		var byOp float64
		for _, r := range iv.OpThroughput {
			byOp += r
		}
		if d := byOp - iv.Throughput; d > 1e-6*iv.Throughput || d < -1e-6*iv.Throughput {
			t.Errorf("interval %d: operations add to %v/s, total %v/s", i, byOp, iv.Throughput)
		}
		last = iv.At
		count += iv.Count
		errs += iv.Errors
	}
	if count != rep.Total.Count || errs != rep.Total.Errors {
		t.Errorf("timeline counts %d ops, %d errors; the run %d, %d", count, errs, rep.Total.Count, rep.Total.Errors)
	}
	merged := mergePairs(append([]Interval(nil), rep.Timeline[:len(rep.Timeline)/2*2]...))
	var mc uint64
	for _, iv := range merged {
		mc += iv.Count
	}
	var want uint64
	for _, iv := range rep.Timeline[:len(rep.Timeline)/2*2] {
		want += iv.Count
	}
	if mc != want || len(merged) != len(rep.Timeline)/2 {
		t.Errorf("mergePairs: %d intervals counting %d, want %d counting %d", len(merged), mc, len(rep.Timeline)/2, want)
	}
}

// TestHTMLReport opens the report of one run, and the overlay of two, in
// a real headless Chromium: every chart is drawn (an SVG with its lines
// and legend), the tables list every operation, and the page raises no
// error. It saves a screenshot under the test's temp dir, and at
// $PEMBA_BENCH_SCREENSHOT when set (a path relative to the module root).
func TestHTMLReport(t *testing.T) {
	wl, _ := workload.New("enterprise", workload.Small, 1)
	var runs []*Report
	for range 2 {
		rep, err := Measure(context.Background(), &fake{}, wl, RunConfig{Concurrency: 2, Ops: 5000, Mix: allOps, TimelineEvery: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rep.Target, rep.Command = "fake", "pemba bench run -mix <check=70,...>"
		runs = append(runs, rep)
	}
	dir := t.TempDir()
	single, overlay := filepath.Join(dir, "one.html"), filepath.Join(dir, "two.html")
	if err := WriteHTMLFile(single, runs[:1], nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTMLFile(overlay, runs, []string{"before", "after"}); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(single)
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"<script", "<link", " src=", "@import", "url("} {
		if strings.Contains(string(page), banned) {
			t.Errorf("the report is not self-contained: it holds %q", banned)
		}
	}
	if !strings.Contains(string(page), "pemba bench run -mix &lt;check=70,...&gt;") {
		t.Error("the command is missing or not escaped")
	}

	bctx := browsertest.Start(t, 1280, 1000)
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	eval := func(script string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](script))
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return v
	}
	texts := func(sel string) string {
		return fmt.Sprint(eval(fmt.Sprintf(`[...document.querySelectorAll(%q)].map(e => e.textContent).join("|")`, sel)))
	}
	for _, tc := range []struct {
		path    string
		legends map[string][]string // chart: what its SVG text must hold
		rows    int                 // operations + total, over every run
	}{
		{single, map[string][]string{
			"throughput": {"total", "check", "write"}, "latency": {"p50", "p90", "p99"}, "cdf": {"total", "lookup-resources"},
		}, len(runs[0].Ops) + 1},
		{overlay, map[string][]string{
			"throughput": {"before", "after"}, "latency": {"before p99", "after p50"}, "cdf": {"before", "after"},
		}, len(runs[0].Ops) + len(runs[1].Ops) + 2},
	} {
		u := url.URL{Scheme: "file", Path: tc.path}
		if err := chromedp.Do(ctx, chromedp.Navigate(u.String()), chromedp.WaitVisible("figure.chart svg")); err != nil {
			t.Fatalf("open %s: %v", tc.path, err)
		}
		for _, name := range []string{"throughput", "latency", "cdf"} {
			fig := "#chart-" + name
			// A drawn chart has a visible box, its lines as paths, and
			// its legend as text.
			if h := eval(fmt.Sprintf(`document.querySelector(%q).getBoundingClientRect().height`, fig+" svg")).(float64); h < 100 {
				t.Errorf("%s: %s is %v px high", tc.path, fig, h)
			}
			if n := eval(fmt.Sprintf(`document.querySelectorAll(%q).length`, fig+" svg path")).(float64); n < 10 {
				t.Errorf("%s: %s has %v paths", tc.path, fig, n)
			}
			txt := texts(fig + " svg text")
			for _, l := range tc.legends[name] {
				if !strings.Contains(txt, l) {
					t.Errorf("%s: %s lacks legend %q in %q", tc.path, fig, l, txt)
				}
			}
		}
		if n := int(eval(`document.querySelectorAll("table.ops tbody tr").length`).(float64)); n != tc.rows {
			t.Errorf("%s: %d table rows, want %d", tc.path, n, tc.rows)
		}
		if txt := texts("table.ops td:first-child"); !strings.Contains(txt, "lookup-subjects") {
			t.Errorf("%s: table lacks lookup-subjects: %s", tc.path, txt)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		shot := strings.TrimSuffix(tc.path, ".html") + ".png"
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", shot)
		if dst := os.Getenv("PEMBA_BENCH_SCREENSHOT"); dst != "" && tc.path == single {
			if err := os.WriteFile(filepath.Join("..", dst), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
