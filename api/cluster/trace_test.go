package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/pemba-authz/pemba/api/authzed"
	"github.com/pemba-authz/pemba/api/cluster"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// syncBuffer is a log destination shared by the servers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
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

const traceSchema = `
definition user {}
definition folder {
  relation viewer: user
  permission view = viewer
}
definition document {
  relation parent: folder
  permission view = parent->view
}
`

// TestTracePropagates serves two traced nodes of a cluster and checks, for
// a check sent with a W3C traceparent on each API, that every span joins
// the caller's trace: the call's span is the caller's child, the engine's
// the call's, and the owner node's spans descend from the sender's
// dispatch; and that the access log line carries the trace id.
func TestTracePropagates(t *testing.T) {
	ctx := t.Context()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	exp := newSpanSink()
	logs := &syncBuffer{}
	var addrs []string
	var lis []net.Listener
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis, addrs = append(lis, l), append(addrs, l.Addr().String())
	}
	var routers []*cluster.Router
	var engines []*engine.Engine
	for i := range 2 {
		// A provider per node, as separate processes have.
		tracing := server.Tracing{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))}
		r, err := cluster.New(cluster.Config{
			Self: addrs[i], Peers: addrs, Fingerprint: engine.FingerprintOf(st),
			DialOptions: append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, tracing.DialOptions()...),
			Timeout:     10 * time.Second, DownFor: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.Open(ctx, st, engine.Options{Router: r, TracerProvider: tracing.TracerProvider, CacheBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(server.LogHandler(slog.NewTextHandler(logs, nil)))
		srv, err := server.New(e, server.Config{Registerer: prometheus.NewRegistry(), Tracing: tracing, Logger: log, AccessLog: true})
		if err != nil {
			t.Fatal(err)
		}
		authzed.Register(srv, e)
		go srv.Serve(lis[i])
		t.Cleanup(func() { srv.Stop(); r.Close(); e.Close() })
		routers, engines = append(routers, r), append(engines, e)
	}
	if _, _, err := engines[0].WriteSchema(ctx, "test", traceSchema); err != nil {
		t.Fatal(err)
	}
	// A folder that node 0 sends to node 1.
	folder := ""
	for i := range 100 {
		if id := fmt.Sprintf("f%d", i); routers[0].Route("folder", id, "view") != nil {
			folder = id
			break
		}
	}
	if folder == "" {
		t.Fatal("node 0 owns every folder")
	}
	var ups []engine.Update
	for _, s := range []string{"document:d#parent@folder:" + folder, "folder:" + folder + "#viewer@user:tom"} {
		r, err := tuple.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, engine.Update{Op: engine.OpTouch, Relationship: r})
	}
	if _, err := engines[0].WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups}); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addrs[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	tests := []struct {
		api, method string
		call        func(context.Context) error
	}{{
		api: "pemba.v1", method: pb.PermissionsService_CheckPermission_FullMethodName,
		call: func(ctx context.Context) error {
			resp, err := pb.NewPermissionsServiceClient(conn).CheckPermission(ctx, &pb.CheckPermissionRequest{
				Consistency: &pb.Consistency{Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: true}},
				Resource:    &pb.ObjectReference{ObjectType: "document", ObjectId: "d"}, Permission: "view",
				Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "tom"}},
			})
			if err == nil && resp.GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
				err = fmt.Errorf("permissionship %v", resp.GetPermissionship())
			}
			return err
		},
	}, {
		api: "authzed.api.v1", method: v1.PermissionsService_CheckPermission_FullMethodName,
		call: func(ctx context.Context) error {
			resp, err := v1.NewPermissionsServiceClient(conn).CheckPermission(ctx, &v1.CheckPermissionRequest{
				Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
				Resource:    &v1.ObjectReference{ObjectType: "document", ObjectId: "d"}, Permission: "view",
				Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "tom"}},
			})
			if err == nil && resp.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
				err = fmt.Errorf("permissionship %v", resp.GetPermissionship())
			}
			return err
		},
	}}
	dispatchRPC := strings.TrimPrefix(pb.DispatchService_DispatchCheck_FullMethodName, "/")
	for i, tt := range tests {
		exp.Reset()
		traceID := fmt.Sprintf("%032x", i+1)
		parentID := fmt.Sprintf("%016x", 0xabc+i)
		cctx := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+traceID+"-"+parentID+"-01")
		if err := tt.call(cctx); err != nil {
			t.Fatalf("%s: %v", tt.api, err)
		}
		rpc := strings.TrimPrefix(tt.method, "/")
		// The dispatch RPC twice: the client's span and the server's.
		spans := exp.wait(t, rpc, engine.SpanCheck, dispatchRPC, dispatchRPC, engine.SpanDispatchCheck)
		byID := map[trace.SpanID]tracetest.SpanStub{}
		for _, s := range spans {
			byID[s.SpanContext.SpanID()] = s
			if got := s.SpanContext.TraceID().String(); got != traceID {
				t.Errorf("%s: span %s on trace %s, want the caller's %s", tt.api, s.Name, got, traceID)
			}
		}
		// parentName is the name of s's parent span, "caller" for the
		// caller's, "" for an unknown one.
		parentName := func(s tracetest.SpanStub) string {
			if s.Parent.SpanID().String() == parentID {
				return "caller"
			}
			return byID[s.Parent.SpanID()].Name
		}
		want := map[string]string{
			strings.TrimPrefix(tt.method, "/"): "caller",
			engine.SpanCheck:                   strings.TrimPrefix(tt.method, "/"),
			strings.TrimPrefix(pb.DispatchService_DispatchCheck_FullMethodName, "/"): pb.DispatchService_DispatchCheck_FullMethodName[1:],
			engine.SpanDispatchCheck: strings.TrimPrefix(pb.DispatchService_DispatchCheck_FullMethodName, "/"),
		}
		// The dispatch is a client span (node 0) and a server span (node
		// 1) of one name: the server's parent is the client's, whose
		// parent is the evaluator's remote dispatch.
		for name, parent := range want {
			found := false
			for _, s := range spans {
				if s.Name != name || (s.SpanKind == trace.SpanKindClient && name == parent) {
					continue
				}
				found = true
				if got := parentName(s); got != parent {
					t.Errorf("%s: span %s has parent %q, want %q", tt.api, name, got, parent)
				}
			}
			if !found {
				t.Errorf("%s: no span %s among %d", tt.api, name, len(spans))
			}
		}
		for _, s := range spans {
			if s.Name == dispatchRPC && s.SpanKind == trace.SpanKindClient {
				if got := parentName(s); got != "pemba.dispatch.remote" {
					t.Errorf("%s: dispatch client span has parent %q, want pemba.dispatch.remote", tt.api, got)
				}
			}
		}
		if t.Failed() {
			for _, s := range spans {
				t.Logf("%s: span %s (%v), parent %s", tt.api, s.Name, s.SpanKind, parentName(s))
			}
		}
		logged := false
		for line := range strings.Lines(logs.String()) {
			logged = logged || (strings.Contains(line, "msg=call method="+tt.method) && strings.Contains(line, "trace_id="+traceID))
		}
		if !logged {
			t.Errorf("%s: no access log line with trace_id=%s:\n%s", tt.api, traceID, logs.String())
		}
	}
}
