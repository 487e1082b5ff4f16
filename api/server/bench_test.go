package server

import (
	"context"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// BenchmarkCheck compares one check through the engine, through the
// server's interceptor chain and handler without a network (the API's own
// cost per call), and through the gRPC API over loopback (adding HTTP/2
// and protobuf on both sides).
func BenchmarkCheck(b *testing.B) {
	f, zk := queryFixture(b)
	ctx := context.Background()
	b.Run("engine", func(b *testing.B) {
		req := engine.CheckRequest{
			Consistency: engine.AtLeastAsFresh(zk.GetToken()),
			CheckRequest: engine.CheckQuery{Resource: tuple.ObjectRef{Type: "doc", ID: "readme"}, Permission: "view",
				Subject: tuple.SubjectRef{Type: "user", ID: "anne"}},
		}
		for b.Loop() {
			if _, err := f.eng.Check(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handler", func(b *testing.B) {
		req := &pb.CheckPermissionRequest{Consistency: fresh(zk), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", "")}
		perms := &permissions{s: f.srv}
		h := chainUnary(f.srv.unaryInterceptors(), &grpc.UnaryServerInfo{Server: perms, FullMethod: pb.PermissionsService_CheckPermission_FullMethodName},
			func(ctx context.Context, req any) (any, error) {
				return perms.CheckPermission(ctx, req.(*pb.CheckPermissionRequest))
			})
		for b.Loop() {
			if _, err := h(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("grpc", func(b *testing.B) {
		req := &pb.CheckPermissionRequest{Consistency: fresh(zk), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", "")}
		for b.Loop() {
			if _, err := f.perms.CheckPermission(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCheckParallel is the shape of the gRPC throughput target: 64
// callers over 4 loopback connections (as the bench client makes them),
// client and server in this process. cpu-ns/op (process CPU time per
// check, both sides) is the figure to compare on a shared machine.
func BenchmarkCheckParallel(b *testing.B) {
	f, zk := queryFixture(b)
	const conns = 4
	clients := make([]pb.PermissionsServiceClient, conns)
	clients[0] = f.perms
	for i := 1; i < conns; i++ {
		conn, err := grpc.NewClient(f.conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		clients[i] = pb.NewPermissionsServiceClient(conn)
	}
	req := &pb.CheckPermissionRequest{Consistency: fresh(zk), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", "")}
	var next atomic.Uint32
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[next.Add(1)%conns]
		ctx := context.Background()
		for pb.Next() {
			if _, err := c.CheckPermission(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
