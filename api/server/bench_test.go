package server

import (
	"context"
	"testing"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// BenchmarkCheck compares one check through the engine with the same check
// through the gRPC API over loopback: the difference is the API's cost.
func BenchmarkCheck(b *testing.B) {
	f, zk := queryFixture(b)
	ctx := context.Background()
	b.Run("engine", func(b *testing.B) {
		req := engine.CheckRequest{
			Consistency: engine.AtLeastAsFresh(zk.GetToken()),
			Resource:    tuple.ObjectRef{Type: "doc", ID: "readme"}, Permission: "view",
			Subject: tuple.SubjectRef{Type: "user", ID: "anne"},
		}
		for b.Loop() {
			if _, err := f.eng.Check(ctx, req); err != nil {
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
