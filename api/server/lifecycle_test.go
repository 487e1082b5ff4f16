package server

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestClosedEngine: calls after the engine closed are Unavailable, so
// clients retry elsewhere.
func TestClosedEngine(t *testing.T) {
	f, zk := queryFixture(t)
	f.eng.Close()
	_, err := f.perms.CheckPermission(context.Background(), &pb.CheckPermissionRequest{
		Consistency: fresh(zk), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", ""),
	})
	wantCode(t, err, codes.Unavailable, ReasonUnavailable)
}

func TestReflection(t *testing.T) {
	f := newFixture(t, Config{Reflection: true, Keys: []Key{{Name: "a", Secret: secretA}}, ReflectionWithoutAuth: true})
	stream, err := reflectionpb.NewServerReflectionClient(f.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range serviceNames {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %q, lacks %s", names, want)
		}
	}
	_ = stream.CloseSend()
}

// TestGracefulStop: health turns NOT_SERVING before the listener closes.
func TestGracefulStop(t *testing.T) {
	f := newFixture(t, Config{})
	f.srv.health.Shutdown() // what GracefulStop does first
	resp, err := healthpb.NewHealthClient(f.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health after shutdown began = %v, %v", resp, err)
	}
	f.srv.GracefulStop()
}
