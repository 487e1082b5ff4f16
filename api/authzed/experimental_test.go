//lint:file-ignore SA1019 the test drives the deprecated experimental calls on purpose: older zed and clients still send them.

package authzed

import (
	"fmt"
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzedclient "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestExperimentalBulkCalls: the ExperimentalService calls that older zed
// and clients send for bulk import, export and check answer as their
// PermissionsService successors do.
func TestExperimentalBulkCalls(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	x, err := authzedclient.NewClientWithExperimentalAPIs(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(testKey))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	in, err := x.ExperimentalServiceClient.BulkImportRelationships(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for b := range 3 {
		msg := &v1.BulkImportRelationshipsRequest{}
		for i := range 400 {
			s := fmt.Sprintf("doc:b%d-%03d#viewer@user:u%d", b, i, i%7)
			want = append(want, s)
			msg.Relationships = append(msg.Relationships, mustRel(t, s))
		}
		if err := in.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := in.CloseAndRecv()
	if err != nil || resp.GetNumLoaded() != 1200 {
		t.Fatalf("import: %v, %v", resp, err)
	}
	stored := f.engineRels(tuple.Filter{})
	if !slices.Equal(stored, sorted(want)) {
		t.Fatalf("stored %d, want %d", len(stored), len(want))
	}
	out, err := x.BulkExportRelationships(f.ctx, &v1.BulkExportRelationshipsRequest{Consistency: fullyConsistent(), OptionalLimit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	batches := recvAll(t, out.Recv)
	for _, m := range batches {
		for _, r := range m.GetRelationships() {
			got = append(got, relText(t, r))
		}
	}
	if !slices.Equal(got, stored) || len(batches) != 3 || batches[0].GetAfterResultCursor() == nil {
		t.Fatalf("exported %d in %d batches", len(got), len(batches))
	}
	check, err := x.BulkCheckPermission(f.ctx, &v1.BulkCheckPermissionRequest{Items: []*v1.BulkCheckPermissionRequestItem{
		{Resource: obj("doc:b0-001"), Permission: "view", Subject: subj("user:u1")},
		{Resource: obj("doc:b0-001"), Permission: "view", Subject: subj("user:u2")},
		{Resource: obj("doc:b0-001"), Permission: "nosuch", Subject: subj("user:u1")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := check.GetPairs()
	if len(p) != 3 || p[0].GetItem().GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION ||
		p[1].GetItem().GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION ||
		codes.Code(p[2].GetError().GetCode()) != codes.FailedPrecondition || p[2].GetRequest().GetPermission() != "nosuch" {
		t.Fatalf("bulk check: %v", p)
	}
	_, err = x.ExperimentalCountRelationships(f.ctx, &v1.ExperimentalCountRelationshipsRequest{Name: "x"})
	wantCode(t, err, codes.Unimplemented)
}
