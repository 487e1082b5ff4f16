package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// flaky fails the first n calls of method with UNAVAILABLE and counts
// the calls of every method.
type flaky struct {
	mu     sync.Mutex
	method string
	fail   int
	calls  map[string]int
}

func (f *flaky) option() grpc.ServerOption {
	return grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		f.mu.Lock()
		f.calls[info.FullMethod]++
		n := f.calls[info.FullMethod]
		f.mu.Unlock()
		if info.FullMethod == f.method && n <= f.fail {
			return nil, status.Error(codes.Unavailable, "flaky: try again")
		}
		return h(ctx, req)
	})
}

func (f *flaky) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// TestClientRetries: the Go client retries UNAVAILABLE up to
// MaxAttempts, reads always and writes only when asked, and stops
// waiting when the context ends. Backoff is injected: no sleeps.
func TestClientRetries(t *testing.T) {
	const (
		check = "/pemba.v1.PermissionsService/CheckPermission"
		write = "/pemba.v1.PermissionsService/WriteRelationships"
	)
	tests := []struct {
		name     string
		fail     int
		retry    client.Retry
		method   string
		cancel   bool // the backoff cancels the call's context
		code     codes.Code
		attempts int
	}{
		{"read recovers", 2, client.Retry{MaxAttempts: 3}, check, false, codes.OK, 3},
		{"read gives up", 5, client.Retry{MaxAttempts: 3}, check, false, codes.Unavailable, 3},
		{"default attempts", 10, client.Retry{}, check, false, codes.Unavailable, client.DefaultMaxAttempts},
		{"retries off", 1, client.Retry{MaxAttempts: 1}, check, false, codes.Unavailable, 1},
		{"write not retried", 1, client.Retry{MaxAttempts: 3}, write, false, codes.Unavailable, 1},
		{"write retried when asked", 1, client.Retry{MaxAttempts: 3, Writes: true}, write, false, codes.OK, 2},
		{"context ends the wait", 5, client.Retry{MaxAttempts: 3}, check, true, codes.Unavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := &flaky{method: tt.method, fail: tt.fail, calls: map[string]int{}}
			f := newFixture(t, Config{GRPCOptions: []grpc.ServerOption{fl.option()}})
			f.writeSchema()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tt.retry.Backoff = func(int) time.Duration {
				if tt.cancel {
					cancel()
					return time.Hour // only the context can end this wait
				}
				return 0
			}
			c, err := client.New(f.conn.Target(), client.Options{Insecure: true, Retry: tt.retry})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := tuple.Parse("doc:1#viewer@user:anne")
			if err != nil {
				t.Fatal(err)
			}
			switch tt.method {
			case check:
				_, err = c.Check(ctx, full(), "doc:1", "view", "user:anne", nil)
			case write:
				_, err = c.Write(ctx, client.Touch(r))
			}
			if status.Code(err) != tt.code {
				t.Errorf("err = %v, want code %v", err, tt.code)
			}
			if got := fl.count(tt.method); got != tt.attempts {
				t.Errorf("server saw %d attempts, want %d", got, tt.attempts)
			}
		})
	}
}

// TestClientReadYourWrites: with ReadYourWrites, reads that name no
// consistency carry the zookie of the client's newest write, on unary
// and streaming calls; reads that name one are left alone, and the
// caller's request is not modified.
func TestClientReadYourWrites(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]*pb.Consistency{} // method -> consistency received
	record := func(method string, m any) {
		if r, ok := m.(interface{ GetConsistency() *pb.Consistency }); ok {
			mu.Lock()
			seen[method] = r.GetConsistency()
			mu.Unlock()
		}
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(info.FullMethod, req)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, &recordingStream{ServerStream: ss, record: func(m any) { record(info.FullMethod, m) }})
		}),
	}
	f := newFixture(t, Config{GRPCOptions: opts})
	f.writeSchema()
	c, err := client.New(f.conn.Target(), client.Options{Insecure: true, ReadYourWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if c.Newest() != nil {
		t.Fatal("Newest before any write")
	}
	r, err := tuple.Parse("doc:1#viewer@user:anne")
	if err != nil {
		t.Fatal(err)
	}
	zk, err := c.Write(ctx, client.Touch(r))
	if err != nil {
		t.Fatal(err)
	}
	if c.Newest().GetToken() != zk.GetToken() {
		t.Fatalf("Newest = %v, want %v", c.Newest(), zk)
	}
	req := &pb.CheckPermissionRequest{Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "anne", "")}
	resp, err := c.Permissions.CheckPermission(ctx, req)
	if err != nil || resp.GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("Check = %v, %v", resp, err)
	}
	if req.GetConsistency() != nil {
		t.Error("the caller's request was modified")
	}
	for r, err := range c.LookupResources(ctx, nil, "doc", "view", "user:anne") {
		if err != nil || r.GetResourceObjectId() != "1" {
			t.Fatalf("LookupResources = %v, %v", r, err)
		}
	}
	for _, m := range []string{"/pemba.v1.PermissionsService/CheckPermission", "/pemba.v1.PermissionsService/LookupResources"} {
		if got := seen[m].GetAtLeastAsFresh().GetToken(); got != zk.GetToken() {
			t.Errorf("%s received consistency %v, want at_least_as_fresh %v", m, seen[m], zk)
		}
	}
	// An explicit consistency is sent as it is.
	if _, err := c.Check(ctx, full(), "doc:1", "view", "user:anne", nil); err != nil {
		t.Fatal(err)
	}
	if !seen["/pemba.v1.PermissionsService/CheckPermission"].GetFullyConsistent() {
		t.Errorf("explicit consistency replaced: %v", seen["/pemba.v1.PermissionsService/CheckPermission"])
	}
}

// recordingStream reports every message the server receives.
type recordingStream struct {
	grpc.ServerStream
	record func(any)
}

func (s *recordingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	s.record(m)
	return nil
}
