package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestWriteSchemaDryRun: a dry run reports the changes and the flips,
// writes nothing, and fails as the write would.
func TestWriteSchemaDryRun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	const v1 = `definition user {}
definition doc {
	relation viewer: user
	relation editor: user
	permission view = viewer + editor
}`
	if _, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: v1}); err != nil {
		t.Fatal(err)
	}
	f.write("doc:1#editor@user:anne", "doc:2#viewer@user:bob")
	v2 := strings.Replace(v1, "permission view = viewer + editor", "permission view = viewer", 1)
	resp, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: v2, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	im := resp.GetImpact()
	if resp.GetWrittenAt() != nil || len(resp.GetChanges()) != 1 || im.GetEvaluatedAt().GetToken() == "" {
		t.Fatalf("response %v", resp)
	}
	if len(im.GetPermissions()) != 1 || im.GetPermissions()[0].GetRevoked() != 1 || im.GetPermissions()[0].GetResources() != 2 {
		t.Errorf("permissions %v", im.GetPermissions())
	}
	if s := im.GetSamples(); len(s) != 1 || s[0].GetResource().GetObjectId() != "1" || s[0].GetSubject().GetObject().GetObjectId() != "anne" ||
		s[0].GetBefore() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION || s[0].GetAfter() != pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION {
		t.Errorf("samples %v", s)
	}
	read, err := f.schema.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: full()})
	if err != nil || read.GetSchemaText() != v1 {
		t.Errorf("after a dry run the schema is %q (%v)", read.GetSchemaText(), err)
	}
	_, err = f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition user {}", DryRun: true})
	wantCode(t, err, codes.FailedPrecondition, ReasonUnsafeSchemaChange)
	_, err = f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition doc { relation v: nope }", DryRun: true})
	wantCode(t, err, codes.InvalidArgument, ReasonInvalidSchema)
}
