package bench

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/pemba-authz/pemba/internal/atomicfile"
)

// A chart is one plot of a report, drawn by gonum/plot as SVG for the
// HTML page and as PNG for the docs.
type chart struct {
	name  string // file name stem: throughput, latency, cdf
	title string
	plot  *plot.Plot
}

// chartWidth and chartHeight are every chart's size.
const (
	chartWidth  = 7.5 * vg.Inch
	chartHeight = 3.6 * vg.Inch
)

// charts draws the plots of one run, or of several overlaid (one line
// per run, named by labels).
func charts(runs []*Report, labels []string) ([]chart, error) {
	tp, err := throughputChart(runs, labels)
	if err != nil {
		return nil, err
	}
	lat, err := latencyChart(runs, labels)
	if err != nil {
		return nil, err
	}
	cdf, err := cdfChart(runs, labels)
	if err != nil {
		return nil, err
	}
	return []chart{
		{"throughput", "Throughput over time", tp},
		{"latency", "Latency percentiles over time", lat},
		{"cdf", "Latency distribution", cdf},
	}, nil
}

// series is one line of a chart.
type series struct {
	name string
	xys  plotter.XYs
}

// addLines adds each series as a line in its own colour (and dash
// pattern, so the lines stay apart in grey), with a legend entry.
func addLines(p *plot.Plot, ss []series) error {
	for i, s := range ss {
		if len(s.xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return fmt.Errorf("bench: chart %q: %w", s.name, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	return p
}

// logAxis makes a a log scale; every value plotted on it must be > 0.
func logAxis(a *plot.Axis) {
	a.Scale = plot.LogScale{}
	a.Tick.Marker = plot.LogTicks{Prec: -1}
}

func throughputChart(runs []*Report, labels []string) (*plot.Plot, error) {
	p := newPlot("Throughput", "seconds", "operations per second")
	var ss []series
	for i, r := range runs {
		total := series{name: labels[i]}
		perOp := map[string]*series{}
		var ops []string
		for _, iv := range r.Timeline {
			total.xys = append(total.xys, plotter.XY{X: iv.At, Y: iv.Throughput})
			if len(runs) > 1 {
				continue
			}
			for _, o := range r.Ops {
				s := perOp[o.Op]
				if s == nil {
					s = &series{name: o.Op}
					perOp[o.Op] = s
					ops = append(ops, o.Op)
				}
				s.xys = append(s.xys, plotter.XY{X: iv.At, Y: iv.OpThroughput[o.Op]})
			}
		}
		if len(runs) == 1 {
			total.name = "total"
		}
		ss = append(ss, total)
		if len(ops) > 1 {
			for _, op := range ops {
				ss = append(ss, *perOp[op])
			}
		}
	}
	p.Y.Min = 0
	if err := addLines(p, ss); err != nil {
		return nil, err
	}
	p.Y.Max *= 1.35 // room for the legend above the lines
	return p, nil
}

func latencyChart(runs []*Report, labels []string) (*plot.Plot, error) {
	p := newPlot("Latency", "seconds", "latency (µs, log scale)")
	logAxis(&p.Y)
	var ss []series
	for i, r := range runs {
		qs := []struct {
			name string
			of   func(Interval) int64
		}{
			{"p50", func(iv Interval) int64 { return iv.P50 }},
			{"p90", func(iv Interval) int64 { return iv.P90 }},
			{"p99", func(iv Interval) int64 { return iv.P99 }},
		}
		if len(runs) > 1 {
			qs = []struct {
				name string
				of   func(Interval) int64
			}{qs[0], qs[2]}
		}
		for _, q := range qs {
			s := series{name: q.name}
			if len(runs) > 1 {
				s.name = labels[i] + " " + q.name
			}
			for _, iv := range r.Timeline {
				if v := q.of(iv); v > 0 {
					s.xys = append(s.xys, plotter.XY{X: iv.At, Y: float64(v) / 1e3})
				}
			}
			ss = append(ss, s)
		}
	}
	if err := addLines(p, ss); err != nil {
		return nil, err
	}
	p.Y.Max *= 20 // room for the legend above the lines, on the log scale
	return p, nil
}

func cdfChart(runs []*Report, labels []string) (*plot.Plot, error) {
	p := newPlot("Latency distribution", "latency (µs, log scale)", "share of requests at or below")
	logAxis(&p.X)
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Left = true // a CDF starts bottom left: the top left is free
	var ss []series
	add := func(name string, o OpReport) {
		s := series{name: name}
		for _, pt := range o.CDF {
			if pt.Value > 0 {
				s.xys = append(s.xys, plotter.XY{X: float64(pt.Value) / 1e3, Y: pt.Fraction})
			}
		}
		ss = append(ss, s)
	}
	for i, r := range runs {
		if len(runs) > 1 {
			add(labels[i], r.Total)
			continue
		}
		add("total", r.Total)
		if len(r.Ops) > 1 {
			for _, o := range r.Ops {
				add(o.Op, o)
			}
		}
	}
	return p, addLines(p, ss)
}

// svg renders p for inlining in HTML: the SVG element without the XML
// prolog gonum writes before it.
func svg(p *plot.Plot) (template.HTML, error) {
	wt, err := p.WriterTo(chartWidth, chartHeight, "svg")
	if err != nil {
		return "", fmt.Errorf("bench: draw chart: %w", err)
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return "", fmt.Errorf("bench: draw chart: %w", err)
	}
	s := b.String()
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	return template.HTML(s), nil // drawn by gonum from numbers and our labels' text, which it escapes
}

// WriteHTML writes a self-contained HTML report (no scripts, no network:
// the charts are inline SVG) of one run, or of several overlaid, named by
// labels (default: the runs' targets and start times): throughput and
// latency percentiles over time, the latency distribution, a table per
// operation, and the machine, command and data set of each run.
func WriteHTML(w io.Writer, runs []*Report, labels []string) error {
	if len(runs) == 0 {
		return fmt.Errorf("%w: no report to draw", ErrUsage)
	}
	labels = runLabels(runs, labels)
	cs, err := charts(runs, labels)
	if err != nil {
		return err
	}
	page := htmlPage{Title: "Pemba benchmark: " + strings.Join(labels, " vs ")}
	for _, c := range cs {
		s, err := svg(c.plot)
		if err != nil {
			return err
		}
		page.Charts = append(page.Charts, htmlChart{Name: c.name, Title: c.title, SVG: s})
	}
	for i, r := range runs {
		page.Runs = append(page.Runs, htmlRun{Label: labels[i], R: r})
	}
	if err := htmlTemplate.Execute(w, page); err != nil {
		return fmt.Errorf("bench: write HTML report: %w", err)
	}
	return nil
}

// WritePNGs writes the charts of WriteHTML as PNG files in dir
// (throughput.png, latency.png, cdf.png, after prefix) and returns their
// paths: the images docs/benchmarks.md shows.
func WritePNGs(dir, prefix string, runs []*Report, labels []string) ([]string, error) {
	if len(runs) == 0 {
		return nil, fmt.Errorf("%w: no report to draw", ErrUsage)
	}
	cs, err := charts(runs, runLabels(runs, labels))
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, c := range cs {
		path := filepath.Join(dir, prefix+c.name+".png")
		if err := c.plot.Save(chartWidth, chartHeight, path); err != nil {
			return paths, fmt.Errorf("bench: save chart: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// runLabels returns labels, or for each run without one its target and
// start time.
func runLabels(runs []*Report, labels []string) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		if i < len(labels) && labels[i] != "" {
			out[i] = labels[i]
			continue
		}
		out[i] = fmt.Sprintf("%s %s", r.Target, r.Started.UTC().Format(time.DateTime))
	}
	return out
}

type htmlPage struct {
	Title  string
	Charts []htmlChart
	Runs   []htmlRun
}

type htmlChart struct {
	Name, Title string
	SVG         template.HTML
}

type htmlRun struct {
	Label string
	R     *Report
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur": dur,
	"f1":  func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f0":  func(v float64) string { return fmt.Sprintf("%.0f", v) },
	"pct": func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) },
	"mib": func(v int64) string { return fmt.Sprintf("%.0f MiB", float64(v)/(1<<20)) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.5em 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: 600; } dd { margin: 0; } code { font-size: 0.9em; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Charts}}<figure id="chart-{{.Name}}" class="chart">
{{.SVG}}
<figcaption>{{.Title}}</figcaption>
</figure>
{{end}}
{{range .Runs}}<section class="run">
<h2>{{.Label}}</h2>
<table class="ops">
<thead><tr><th>operation</th><th>count</th><th>errors</th><th>unexpected</th><th>ops/s</th><th>p50</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr></thead>
<tbody>
{{range .R.Ops}}<tr><td>{{.Op}}</td><td>{{.Count}}</td><td>{{.Errors}}</td><td>{{.Unexpected}}</td><td>{{f0 .Throughput}}</td><td>{{dur .Latency.P50}}</td><td>{{dur .Latency.P95}}</td><td>{{dur .Latency.P99}}</td><td>{{dur .Latency.P999}}</td><td>{{dur .Latency.Max}}</td></tr>
{{end}}{{with .R.Total}}<tr><td><b>total</b></td><td>{{.Count}}</td><td>{{.Errors}}</td><td>{{.Unexpected}}</td><td>{{f0 .Throughput}}</td><td>{{dur .Latency.P50}}</td><td>{{dur .Latency.P95}}</td><td>{{dur .Latency.P99}}</td><td>{{dur .Latency.P999}}</td><td>{{dur .Latency.Max}}</td></tr>{{end}}
</tbody>
</table>
<dl>
{{with .R.Command}}<dt>command</dt><dd><code>{{.}}</code></dd>
{{end}}<dt>data set</dt><dd>workload {{.R.Workload}}, scale {{.R.Scale}}, seed {{.R.Seed}}: {{.R.Load.Relationships}} relationships{{if .R.Load.PerSecond}}, loaded at {{f0 .R.Load.PerSecond}}/s{{end}}</dd>
<dt>target</dt><dd>{{.R.Target}}, consistency {{.R.Consistency}}, cache {{if .R.Cache.Enabled}}on (hit rate {{pct .R.Cache.HitRate}}){{else}}off{{end}}</dd>
<dt>load</dt><dd>{{.R.Concurrency}} workers, {{if .R.Rate}}open loop at {{f0 .R.Rate}}/s{{else}}closed loop{{end}}, mix {{.R.Mix}}, {{f1 .R.ElapsedSeconds}} s measured from {{.R.Started.UTC.Format "2006-01-02 15:04:05"}} UTC</dd>
<dt>CPU</dt><dd>{{f1 .R.CPU.PerOpMicros}} µs per operation, {{f1 .R.CPU.Cores}} cores busy, peak RSS {{mib .R.PeakRSSBytes}}{{with .R.ServerCPU}}; server: {{f1 .PerOpMicros}} µs per operation, {{f1 .Cores}} cores busy{{end}}</dd>
<dt>machine</dt><dd>{{.R.Machine.GoVersion}} {{.R.Machine.OS}}/{{.R.Machine.Arch}}, {{.R.Machine.NumCPU}} CPUs (GOMAXPROCS {{.R.Machine.GOMAXPROCS}}){{with .R.Machine.LoadAverage}}, load average {{.}}{{end}}</dd>
</dl>
</section>
{{end}}
</body>
</html>
`))

// WriteHTMLFile is WriteHTML into a file at path, written atomically.
func WriteHTMLFile(path string, runs []*Report, labels []string) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return WriteHTML(w, runs, labels) })
}
