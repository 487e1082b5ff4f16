package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestServeSpiceDBAPI: `pemba serve` answers SpiceDB's authzed.api.v1 on
// its one listener, under the same keys, as the authzed Go client sends
// them; a ZedToken is a zookie of pemba.v1.
func TestServeSpiceDBAPI(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	const secret = "a-long-enough-secret-0123456789"
	if err := os.WriteFile(keys, []byte("ci "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startServe(t, "-datastore", "memory", "-keys-file", keys)
	ctx := context.Background()
	anon, err := authzed.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.ReadSchema(ctx, &v1.ReadSchemaRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a key: %v", err)
	}
	c, err := authzed.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(secret))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc {\n  relation viewer: user\n  permission view = viewer\n}"}); err != nil {
		t.Fatal(err)
	}
	w, err := c.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
		Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
		Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Relation: "viewer",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "anne"}},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: w.GetWrittenAt()}},
		Resource:    &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Permission: "view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "anne"}},
	})
	if err != nil || resp.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("check: %v, %v", resp, err)
	}
	// The same listener serves pemba.v1 and reports both APIs healthy.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(secret))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	own, err := pb.NewPermissionsServiceClient(conn).CheckPermission(ctx, &pb.CheckPermissionRequest{
		Consistency: &pb.Consistency{Requirement: &pb.Consistency_AtExactSnapshot{AtExactSnapshot: &pb.Zookie{Token: w.GetWrittenAt().GetToken()}}},
		Resource:    &pb.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Permission: "view",
		Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "anne"}},
	})
	if err != nil || own.GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("pemba.v1 check at the ZedToken: %v, %v", own, err)
	}
	for _, svc := range []string{"authzed.api.v1.PermissionsService", "authzed.api.v1.SchemaService", "authzed.api.v1.WatchService"} {
		hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %s: %v, %v", svc, hc, err)
		}
	}
}
