package server

import (
	"context"
	"fmt"
	"slices"
	"testing"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"google.golang.org/grpc/codes"
)

func changeString(c *pb.PermissionChange) string {
	s := fmt.Sprintf("%s:%s#%s@%s:%s", c.GetResource().GetObjectType(), c.GetResource().GetObjectId(), c.GetPermission(),
		c.GetSubject().GetObject().GetObjectType(), c.GetSubject().GetObject().GetObjectId())
	return fmt.Sprintf("%s %v->%v", s, c.GetBefore(), c.GetAfter())
}

// TestDiffPermissions: the summary, then each changed result, over gRPC;
// refusals with their codes.
func TestDiffPermissions(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	f.writeSchema()
	z1 := f.write("doc:1#viewer@group:eng#member", "group:eng#member@user:anne", "group:eng#member@user:bob", "doc:2#owner@user:carl")
	resp, err := f.perms.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "group", OptionalResourceId: "eng", OptionalRelation: "member", OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user", OptionalSubjectId: "anne"}}})
	if err != nil {
		t.Fatal(err)
	}
	f.write("doc:1#banned@user:bob", "doc:2#viewer@user:dan")
	z2 := f.write("doc:3#owner@user:erin")
	_ = resp
	scope := &pb.PermissionScope{ResourceObjectType: "doc", Permission: "view"}
	stream, err := f.perms.DiffPermissions(ctx, &pb.DiffPermissionsRequest{From: z1, To: z2, Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := collect(t, stream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 || msgs[0].GetChange() != nil {
		t.Fatalf("first message is not a summary: %v", msgs)
	}
	if got := msgs[0].GetRelationshipsChanged(); got != 4 {
		t.Errorf("relationships_changed = %d, want 4", got)
	}
	if got := msgs[0].GetCandidates(); got != 3 {
		t.Errorf("candidates = %d, want 3 (docs 1, 2 and 3)", got)
	}
	var got []string
	for _, m := range msgs[1:] {
		got = append(got, changeString(m.GetChange()))
	}
	want := []string{
		"doc:1#view@user:anne PERMISSIONSHIP_HAS_PERMISSION->PERMISSIONSHIP_NO_PERMISSION",
		"doc:1#view@user:bob PERMISSIONSHIP_HAS_PERMISSION->PERMISSIONSHIP_NO_PERMISSION",
		"doc:2#view@user:dan PERMISSIONSHIP_NO_PERMISSION->PERMISSIONSHIP_HAS_PERMISSION",
		"doc:3#view@user:erin PERMISSIONSHIP_NO_PERMISSION->PERMISSIONSHIP_HAS_PERMISSION",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n%q\nwant\n%q", got, want)
	}

	zs := f.writeSchema() // same text: no schema change between z2 and zs
	changed, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: testSchema + "\ndefinition extra {}\n"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		req    *pb.DiffPermissionsRequest
		code   codes.Code
		reason string
	}{
		{"no from", &pb.DiffPermissionsRequest{To: z2, Scope: scope}, codes.InvalidArgument, ReasonInvalidArgument},
		{"no scope", &pb.DiffPermissionsRequest{From: z1, To: z2}, codes.InvalidArgument, ReasonInvalidArgument},
		{"bad type", &pb.DiffPermissionsRequest{From: z1, To: z2, Scope: &pb.PermissionScope{ResourceObjectType: "Doc!", Permission: "view"}}, codes.InvalidArgument, ReasonInvalidArgument},
		{"reversed", &pb.DiffPermissionsRequest{From: z2, To: z1, Scope: scope}, codes.InvalidArgument, ReasonInvalidArgument},
		{"unknown permission", &pb.DiffPermissionsRequest{From: z1, To: z2, Scope: &pb.PermissionScope{ResourceObjectType: "doc", Permission: "nope"}}, codes.InvalidArgument, ReasonUnknownRelation},
		{"subject id without type", &pb.DiffPermissionsRequest{From: z1, To: z2, Scope: &pb.PermissionScope{ResourceObjectType: "doc", Permission: "view", OptionalSubjectId: "anne"}}, codes.InvalidArgument, ReasonInvalidArgument},
		{"schema changed", &pb.DiffPermissionsRequest{From: zs, To: changed.GetWrittenAt(), Scope: scope}, codes.FailedPrecondition, ReasonSchemaChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := f.perms.DiffPermissions(ctx, tc.req)
			if err == nil {
				_, err = collect(t, stream.Recv)
			}
			wantCode(t, err, tc.code, tc.reason)
		})
	}
}

// TestWatchPermissions: a revocation far from the resource (a group
// membership) arrives as an event at the write's zookie, then a
// checkpoint.
func TestWatchPermissionsStream(t *testing.T) {
	f := newFixture(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.writeSchema()
	z1 := f.write("doc:1#viewer@group:eng#member", "group:eng#member@user:anne")
	stream, err := f.watch.WatchPermissions(ctx, &pb.WatchPermissionsRequest{Scope: &pb.PermissionScope{ResourceObjectType: "doc", Permission: "view", OptionalSubjectObjectType: "user"}, OptionalStartCursor: z1})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !first.GetCheckpoint() || first.GetChangesThrough().GetToken() != z1.GetToken() {
		t.Fatalf("first message %v, want a checkpoint at the start zookie", first)
	}
	del, err := f.perms.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{{Operation: pb.RelationshipUpdate_OPERATION_DELETE, Relationship: mustRel(t, "group:eng#member@user:anne")}}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := changeString(ev.GetChange()), "doc:1#view@user:anne PERMISSIONSHIP_HAS_PERMISSION->PERMISSIONSHIP_NO_PERMISSION"; got != want {
		t.Errorf("event %q, want %q", got, want)
	}
	if ev.GetCause() != pb.WatchPermissionsResponse_CAUSE_WRITE || ev.GetChangesThrough().GetToken() != del.GetWrittenAt().GetToken() || !ev.GetEvaluatedAt().AsTime().Equal(f.clock.Now()) {
		t.Errorf("event %v: want cause write at the delete's zookie and the clock's time", ev)
	}
	cp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !cp.GetCheckpoint() || cp.GetChangesThrough().GetToken() != del.GetWrittenAt().GetToken() {
		t.Errorf("after the event: %v, want a checkpoint at the delete's zookie", cp)
	}

	bad, err := f.watch.WatchPermissions(ctx, &pb.WatchPermissionsRequest{Scope: &pb.PermissionScope{ResourceObjectType: "nope", Permission: "view"}})
	if err == nil {
		_, err = bad.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, ReasonUnknownDefinition)
}
