package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestInvariantViolated: a write that would break a schema invariant fails
// with FAILED_PRECONDITION, reason INVARIANT_VIOLATED, naming the
// invariant and the offending update in the message and in the
// ErrorInfo's metadata, and writes nothing; WriteSchema reports the
// invariant it added.
func TestInvariantViolated(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	resp, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: `use invariants
definition user {}
definition team {
	relation owner: user
	invariant one_owner = count(owner) <= 1
}`})
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	for _, c := range resp.GetChanges() {
		if c.GetKind() == pb.SchemaChange_KIND_INVARIANT_ADDED {
			added = append(added, c.GetDefinition()+"."+c.GetName())
		}
	}
	if strings.Join(added, ",") != "team.one_owner" {
		t.Errorf("WriteSchema changes %v: invariants added %v, want team.one_owner", resp.GetChanges(), added)
	}
	f.write("team:a#owner@user:anne")

	_, err = f.perms.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{
		{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "team:b#owner@user:bob")},
		{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "team:a#owner@user:bob")},
	}})
	wantCode(t, err, codes.FailedPrecondition, ReasonInvariantViolated)
	msg := status.Convert(err).Message()
	for _, want := range []string{"team.one_owner", "count(owner) <= 1", "team:a#owner@user:bob"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %q", msg, want)
		}
	}
	var md map[string]string
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			md = ei.GetMetadata()
		}
	}
	want := map[string]string{"invariant": "team.one_owner", "condition": "count(owner) <= 1", "object": "team:a", "updateIndex": "1", "relationship": "team:a#owner@user:bob"}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("metadata[%q] = %q, want %q (all: %v)", k, md[k], v, md)
		}
	}
	// Nothing of the refused write was written, its valid update included.
	stream, err := f.perms.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: full(), RelationshipFilter: &pb.RelationshipFilter{ResourceType: "team"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := stream.Recv()
		if err != nil {
			break
		}
		got = append(got, m.GetRelationship().GetResource().GetObjectId()+"#"+m.GetRelationship().GetSubject().GetObject().GetObjectId())
	}
	if strings.Join(got, ",") != "a#anne" {
		t.Errorf("after the refused write: %v, want only a#anne", got)
	}
}
