package main

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// collector is an OTLP/HTTP trace receiver: it keeps the spans it is sent
// and signals each batch.
type collector struct {
	mu      sync.Mutex
	spans   map[string][]string // trace id (hex) -> span names
	service []string            // service.name of each batch
	batches chan struct{}
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				c.service = append(c.service, kv.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				id := hex.EncodeToString(s.GetTraceId())
				c.spans[id] = append(c.spans[id], s.GetName())
			}
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	body, _ = proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Write(body)
	select {
	case c.batches <- struct{}{}:
	default:
	}
}

// has reports whether trace id holds a span of each name.
func (c *collector) has(id string, names ...string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := map[string]bool{}
	for _, n := range c.spans[id] {
		got[n] = true
	}
	for _, n := range names {
		if !got[n] {
			return false
		}
	}
	return true
}

// TestServeTracesOTLP runs `pemba serve -otel-traces otlp-http` against an
// OTLP/HTTP receiver configured through the standard environment, and
// checks that a check sent with a traceparent arrives as spans of the
// caller's trace, from the service named by OTEL_SERVICE_NAME.
func TestServeTracesOTLP(t *testing.T) {
	col := &collector{spans: map[string][]string{}, batches: make(chan struct{}, 1)}
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "pemba-test")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10") // milliseconds: export at once
	addr := startServe(t, "-datastore", "memory", "-otel-traces", "otlp-http")
	conn := dial(t, addr)
	ctx := context.Background()
	if _, err := pb.NewSchemaServiceClient(conn).WriteSchema(ctx, &pb.WriteSchemaRequest{
		Schema: "definition user {}\ndefinition doc { relation viewer: user\n permission view = viewer }"}); err != nil {
		t.Fatal(err)
	}
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	cctx := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	_, err := pb.NewPermissionsServiceClient(conn).CheckPermission(cctx, &pb.CheckPermissionRequest{
		Consistency: &pb.Consistency{Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    &pb.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Permission: "view",
		Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "anne"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pemba.v1.PermissionsService/CheckPermission", "pemba.Check", "pemba.dispatch", "pemba.datastore.QueryRelationships"}
	deadline := time.After(30 * time.Second)
	for !col.has(traceID, want...) {
		select {
		case <-col.batches:
		case <-deadline:
			col.mu.Lock()
			defer col.mu.Unlock()
			t.Fatalf("the receiver has no spans %q on trace %s; it has %v", want, traceID, col.spans)
		}
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, s := range col.service {
		if s != "pemba-test" {
			t.Errorf("service.name %q, want OTEL_SERVICE_NAME's pemba-test", s)
		}
	}
}
