package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/cmd/pemba/internal/cli"
)

// startServe runs `pemba serve args...` until the test ends and returns
// the gRPC address it printed.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	addr, _ := startServeAddrs(t, args...)
	return addr
}

// startServeAddrs is startServe that also returns the metrics address
// (empty without -metrics-listen).
func startServeAddrs(t *testing.T, args ...string) (grpcAddr, metricsAddr string) {
	t.Helper()
	a := startServeAll(t, args...)
	return a.grpc, a.metrics
}

// startServeAll is startServe returning every address printed.
func startServeAll(t *testing.T, args ...string) serveAddrs {
	t.Helper()
	a, _ := startServeLog(t, args...)
	return a
}

// serveLog holds the log lines `pemba serve` writes after its addresses.
type serveLog struct {
	mu    sync.Mutex
	lines []string
	next  int           // lines before it were returned by waitFor
	more  chan struct{} // signalled when lines are added
}

// waitFor returns the fields of the first line not returned before whose
// msg is msg, waiting for the server to log it (failing the test after
// 20 s; the server logs it or the test is broken).
func (l *serveLog) waitFor(t *testing.T, msg string) map[string]string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		for ; l.next < len(l.lines); l.next++ {
			f, err := logFields(l.lines[l.next])
			if err == nil && f["msg"] == msg {
				l.next++
				l.mu.Unlock()
				return f
			}
		}
		l.mu.Unlock()
		select {
		case <-l.more:
		case <-timeout:
			t.Fatalf("the server did not log %q; it logged:\n%s", msg, strings.Join(l.lines, ""))
		}
	}
}

// startServeLog is startServeAll that also returns the log lines that
// follow the addresses.
func startServeLog(t *testing.T, args ...string) (serveAddrs, *serveLog) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-listen", "127.0.0.1:0"}, args...), &stdout, pw)
		pw.Close()
	}()
	// The log goes to stderr: read the addresses from it, keeping a copy.
	br := bufio.NewReader(io.TeeReader(pr, &stderr))
	addrs, err := readServeAddrs(br)
	if err != nil {
		cancel()
		code := <-done
		t.Fatalf("%v (exit %d, stderr %s)", err, code, stderr.String())
	}
	drained := make(chan struct{})
	log := &serveLog{more: make(chan struct{}, 1)}
	go func() {
		defer close(drained)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				log.mu.Lock()
				log.lines = append(log.lines, line)
				log.mu.Unlock()
				select {
				case log.more <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		code := <-done
		<-drained
		if code != 0 {
			t.Errorf("serve exited with %d; stderr:\n%s", code, stderr.String())
		}
	})
	return addrs, log
}

// serveAddrs are the addresses `pemba serve` logs: gRPC's, and the
// metrics' and the HTTP API's base URL ("http://ADDR") when asked for.
type serveAddrs struct{ grpc, metrics, http string }

// readAddrs is readServeAddrs for the gRPC and metrics addresses.
func readAddrs(br *bufio.Reader) (grpcAddr, metricsAddr string, err error) {
	a, err := readServeAddrs(br)
	return a.grpc, a.metrics, err
}

// readServeAddrs reads the log (text format) of `pemba serve` up to the
// line that says it serves gRPC: msg="serving HTTP/JSON" url=http://ADDR/v1/
// (with -http-listen), msg="serving metrics" url=http://ADDR/metrics (with
// -metrics-listen), then msg="serving gRPC" addr=ADDR.
func readServeAddrs(br *bufio.Reader) (serveAddrs, error) {
	var a serveAddrs
	for a.grpc == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			return a, fmt.Errorf("no address logged: %w", err)
		}
		f, err := logFields(line)
		if err != nil {
			return a, err
		}
		switch f["msg"] {
		case "serving HTTP/JSON":
			a.http = strings.TrimSuffix(f["url"], "/v1/")
		case "serving metrics":
			a.metrics = strings.TrimSuffix(strings.TrimPrefix(f["url"], "http://"), "/metrics")
		case "serving gRPC":
			a.grpc = f["addr"]
		}
	}
	return a, nil
}

// logFields parses one line of slog's text format: key=value pairs, a
// value quoted when it holds spaces or quotes.
func logFields(line string) (map[string]string, error) {
	fields := map[string]string{}
	rest := strings.TrimSpace(line)
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || strings.ContainsAny(key, " \"") {
			return nil, fmt.Errorf("not a slog text line: %q", line)
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			v, err := strconv.QuotedPrefix(after)
			if err != nil {
				return nil, fmt.Errorf("log line %q: %w", line, err)
			}
			value, _ = strconv.Unquote(v)
			after = after[len(v):]
		} else {
			value, after, _ = strings.Cut(after, " ")
			after = " " + after
		}
		fields[key] = value
		rest = strings.TrimLeft(after, " ")
	}
	return fields, nil
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestServeMemoryNoAuth(t *testing.T) {
	conn := dial(t, startServe(t, "-datastore", "memory", "-insecure-no-auth", "-cache-bytes", "-1", "-quantum", "-1s", "-max-depth", "20"))
	ctx := context.Background()
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", hc, err)
	}
	if _, err := pb.NewSchemaServiceClient(conn).WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition user {}"}); err != nil {
		t.Fatal(err)
	}
}

func TestServePebbleWithKeys(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	const secret = "a-long-enough-secret-0123456789"
	if err := os.WriteFile(keys, []byte("# test\nhr "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, startServe(t, "-store", "pebble", "-data-dir", filepath.Join(dir, "data"), "-keys-file", keys))
	sc := pb.NewSchemaServiceClient(conn)
	_, err := sc.WriteSchema(context.Background(), &pb.WriteSchemaRequest{Schema: "definition user {}"})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a key: %v", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
	if _, err := sc.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition user {}"}); err != nil {
		t.Fatal(err)
	}
}

func TestServeUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no auth choice off loopback", []string{"-datastore", "memory", "-listen", "0.0.0.0:0"}, "-insecure-no-auth"},
		{"no auth choice, HTTP off loopback", []string{"-datastore", "memory", "-http-listen", "0.0.0.0:0"}, "0.0.0.0:0 is reachable from other hosts"},
		{"pebble without dir", []string{"-insecure-no-auth", "-data-dir", ""}, "-data-dir"},
		{"unknown store", []string{"-insecure-no-auth", "-store", "mysql"}, "unknown -datastore"},
		{"unknown datastore", []string{"-datastore", "mysql"}, "unknown -datastore"},
		{"postgres without uri", []string{"-datastore", "postgres"}, "-datastore-uri"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"negative audit retention", []string{"-datastore", "memory", "-audit-retention", "-1h"}, "-audit-retention"},
		{"tls cert without key", []string{"-datastore", "memory", "-tls-cert", "cert.pem"}, "-tls-cert and -tls-key go together"},
		{"tls key without cert", []string{"-datastore", "memory", "-tls-key", "key.pem"}, "-tls-cert and -tls-key go together"},
		{"unknown trace exporter", []string{"-datastore", "memory", "-otel-traces", "zipkin"}, "-otel-traces: want off, otlp-grpc or otlp-http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), append([]string{"serve", "-listen", "127.0.0.1:0"}, tt.args...), &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestServeFlagsFromEnv(t *testing.T) {
	t.Setenv("PEMBA_STORE", "mysql")
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"serve", "-listen", "127.0.0.1:0"}, &stdout, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), `unknown -datastore "mysql"`) {
		t.Errorf("stderr %q does not show PEMBA_STORE was read", stderr.String())
	}
	// A value that does not parse is named, with its variable, its flag
	// and the format wanted.
	t.Setenv("PEMBA_STORE", "memory")
	for _, tt := range []struct{ env, value, want string }{
		{"PEMBA_QUANTUM", "5 minutes", `environment variable PEMBA_QUANTUM="5 minutes" is not a valid -quantum: want a duration such as 30s, 5m or 1h30m`},
		{"PEMBA_INSECURE_NO_AUTH", "yes please", `PEMBA_INSECURE_NO_AUTH="yes please" is not a valid -insecure-no-auth: want true or false`},
		{"PEMBA_MAX_REQUEST_BYTES", "4MiB", `PEMBA_MAX_REQUEST_BYTES="4MiB" is not a valid -max-request-bytes: want a whole number`},
	} {
		t.Setenv(tt.env, tt.value)
		stderr.Reset()
		if code := run(t.Context(), []string{"serve", "-listen", "127.0.0.1:0"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%s=%q: exit %d, stderr %q; want 2 and %q", tt.env, tt.value, code, stderr.String(), tt.want)
		}
		os.Unsetenv(tt.env)
	}
	// A flag on the command line wins over the environment.
	t.Setenv("PEMBA_STORE", "mysql")
	t.Setenv("PEMBA_QUANTUM", "not-a-duration")
	stderr.Reset()
	if code := run(t.Context(), []string{"serve", "-quantum", "1s", "-store", "mysql", "-listen", "127.0.0.1:0"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "unknown -datastore") {
		t.Errorf("exit %d, stderr %q: the command-line -quantum should have hidden PEMBA_QUANTUM", code, stderr.String())
	}
}

func TestIsLoopback(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1:50051": true, "localhost:1": true, "[::1]:1": true, "127.1.2.3:0": true,
		":50051": false, "0.0.0.0:1": false, "10.0.0.1:1": false, "example.com:1": false, "garbage": false,
	}
	for addr, want := range tests {
		if got := cli.IsLoopback(addr); got != want {
			t.Errorf("cli.IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// httpGet returns the status and body of GET url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestServeMetricsAndProbes drives traffic through a pebble-backed server
// and checks that /metrics exposes every family documented in
// docs/api.md, that the probes answer, and that -max-request-bytes holds.
func TestServeMetricsAndProbes(t *testing.T) {
	addr, maddr := startServeAddrs(t, "-store", "pebble", "-data-dir", filepath.Join(t.TempDir(), "data"),
		"-metrics-listen", "127.0.0.1:0", "-max-request-bytes", "4096")
	if maddr == "" {
		t.Fatal("no metrics address printed")
	}
	conn := dial(t, addr)
	ctx := context.Background()
	if _, err := pb.NewSchemaServiceClient(conn).WriteSchema(ctx, &pb.WriteSchemaRequest{
		Schema: "definition user {}\ndefinition doc { relation viewer: user\n permission view = viewer }"}); err != nil {
		t.Fatal(err)
	}
	pc := pb.NewPermissionsServiceClient(conn)
	rel := &pb.Relationship{
		Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Relation: "viewer",
		Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "anne"}},
	}
	w, err := pc.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{
		{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: rel}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second one hits the result cache
		if _, err := pc.CheckPermission(ctx, &pb.CheckPermissionRequest{
			Consistency: &pb.Consistency{Requirement: &pb.Consistency_AtLeastAsFresh{AtLeastAsFresh: w.GetWrittenAt()}},
			Resource:    rel.Resource, Permission: "view", Subject: rel.Subject,
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A request over -max-request-bytes.
	_, err = pb.NewSchemaServiceClient(conn).WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: strings.Repeat("x", 8192)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized request: %v, want ResourceExhausted", err)
	}

	code, body := httpGet(t, "http://"+maddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, family := range []string{
		`pemba_grpc_requests_total{code="OK",method="PermissionsService/CheckPermission"} 2`,
		"pemba_grpc_request_duration_seconds_bucket",
		"pemba_grpc_in_flight",
		`pemba_check_results_total{outcome="has_permission"} 2`,
		"pemba_check_dispatches_count 2",
		"pemba_check_depth_count 2",
		"pemba_engine_cache_hits_total",
		"pemba_engine_cache_misses_total",
		"pemba_engine_cache_evictions_total",
		"pemba_engine_cache_bytes",
		"pemba_engine_cache_entries",
		"pemba_engine_compiled_schemas",
		`pemba_engine_check_plans_total{plan="arrow_subject_statistics"}`,
		// The checks after the schema write use the evaluator the write
		// prepared: nothing compiled the schema again.
		"pemba_engine_schema_compiles_on_read_total 0",
		"pemba_engine_nested_index_building 0",
		"pemba_engine_nested_index_rebuilds_total",
		"pemba_engine_nested_index_rebuild_failures_total 0",
		"pemba_engine_import_compactions_total 0",
		"pemba_engine_import_compaction_failures_total 0",
		"pemba_engine_nested_index_last_rebuild_seconds",
		`pemba_store_head_revision{store="pebble"} 2`,
		`pemba_store_gc_horizon_revision{store="pebble"}`,
		"pemba_pebble_compactions_total",
		"pemba_pebble_compaction_debt_bytes",
		"pemba_pebble_flushes_total",
		"pemba_pebble_read_amplification",
		"pemba_pebble_block_cache_hits_total",
		"pemba_pebble_block_cache_misses_total",
		"pemba_pebble_block_cache_bytes",
		"pemba_pebble_memtable_bytes",
		"pemba_pebble_disk_usage_bytes",
		"pemba_pebble_sstables",
		"go_goroutines",
	} {
		if !strings.Contains(body, family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, "http://"+maddr+path); code != http.StatusOK || body != "ok\n" {
			t.Errorf("%s = %d %q, want 200 ok", path, code, body)
		}
	}
}

// TestServeHTTPTLS: with -tls-cert and -tls-key the HTTP/JSON listener
// serves HTTPS (the gateway reaching gRPC, also TLS, in-process), and the
// key file's keys are required there too.
func TestServeHTTPTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeTestCert(t, dir)
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("ops serve-test-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startServeAll(t, "-datastore", "memory", "-keys-file", keys, "-tls-cert", certFile, "-tls-key", keyFile, "-http-listen", "127.0.0.1:0")
	if !strings.HasPrefix(a.http, "https://") {
		t.Fatalf("HTTP base %q, want https://", a.http)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, c := range []struct {
		key  string
		want int
	}{{"", http.StatusUnauthorized}, {"serve-test-key-0123456789", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodPost, a.http+"/v1/schema/write", strings.NewReader(`{"schema":"definition user {}"}`))
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("key %q: %d %s, want %d", c.key, resp.StatusCode, body, c.want)
		}
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its
// key as PEM files in dir, and returns their paths and a pool trusting it.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pemba-serve-test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeBlockCache checks serve's default block cache: a quarter of the
// memory, within its floor and ceiling.
func TestServeBlockCache(t *testing.T) {
	for _, tc := range []struct {
		limit int64
		ok    bool
		want  int64
	}{
		{0, false, 64 << 20},        // unknown
		{128 << 20, true, 64 << 20}, // a small container: the floor
		{2 << 30, true, 512 << 20},  // a quarter
		{16 << 30, true, 4 << 30},   // a quarter
		{256 << 30, true, 8 << 30},  // the ceiling
	} {
		if got := serveBlockCache(tc.limit, tc.ok); got != tc.want {
			t.Errorf("serveBlockCache(%d, %v) = %d, want %d", tc.limit, tc.ok, got, tc.want)
		}
	}
}
