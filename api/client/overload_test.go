package client

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// shed is the status an overloaded Pemba server sheds a call with.
func shed(after time.Duration) error {
	st, err := status.New(codes.ResourceExhausted, "server overloaded").WithDetails(
		&errdetails.ErrorInfo{Domain: errorDomain, Reason: "OVERLOADED"},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(after)})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// TestRetryHonoursRetryInfo: a shed call is tried again no sooner than
// the server's RetryInfo asks, even with a zero backoff; and not at all
// when that would be after the call's deadline.
func TestRetryHonoursRetryInfo(t *testing.T) {
	const delay = 60 * time.Millisecond
	for _, tc := range []struct {
		name     string
		timeout  time.Duration // 0: none
		code     codes.Code
		attempts int
	}{
		{"waits the delay, then succeeds", 0, codes.OK, 2},
		{"the deadline comes first: fails at once", delay / 2, codes.ResourceExhausted, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &failing{fail: 1, err: shed(delay)}
			srv := grpc.NewServer()
			pb.RegisterPermissionsServiceServer(srv, f)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(lis)
			defer srv.Stop()
			c, err := New(lis.Addr().String(), Options{Insecure: true, Retry: Retry{Backoff: func(int) time.Duration { return 0 }}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			_, err = c.Check(ctx, nil, "doc:1", "view", "user:anne", nil)
			took := time.Since(start)
			if status.Code(err) != tc.code || f.count() != tc.attempts {
				t.Fatalf("got %v after %d attempts, want %v after %d", err, f.count(), tc.code, tc.attempts)
			}
			if tc.code == codes.OK && took < delay {
				t.Fatalf("retried after %s, before the RetryInfo's %s", took, delay)
			}
			if tc.code != codes.OK {
				if !Overloaded(err) {
					t.Fatalf("Overloaded(%v) = false", err)
				}
				if d, ok := RetryDelay(err); !ok || d != delay {
					t.Fatalf("RetryDelay = %s %v", d, ok)
				}
			}
		})
	}
}
