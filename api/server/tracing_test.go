package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

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

// TestTraceHTTP checks that a request on the HTTP listener that carries a
// traceparent is traced as a child of the caller's span, through the
// gateway's loopback call into gRPC, and that its log lines carry the
// trace id.
func TestTraceHTTP(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
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
	exp.Reset()
	if r := hs.post(t, "/v1/schema/read", `{}`, "traceparent", "00-"+traceID+"-"+callerID+"-01"); r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	spans := exp.GetSpans()
	names := map[trace.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext.SpanID()] = s.Name
		if got := s.SpanContext.TraceID().String(); got != traceID {
			t.Errorf("span %s on trace %s, want the caller's %s", s.Name, got, traceID)
		}
	}
	rpc := strings.TrimPrefix(pb.SchemaService_ReadSchema_FullMethodName, "/")
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
	exp := tracetest.NewInMemoryExporter()
	f := newFixture(t, Config{Tracing: Tracing{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))}})
	if _, err := healthpb.NewHealthClient(f.conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	// No schema yet: FAILED_PRECONDITION.
	_, err := f.perms.CheckPermission(t.Context(), &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "a", "")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("check without a schema: %v, want FailedPrecondition", err)
	}
	var names []string
	for _, s := range exp.GetSpans() {
		names = append(names, s.Name)
	}
	if want := []string{strings.TrimPrefix(pb.PermissionsService_CheckPermission_FullMethodName, "/")}; !slices.Equal(names, want) {
		t.Errorf("spans %q, want %q", names, want)
	}
}
