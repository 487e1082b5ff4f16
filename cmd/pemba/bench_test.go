package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/bench"
)

// TestBenchAPIs runs `pemba bench run -mode grpc` through both APIs
// against one `pemba serve` with a key, and checks the target flags'
// usage errors.
func TestBenchAPIs(t *testing.T) {
	dir := t.TempDir()
	keys, keyFile := filepath.Join(dir, "keys"), filepath.Join(dir, "key")
	const secret = "bench-secret-0123456789abcdef"
	if err := os.WriteFile(keys, []byte("bench "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, maddr := startServeAddrs(t, "-datastore", "memory", "-keys-file", keys, "-metrics-listen", "127.0.0.1:0")
	run1 := []string{"bench", "run", "-mode", "grpc", "-address", addr, "-key-file", keyFile, "-workload", "deep-chain",
		"-ops", "40", "-warmup", "0s", "-concurrency", "2", "-conns", "3", "-quiet", "-output", "json", "-mix", "check=80,lookup-resources=10,write=10"}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"spicedb API, loads", append(run1, "-api", "spicedb"), 0, "grpc-spicedb/" + addr, ""},
		{"pemba API, on the same data", append(run1, "-api", "pemba", "-skip-load", "-server-metrics", "http://"+maddr+"/metrics"), 0, "grpc/" + addr, ""},
		{"server metrics not there", append(run1, "-api", "pemba", "-skip-load", "-server-metrics", "http://"+maddr+"/nothing"), 1, "", "HTTP 404"},
		{"spicedb API, fully consistent", append(run1, "-api", "spicedb", "-skip-load", "-consistency", "fully_consistent"), 0, "grpc-spicedb/" + addr, ""},
		{"unknown API", append(run1, "-api", "zanzibar"), 2, "", `api "zanzibar" (want pemba or spicedb)`},
		{"-token instead of -key-file", []string{"bench", "run", "-mode", "grpc", "-address", addr, "-token", secret, "-workload", "deep-chain",
			"-ops", "40", "-warmup", "0s", "-concurrency", "1", "-quiet", "-output", "json", "-mix", "check=100", "-skip-load"}, 0, "grpc/" + addr, ""},
		{"-token and -key-file", append(run1, "-token", secret), 2, "", "give -token or -key-file, not both"},
		{"api without grpc mode", []string{"bench", "run", "-api", "spicedb", "-datastore", "memory"}, 2, "", "-api spicedb needs -mode grpc"},
		{"missing CA file", append(run1, "-tls-ca", filepath.Join(dir, "none.pem")), 2, "", "read -tls-ca"},
		{"TLS to a plaintext server", append(run1, "-api", "spicedb", "-tls"), 1, "", "Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q, %q", code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderr)
			}
			if code != 0 {
				return
			}
			var rep bench.Report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if slices.Contains(tt.args, "-server-metrics") && (rep.ServerCPU == nil || rep.ServerCPU.PerOpMicros <= 0) {
				t.Errorf("no server CPU in the report: %+v", rep.ServerCPU)
			}
			if rep.Total.Count != 40 || rep.Total.Errors != 0 || rep.Total.Unexpected != 0 {
				t.Errorf("%d operations, %d errors, %d unexpected answers; samples %q", rep.Total.Count, rep.Total.Errors, rep.Total.Unexpected, rep.Samples)
			}
		})
	}
}

// TestBenchCharts runs a short benchmark with -html and -png-dir, then
// overlays its report with itself through bench compare, and checks the
// usage errors of compare's new forms. The report's command redacts the
// token.
func TestBenchCharts(t *testing.T) {
	dir := t.TempDir()
	one, html, pngs := filepath.Join(dir, "one.json"), filepath.Join(dir, "one.html"), filepath.Join(dir, "png")
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "run", "-datastore", "memory", "-workload", "deep-chain", "-ops", "200", "-warmup", "0s",
		"-quiet", "-output", "json", "-token", "s3cret", "-html", html, "-png-dir", pngs}
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("bench run: exit %d: %s", code, stderr.String())
	}
	if err := os.WriteFile(one, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := bench.ReadReport(one)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rep.Command, "pemba bench run -datastore memory") || strings.Contains(rep.Command, "s3cret") || !strings.Contains(rep.Command, "-token REDACTED") {
		t.Errorf("report command %q", rep.Command)
	}
	if len(rep.Timeline) == 0 || len(rep.Total.CDF) == 0 {
		t.Errorf("report without timeline (%d) or CDF (%d)", len(rep.Timeline), len(rep.Total.CDF))
	}
	for _, f := range []string{html, filepath.Join(pngs, "throughput.png"), filepath.Join(pngs, "latency.png"), filepath.Join(pngs, "cdf.png")} {
		if st, err := os.Stat(f); err != nil || st.Size() < 1000 {
			t.Errorf("%s: %v (size %d)", f, err, st.Size())
		}
	}
	overlay := filepath.Join(dir, "overlay.html")
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"bench", "compare", "-html", overlay, "-labels", "a,b,c", one, one, one}, 0, "HTML report written to " + overlay},
		{[]string{"bench", "compare", "-html", overlay, one}, 0, "HTML report written"},
		{[]string{"bench", "compare", one, one, one}, 2, "give two reports"},
		{[]string{"bench", "compare", "-html", overlay}, 2, "give two reports"},
		{[]string{"bench", "compare", "-html", overlay, "-labels", "a", one, one}, 2, "-labels gives 1 names for 2 reports"},
		{[]string{"bench", "compare", "-html", overlay, filepath.Join(dir, "none.json")}, 1, "none.json"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.stderr)
		}
		if strings.Contains(stderr.String(), "bench: bench:") {
			t.Errorf("%q: repeated prefix: %q", tt.args, stderr.String())
		}
	}
	page, err := os.ReadFile(overlay)
	if err != nil || !strings.Contains(string(page), "<svg") {
		t.Errorf("overlay page: %v", err)
	}
}
