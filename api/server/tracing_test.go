package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// lockedBuffer is a log destination shared by the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// spanSink is an in-memory exporter that signals each export: a server
// ends a call's span after the caller has its answer, so a test waits for
// the spans it expects rather than reading them at once.
type spanSink struct {
	*tracetest.InMemoryExporter
	exported chan struct{}
}

func newSpanSink() *spanSink {
	return &spanSink{InMemoryExporter: tracetest.NewInMemoryExporter(), exported: make(chan struct{}, 1)}
}

func (s *spanSink) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := s.InMemoryExporter.ExportSpans(ctx, spans)
	select {
	case s.exported <- struct{}{}:
	default:
	}
	return err
}

// wait returns the spans exported once they include one of each name,
// failing the test after 10 seconds.
func (s *spanSink) wait(t *testing.T, names ...string) tracetest.SpanStubs {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		spans := s.GetSpans()
		have := map[string]int{}
		for _, sp := range spans {
			have[sp.Name]++
		}
		want := map[string]int{}
		for _, n := range names {
			want[n]++
		}
		done := true
		for n, k := range want {
			done = done && have[n] >= k
		}
		if done {
			return spans
		}
		select {
		case <-s.exported:
		case <-deadline:
			t.Fatalf("spans %q not all exported within 10s; have %v", names, have)
		}
	}
}

// TestTraceHTTP checks that a request on the HTTP listener that carries a
// traceparent is traced as a child of the caller's span, through the
// gateway's loopback call into gRPC, and that its log lines carry the
// trace id.
func TestTraceHTTP(t *testing.T) {
	exp := newSpanSink()
	logs := &lockedBuffer{}
	hs := startHTTP(t, Config{
		Tracing:   Tracing{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))},
		Logger:    slog.New(LogHandler(slog.NewTextHandler(logs, nil))),
		AccessLog: true,
	}, RunConfig{})
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerID = "00f067aa0ba902b7"
	)
	if r := hs.post(t, "/v1/schema/write", `{"schema": "definition user {}"}`); r.code != http.StatusOK {
		t.Fatalf("write schema: status %d: %s", r.code, r.body)
	}
	write := strings.TrimPrefix(pb.SchemaService_WriteSchema_FullMethodName, "/")
	exp.wait(t, "POST /v1/schema/write", write, write)
	exp.Reset()
	if r := hs.post(t, "/v1/schema/read", `{}`, "traceparent", "00-"+traceID+"-"+callerID+"-01"); r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	rpc := strings.TrimPrefix(pb.SchemaService_ReadSchema_FullMethodName, "/")
	spans := exp.wait(t, "POST /v1/schema/read", rpc, rpc)
	names := map[trace.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext.SpanID()] = s.Name
		if got := s.SpanContext.TraceID().String(); got != traceID {
			t.Errorf("span %s on trace %s, want the caller's %s", s.Name, got, traceID)
		}
	}
	// name and kind -> parent's name ("caller": the caller's span).
	want := map[string]string{
		"POST /v1/schema/read " + trace.SpanKindServer.String(): "caller",
		rpc + " " + trace.SpanKindClient.String():               "POST /v1/schema/read",
		rpc + " " + trace.SpanKindServer.String():               rpc,
	}
	got := map[string]string{}
	for _, s := range spans {
		parent := names[s.Parent.SpanID()]
		if s.Parent.SpanID().String() == callerID {
			parent = "caller"
		}
		got[s.Name+" "+s.SpanKind.String()] = parent
	}
	for k, parent := range want {
		if got[k] != parent {
			t.Errorf("span %s: parent %q, want %q (spans: %v)", k, got[k], parent, got)
		}
	}
	for _, msg := range []string{`msg="http request"`, "msg=call"} {
		found := false
		for line := range strings.Lines(logs.String()) {
			found = found || (strings.Contains(line, msg) && strings.Contains(line, "trace_id="+traceID))
		}
		if !found {
			t.Errorf("no %s line with trace_id=%s in the log:\n%s", msg, traceID, logs.String())
		}
	}
}

// TestTraceGRPCSkipsHealth checks that gRPC calls are traced, a failed
// one with its code, and health checks are not.
func TestTraceGRPCSkipsHealth(t *testing.T) {
	exp := newSpanSink()
	f := newFixture(t, Config{Tracing: Tracing{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))}})
	if _, err := healthpb.NewHealthClient(f.conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	// No schema yet: FAILED_PRECONDITION.
	_, err := f.perms.CheckPermission(t.Context(), &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "a", "")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("check without a schema: %v, want FailedPrecondition", err)
	}
	rpc := strings.TrimPrefix(pb.PermissionsService_CheckPermission_FullMethodName, "/")
	var names []string
	for _, s := range exp.wait(t, rpc) {
		names = append(names, s.Name)
	}
	if want := []string{rpc}; !slices.Equal(names, want) {
		t.Errorf("spans %q, want %q", names, want)
	}
}
