package client

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// failing fails the first fail calls of every method with err; streams
// fail after sending before answers. It counts the calls.
type failing struct {
	pb.UnimplementedPermissionsServiceServer
	mu     sync.Mutex
	fail   int
	err    error
	before int // answers a failing stream sends before failing
	calls  int
}

// next counts a call and returns the error it must fail with, if any.
func (f *failing) next() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.fail {
		return f.err
	}
	return nil
}

func (f *failing) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *failing) CheckPermission(context.Context, *pb.CheckPermissionRequest) (*pb.CheckPermissionResponse, error) {
	if err := f.next(); err != nil {
		return nil, err
	}
	return &pb.CheckPermissionResponse{Permissionship: pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION}, nil
}

func (f *failing) WriteRelationships(context.Context, *pb.WriteRelationshipsRequest) (*pb.WriteRelationshipsResponse, error) {
	if err := f.next(); err != nil {
		return nil, err
	}
	return &pb.WriteRelationshipsResponse{WrittenAt: &pb.Zookie{Token: "z"}}, nil
}

// ReadRelationships sends three relationships (the request's resource
// type), or f.before of them and then fails.
func (f *failing) ReadRelationships(req *pb.ReadRelationshipsRequest, s grpc.ServerStreamingServer[pb.ReadRelationshipsResponse]) error {
	err := f.next()
	n := 3
	if err != nil {
		n = f.before
	}
	for i := range n {
		r := &pb.Relationship{
			Resource: &pb.ObjectReference{ObjectType: req.GetRelationshipFilter().GetResourceType(), ObjectId: string(rune('a' + i))},
			Relation: "viewer",
			Subject:  &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "anne"}},
		}
		if err := s.Send(&pb.ReadRelationshipsResponse{Relationship: r}); err != nil {
			return err
		}
	}
	return err
}

// withReason is a status as a Pemba server sends it.
func withReason(code codes.Code, reason string) error {
	st, err := status.New(code, "datastore fault").WithDetails(&errdetails.ErrorInfo{Domain: errorDomain, Reason: reason})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// TestRetryDecisions: reads are retried on UNAVAILABLE, unary and
// streams before their first answer; writes only when the server says
// nothing was written (or Writes asks); commit-outcome-unknown never.
// Backoff is zero: no sleeps.
func TestRetryDecisions(t *testing.T) {
	serverUnavailable := withReason(codes.Unavailable, reasonUnavailable)
	transportUnavailable := status.Error(codes.Unavailable, "connection reset")
	commitUnknown := withReason(codes.Unknown, reasonCommitOutcomeUnknown)
	tests := []struct {
		name     string
		call     string // check, write, read
		fail     int
		err      error
		before   int
		writes   bool
		code     codes.Code
		attempts int
		got      int // relationships read
	}{
		{"check retried", "check", 2, transportUnavailable, 0, false, codes.OK, 3, 0},
		{"check gives up", "check", 9, serverUnavailable, 0, false, codes.Unavailable, 4, 0},
		{"check not retried on other codes", "check", 1, status.Error(codes.Internal, "x"), 0, false, codes.Internal, 1, 0},
		{"write retried when the server says nothing was written", "write", 2, serverUnavailable, 0, false, codes.OK, 3, 0},
		{"write not retried on a transport failure", "write", 1, transportUnavailable, 0, false, codes.Unavailable, 1, 0},
		{"write retried on a transport failure when asked", "write", 1, transportUnavailable, 0, true, codes.OK, 2, 0},
		{"commit outcome unknown never retried", "write", 1, commitUnknown, 0, true, codes.Unknown, 1, 0},
		{"stream retried before its first answer", "read", 2, serverUnavailable, 0, false, codes.OK, 3, 3},
		{"stream not retried after an answer", "read", 1, serverUnavailable, 1, false, codes.Unavailable, 1, 1},
		{"stream gives up", "read", 9, transportUnavailable, 0, false, codes.Unavailable, 4, 0},
		{"shed check retried", "check", 2, shed(time.Millisecond), 0, false, codes.OK, 3, 0},
		{"shed write retried: the server did not start it", "write", 3, shed(time.Millisecond), 0, false, codes.OK, 4, 0},
		{"shed stream retried", "read", 1, shed(time.Millisecond), 0, false, codes.OK, 2, 3},
		{"shed gives up", "check", 9, shed(time.Millisecond), 0, false, codes.ResourceExhausted, 4, 0},
		{"a limit is not retried", "check", 1, withReason(codes.ResourceExhausted, "LIMIT_EXCEEDED"), 0, false, codes.ResourceExhausted, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &failing{fail: tt.fail, err: tt.err, before: tt.before}
			srv := grpc.NewServer()
			pb.RegisterPermissionsServiceServer(srv, f)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(lis)
			defer srv.Stop()
			c, err := New(lis.Addr().String(), Options{Insecure: true, Retry: Retry{Writes: tt.writes, Backoff: func(int) time.Duration { return 0 }}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			got := 0
			switch tt.call {
			case "check":
				_, err = c.Check(ctx, FullyConsistent(), "doc:1", "view", "user:anne", nil)
			case "write":
				r, perr := tuple.Parse("doc:1#viewer@user:anne")
				if perr != nil {
					t.Fatal(perr)
				}
				_, err = c.Write(ctx, Touch(r))
			case "read":
				for _, rerr := range c.Read(ctx, FullyConsistent(), tuple.Filter{ResourceType: "doc"}) {
					if rerr != nil {
						err = rerr
						break
					}
					got++
				}
			}
			if status.Code(err) != tt.code {
				t.Errorf("err = %v, want code %v", err, tt.code)
			}
			if n := f.count(); n != tt.attempts {
				t.Errorf("server saw %d calls, want %d", n, tt.attempts)
			}
			if got != tt.got {
				t.Errorf("read %d relationships, want %d", got, tt.got)
			}
			if want := tt.err == commitUnknown; CommitOutcomeUnknown(err) != want {
				t.Errorf("CommitOutcomeUnknown(%v) = %v, want %v", err, !want, want)
			}
		})
	}
}

func TestMaxDepthExceeded(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{withReason(codes.ResourceExhausted, reasonMaxDepth), true},
		{withReason(codes.ResourceExhausted, "LIMIT_EXCEEDED"), false},
		{withReason(codes.FailedPrecondition, reasonMaxDepth), false},
		{status.Error(codes.ResourceExhausted, "max depth"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := MaxDepthExceeded(tt.err); got != tt.want {
			t.Errorf("MaxDepthExceeded(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
