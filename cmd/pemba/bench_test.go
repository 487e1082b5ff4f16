package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
	addr := startServe(t, "-datastore", "memory", "-keys-file", keys)
	run1 := []string{"bench", "run", "-mode", "grpc", "-address", addr, "-key-file", keyFile, "-workload", "deep-chain",
		"-ops", "40", "-warmup", "0s", "-concurrency", "2", "-quiet", "-output", "json", "-mix", "check=80,lookup-resources=10,write=10"}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"spicedb API, loads", append(run1, "-api", "spicedb"), 0, "grpc-spicedb/" + addr, ""},
		{"pemba API, on the same data", append(run1, "-api", "pemba", "-skip-load"), 0, "grpc/" + addr, ""},
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
			if rep.Total.Count != 40 || rep.Total.Errors != 0 || rep.Total.Unexpected != 0 {
				t.Errorf("%d operations, %d errors, %d unexpected answers; samples %q", rep.Total.Count, rep.Total.Errors, rep.Total.Unexpected, rep.Samples)
			}
		})
	}
}
