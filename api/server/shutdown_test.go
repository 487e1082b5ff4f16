package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// streamEnds returns a server option that reports, for every stream
// handler of method, the code it returned with: the server-side signal
// that a stream was released. The interceptor runs inside the server's
// own, so it sees handler errors before they become statuses.
func streamEnds(method string) (grpc.ServerOption, <-chan codes.Code) {
	ends := make(chan codes.Code, 8)
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		err := h(srv, ss)
		if info.FullMethod == method {
			code := status.Code(err)
			if errors.Is(err, context.Canceled) {
				code = codes.Canceled
			}
			ends <- code
		}
		return err
	}), ends
}

// TestStreamCancellation: when a client cancels a stream mid-way, the
// server's handler returns (Canceled), for an endless stream (Watch) and
// for one with more results than fit in the transport's buffers
// (LookupResources).
func TestStreamCancellation(t *testing.T) {
	tests := []struct {
		name   string
		method string
		open   func(f *fixture, ctx context.Context, start *pb.Zookie) (func() error, error)
	}{
		{"Watch", "/pemba.v1.WatchService/Watch", func(f *fixture, ctx context.Context, start *pb.Zookie) (func() error, error) {
			// From a zookie taken before the write, so the write's message
			// arrives however late the server starts watching.
			s, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalStartCursor: start})
			if err != nil {
				return nil, err
			}
			f.write("doc:first#viewer@user:anne")
			return func() error { _, err := s.Recv(); return err }, nil
		}},
		{"LookupResources", "/pemba.v1.PermissionsService/LookupResources", func(f *fixture, ctx context.Context, _ *pb.Zookie) (func() error, error) {
			s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{
				Consistency: full(), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "anne", ""),
			})
			if err != nil {
				return nil, err
			}
			return func() error { _, err := s.Recv(); return err }, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt, ends := streamEnds(tt.method)
			f := newFixture(t, Config{GRPCOptions: []grpc.ServerOption{opt}})
			start := f.writeSchema()
			if tt.name == "LookupResources" {
				importDocs(t, f, 20_000)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			recv, err := tt.open(f, ctx, start)
			if err != nil {
				t.Fatal(err)
			}
			if err := recv(); err != nil {
				t.Fatalf("first message: %v", err)
			}
			cancel()
			if code := <-ends; code != codes.Canceled {
				t.Errorf("handler ended with %v, want Canceled", code)
			}
		})
	}
}

// importDocs gives user:anne viewer on n documents.
func importDocs(t *testing.T, f *fixture, n int) {
	t.Helper()
	s, err := f.perms.ImportRelationships(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += MaxImportBatch {
		req := &pb.ImportRelationshipsRequest{}
		for j := i; j < min(n, i+MaxImportBatch); j++ {
			req.Relationships = append(req.Relationships, mustRel(t, fmt.Sprintf("doc:d%06d#viewer@user:anne", j)))
		}
		if err := s.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
}

// TestGracefulStopFinishesInFlight: a call in flight when GracefulStop
// begins completes successfully, and GracefulStop waits for it.
func TestGracefulStopFinishesInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	hold := grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if info.FullMethod == "/pemba.v1.SchemaService/ReadSchema" {
			close(entered)
			<-release
		}
		return h(ctx, req)
	})
	f := newFixture(t, Config{GRPCOptions: []grpc.ServerOption{hold}})
	f.writeSchema()
	called := make(chan error, 1)
	go func() {
		_, err := f.schema.ReadSchema(context.Background(), &pb.ReadSchemaRequest{Consistency: full()})
		called <- err
	}()
	<-entered
	stopped := make(chan struct{})
	go func() { f.srv.GracefulStop(); close(stopped) }()
	for !f.srv.stopping.Load() { // GracefulStop has begun
		runtime.Gosched()
	}
	select {
	case <-stopped:
		t.Fatal("GracefulStop returned with a call in flight")
	default:
	}
	close(release)
	if err := <-called; err != nil {
		t.Fatalf("in-flight call: %v", err)
	}
	<-stopped
}

// TestWatchSeesOtherClient: a Watch stream on one connection sees writes
// made through another.
func TestWatchSeesOtherClient(t *testing.T) {
	f := newFixture(t, Config{})
	zk := f.writeSchema()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalStartCursor: zk})
	if err != nil {
		t.Fatal(err)
	}
	other, err := grpc.NewClient(f.conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	w, err := pb.NewPermissionsServiceClient(other).WriteRelationships(ctx, &pb.WriteRelationshipsRequest{
		Updates: []*pb.RelationshipUpdate{{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "doc:x#viewer@user:bob")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.GetChangesThrough().GetToken(); got != w.GetWrittenAt().GetToken() || len(msg.GetUpdates()) != 1 {
		t.Errorf("watch got %v, want the other client's write at %v", msg, w.GetWrittenAt())
	}
}

// TestHealthHTTP: /healthz follows the engine, /readyz also turns 503
// once the server stops.
func TestHealthHTTP(t *testing.T) {
	f := newFixture(t, Config{})
	h := httptest.NewServer(f.srv.HealthHandler())
	defer h.Close()
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct {
		name            string
		do              func()
		healthz, readyz int
	}{
		{"serving", func() {}, http.StatusOK, http.StatusOK},
		{"stopping", f.srv.GracefulStop, http.StatusOK, http.StatusServiceUnavailable},
		{"engine closed", func() { f.eng.Close() }, http.StatusServiceUnavailable, http.StatusServiceUnavailable},
	}
	for _, s := range steps {
		s.do()
		if got := get("/healthz"); got != s.healthz {
			t.Errorf("%s: /healthz = %d, want %d", s.name, got, s.healthz)
		}
		if got := get("/readyz"); got != s.readyz {
			t.Errorf("%s: /readyz = %d, want %d", s.name, got, s.readyz)
		}
	}
}

// TestGracefulStopEndsWatch: an open Watch or WatchPermissions stream
// does not hold a graceful stop for its grace: the stream ends at once
// with UNAVAILABLE and a hint to resume from the last zookie, and
// GracefulStop returns.
func TestGracefulStopEndsWatch(t *testing.T) {
	tests := []struct {
		name string
		open func(f *fixture, ctx context.Context, start *pb.Zookie) (func() error, error)
	}{
		{"Watch", func(f *fixture, ctx context.Context, start *pb.Zookie) (func() error, error) {
			s, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalStartCursor: start})
			if err != nil {
				return nil, err
			}
			f.write("doc:first#viewer@user:anne")
			return func() error { _, err := s.Recv(); return err }, nil
		}},
		{"WatchPermissions", func(f *fixture, ctx context.Context, start *pb.Zookie) (func() error, error) {
			s, err := f.watch.WatchPermissions(ctx, &pb.WatchPermissionsRequest{OptionalStartCursor: start,
				Scope: &pb.PermissionScope{ResourceObjectType: "doc", Permission: "view", OptionalSubjectObjectType: "user"}})
			if err != nil {
				return nil, err
			}
			// The first message is the checkpoint of the start.
			return func() error { _, err := s.Recv(); return err }, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			zk := f.writeSchema()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			recv, err := tt.open(f, ctx, zk)
			if err != nil {
				t.Fatal(err)
			}
			if err := recv(); err != nil {
				t.Fatalf("first message: %v", err)
			}
			stopped := make(chan struct{})
			go func() { f.srv.GracefulStop(); close(stopped) }()
			err = recv()
			if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "resume with optional_start_cursor") {
				t.Fatalf("Recv after GracefulStop began: %v; want UNAVAILABLE with a resume hint", err)
			}
			select {
			case <-stopped:
			case <-time.After(time.Minute): // a failure bound, not a timing assertion
				t.Fatal("GracefulStop still waits for the stream")
			}
		})
	}
}
