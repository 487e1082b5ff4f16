package authzed

import (
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/pemba-authz/pemba/engine"
)

// TestAuditEntries: writes through authzed.api.v1 are in the audit log
// like those of pemba.v1, with the caller from the key, the operation,
// and the call's request id (the caller's own, or a new one sent back in
// the x-request-id response header).
func TestAuditEntries(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	ctx := metadata.AppendToOutgoingContext(f.ctx, "x-request-id", "ticket-7")
	if _, err := f.az.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
		{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "doc:a#viewer@user:anne")},
	}}); err != nil {
		t.Fatal(err)
	}
	var header metadata.MD
	if _, err := f.az.DeleteRelationships(f.ctx, &v1.DeleteRelationshipsRequest{
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc"},
	}, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	generated := header.Get("x-request-id")
	if len(generated) != 1 || generated[0] == "" {
		t.Fatalf("delete without a request id: response header x-request-id = %q", generated)
	}
	seq, err := f.eng.QueryAudit(f.ctx, engine.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ caller, op, requestID string }
	var got []row
	for r, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, row{r.Entry.Caller, r.Entry.Operation, r.Entry.RequestID})
	}
	if len(got) != 3 {
		t.Fatalf("entries %+v, want 3", got)
	}
	want := []row{
		{"ci", engine.OpNameWriteSchema, got[0].requestID},
		{"ci", engine.OpNameWriteRelationships, "ticket-7"},
		{"ci", engine.OpNameDeleteRelationships, generated[0]},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if got[0].requestID == "" {
		t.Error("the schema write has no request id")
	}
}
