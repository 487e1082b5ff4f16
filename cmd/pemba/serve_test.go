package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// startServe runs `pemba serve args...` until the test ends and returns
// the gRPC address it printed.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-listen", "127.0.0.1:0"}, args...), pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no address printed (exit %d, stderr %s): %v", <-done, stderr.String(), err)
	}
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited with %d; stderr:\n%s", code, stderr.String())
		}
	})
	// "pemba: serving gRPC on ADDR (store ...)"
	fields := strings.Fields(line)
	if len(fields) < 5 {
		t.Fatalf("unexpected first line %q", line)
	}
	return fields[4]
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
	conn := dial(t, startServe(t, "-store", "memory", "-insecure-no-auth", "-cache-bytes", "-1", "-quantum", "-1s", "-max-depth", "20"))
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
		{"no auth choice off loopback", []string{"-store", "memory", "-listen", "0.0.0.0:0"}, "-insecure-no-auth"},
		{"pebble without dir", []string{"-insecure-no-auth", "-data-dir", ""}, "-data-dir"},
		{"unknown store", []string{"-insecure-no-auth", "-store", "mysql"}, "unknown -store"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
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
	if !strings.Contains(stderr.String(), `unknown -store "mysql"`) {
		t.Errorf("stderr %q does not show PEMBA_STORE was read", stderr.String())
	}
	// A flag on the command line wins over the environment.
	t.Setenv("PEMBA_QUANTUM", "not-a-duration")
	stderr.Reset()
	if code := run(t.Context(), []string{"serve", "-quantum", "1s", "-store", "mysql", "-listen", "127.0.0.1:0"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "unknown -store") {
		t.Errorf("exit %d, stderr %q: the command-line -quantum should have hidden PEMBA_QUANTUM", code, stderr.String())
	}
}

func TestIsLoopback(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1:50051": true, "localhost:1": true, "[::1]:1": true, "127.1.2.3:0": true,
		":50051": false, "0.0.0.0:1": false, "10.0.0.1:1": false, "example.com:1": false, "garbage": false,
	}
	for addr, want := range tests {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
