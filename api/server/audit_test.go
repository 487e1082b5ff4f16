package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// queryAudit collects a QueryAudit stream.
func queryAudit(t *testing.T, c pb.AuditServiceClient, ctx context.Context, req *pb.QueryAuditRequest) ([]*pb.QueryAuditResponse, error) {
	t.Helper()
	stream, err := c.QueryAudit(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []*pb.QueryAuditResponse
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, msg)
	}
}

// TestAuditService: writes of every kind record the key's name (not
// anything the request says), the request id and the reason; queries
// filter, page and split big entries; verification names a tampered
// entry.
func TestAuditService(t *testing.T) {
	f := newFixture(t, Config{Keys: []Key{{Name: "svc-a", Secret: secretA}, {Name: "svc-b", Secret: secretB}}})
	audit := pb.NewAuditServiceClient(f.conn)
	a := metadata.AppendToOutgoingContext(bearer(secretA), "x-request-id", "req-a")
	b := metadata.AppendToOutgoingContext(bearer(secretB), "x-request-id", "req-b")
	if _, err := f.schema.WriteSchema(a, &pb.WriteSchemaRequest{Schema: testSchema, OptionalReason: "initial model"}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.perms.WriteRelationships(b, &pb.WriteRelationshipsRequest{OptionalReason: "ticket 42", Updates: []*pb.RelationshipUpdate{
		{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "doc:1#viewer@user:tom")},
	}}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.perms.DeleteRelationships(a, &pb.DeleteRelationshipsRequest{OptionalReason: "tom left",
		RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc", OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user", OptionalSubjectId: "tom"}}}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	// An import of 2500 relationships: its entry comes in three messages.
	imp, err := f.perms.ImportRelationships(b)
	if err != nil {
		t.Fatal(err)
	}
	for m := range 5 {
		msg := &pb.ImportRelationshipsRequest{}
		if m == 0 || m == 3 { // later messages may repeat the reason
			msg.OptionalReason = "bulk load"
		}
		for i := range 500 {
			msg.Relationships = append(msg.Relationships, mustRel(t, fmt.Sprintf("doc:i%d#viewer@user:u%d", m, i)))
		}
		if err := imp.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := imp.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}

	msgs, err := queryAudit(t, audit, a, &pb.QueryAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	type head struct {
		rev                                  uint64
		caller, requestID, reason, operation string
		updates                              int
		more                                 bool
	}
	var got []head
	for _, m := range msgs {
		e := m.GetEntry()
		got = append(got, head{e.GetRevision(), e.GetCaller(), e.GetRequestId(), e.GetReason(), e.GetOperation(), len(e.GetUpdates()), m.GetMoreInEntry()})
		if m.GetMoreInEntry() == (m.GetAfterEntry() != nil) {
			t.Errorf("entry %d: more_in_entry %v with after_entry %v", e.GetRevision(), m.GetMoreInEntry(), m.GetAfterEntry())
		}
		if len(e.GetHash()) != 64 || e.GetWrittenAt().GetToken() == "" || e.GetCommittedAt().AsTime().IsZero() {
			t.Errorf("entry %d: hash %q, zookie %v, time %v", e.GetRevision(), e.GetHash(), e.GetWrittenAt(), e.GetCommittedAt())
		}
	}
	want := []head{
		{1, "svc-a", "req-a", "initial model", "WriteSchema", 0, false},
		{2, "svc-b", "req-b", "ticket 42", "WriteRelationships", 1, false},
		{3, "svc-a", "req-a", "tom left", "DeleteRelationships", 1, false},
		{4, "svc-b", "req-b", "bulk load", "ImportRelationships", 1000, true},
		{4, "svc-b", "req-b", "bulk load", "ImportRelationships", 1000, true},
		{4, "svc-b", "req-b", "bulk load", "ImportRelationships", 500, false},
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n got %v\nwant %v", got, want)
	}

	t0 := newFixtureClock().Now()
	revs := func(req *pb.QueryAuditRequest) []uint64 {
		t.Helper()
		msgs, err := queryAudit(t, audit, a, req)
		if err != nil {
			t.Fatalf("QueryAudit(%v): %v", req, err)
		}
		var out []uint64
		for _, m := range msgs {
			if m.GetAfterEntry() != nil {
				out = append(out, m.GetEntry().GetRevision())
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		req  *pb.QueryAuditRequest
		want []uint64
	}{
		{"caller", &pb.QueryAuditRequest{OptionalCaller: "svc-b"}, []uint64{2, 4}},
		{"subject", &pb.QueryAuditRequest{OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user", OptionalSubjectId: "tom"}}, []uint64{2, 3}},
		{"object", &pb.QueryAuditRequest{OptionalResourceType: "doc", OptionalResourceId: "i3"}, []uint64{4}},
		{"relation", &pb.QueryAuditRequest{OptionalRelation: "owner"}, nil},
		{"time", &pb.QueryAuditRequest{OptionalSince: timestamppb.New(t0.Add(time.Minute)), OptionalUntil: timestamppb.New(t0.Add(3 * time.Minute))}, []uint64{2, 3}},
		{"limit", &pb.QueryAuditRequest{OptionalLimit: 2}, []uint64{1, 2}},
	} {
		if got := revs(tc.req); !slices.Equal(got, tc.want) {
			t.Errorf("%s: revisions %v, want %v", tc.name, got, tc.want)
		}
	}
	// Paging with after_entry.
	first, _ := queryAudit(t, audit, a, &pb.QueryAuditRequest{OptionalLimit: 2})
	if got := revs(&pb.QueryAuditRequest{OptionalCursor: first[len(first)-1].GetAfterEntry()}); !slices.Equal(got, []uint64{3, 4}) {
		t.Errorf("after the first page: %v, want [3 4]", got)
	}

	// Bad requests name their field.
	for _, tc := range []struct {
		name   string
		req    *pb.QueryAuditRequest
		code   codes.Code
		reason string
		field  string
	}{
		{"id without type", &pb.QueryAuditRequest{OptionalResourceId: "1"}, codes.InvalidArgument, ReasonInvalidArgument, "optional_resource_type"},
		{"bad type", &pb.QueryAuditRequest{OptionalResourceType: "Doc"}, codes.InvalidArgument, ReasonInvalidArgument, "optional_resource_type"},
		{"bad subject", &pb.QueryAuditRequest{OptionalSubjectFilter: &pb.SubjectFilter{}}, codes.InvalidArgument, ReasonInvalidArgument, "subject_type"},
		{"bad time", &pb.QueryAuditRequest{OptionalSince: &timestamppb.Timestamp{Nanos: -1}}, codes.InvalidArgument, ReasonInvalidArgument, "optional_since"},
		{"empty range", &pb.QueryAuditRequest{OptionalSince: timestamppb.New(t0), OptionalUntil: timestamppb.New(t0)}, codes.InvalidArgument, ReasonInvalidArgument, "since"},
		{"bad cursor", &pb.QueryAuditRequest{OptionalCursor: &pb.Cursor{Token: "nope"}}, codes.InvalidArgument, ReasonInvalidCursor, "optional_cursor"},
	} {
		_, err := queryAudit(t, audit, a, tc.req)
		wantCode(t, err, tc.code, tc.reason)
		if err != nil && !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v does not name %s", tc.name, err, tc.field)
		}
	}
	// Reading the log needs a key.
	_, err = queryAudit(t, audit, context.Background(), &pb.QueryAuditRequest{})
	wantCode(t, err, codes.Unauthenticated, ReasonUnauthenticated)
	_, err = audit.VerifyAudit(context.Background(), &pb.VerifyAuditRequest{})
	wantCode(t, err, codes.Unauthenticated, ReasonUnauthenticated)

	v, err := audit.VerifyAudit(a, &pb.VerifyAuditRequest{})
	if err != nil || !v.GetOk() || v.GetEntriesVerified() != 4 || v.GetHeadRevision() != 4 || v.GetHeadHash() != msgs[len(msgs)-1].GetEntry().GetHash() {
		t.Fatalf("VerifyAudit = %v, %v", v, err)
	}
	f.st.(*memstore.Store).TamperAudit(3, []byte("forged"))
	v, err = audit.VerifyAudit(a, &pb.VerifyAuditRequest{})
	if err != nil || v.GetOk() || v.GetFirstMismatch().GetRevision() != 3 || v.GetEntriesVerified() != 2 || v.GetHeadRevision() != 2 {
		t.Errorf("VerifyAudit after tampering with entry 3 = %v, %v", v, err)
	}
}

// TestAuditReasons: a reason over the limit or not UTF-8 is refused and
// nothing is written; an import whose messages disagree on the reason
// writes nothing.
func TestAuditReasons(t *testing.T) {
	f := newFixture(t, Config{})
	f.writeSchema()
	ctx := context.Background()
	up := []*pb.RelationshipUpdate{{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "doc:1#viewer@user:tom")}}
	_, err := f.perms.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: up, OptionalReason: strings.Repeat("x", 1025)})
	wantCode(t, err, codes.ResourceExhausted, ReasonLimitExceeded)
	_, err = f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: testSchema, OptionalReason: strings.Repeat("x", 1025)})
	wantCode(t, err, codes.ResourceExhausted, ReasonLimitExceeded)
	imp, err := f.perms.ImportRelationships(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, reason := range []string{"one", "two"} {
		if err := imp.Send(&pb.ImportRelationshipsRequest{OptionalReason: reason, Relationships: []*pb.Relationship{mustRel(t, fmt.Sprintf("doc:%d#viewer@user:x", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = imp.CloseAndRecv()
	wantCode(t, err, codes.InvalidArgument, ReasonInvalidArgument)
	if err != nil && !strings.Contains(err.Error(), "messages[1].optional_reason") {
		t.Errorf("import error %v does not name messages[1].optional_reason", err)
	}
	if head, _ := f.eng.Head(ctx); head != 1 {
		t.Errorf("head %d after refused writes, want 1 (the schema)", head)
	}
}

// TestAuditRequestIDGenerated: a write without an acceptable request id
// gets one, returned in the x-request-id response header and recorded.
func TestAuditRequestIDGenerated(t *testing.T) {
	f := newFixture(t, Config{})
	audit := pb.NewAuditServiceClient(f.conn)
	for i, given := range []string{"", "bad id with spaces"} {
		ctx := context.Background()
		if given != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", given)
		}
		var hdr metadata.MD
		// A different text each time: writing the stored schema again
		// commits nothing.
		text := testSchema + fmt.Sprintf("\ndefinition extra%d {}\n", i)
		resp, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: text}, grpc.Header(&hdr))
		if err != nil {
			t.Fatal(err)
		}
		ids := hdr.Get("x-request-id")
		if len(ids) != 1 || len(ids[0]) != 32 {
			t.Fatalf("given %q: response header x-request-id = %q, want a new id", given, ids)
		}
		all, err := queryAudit(t, audit, context.Background(), &pb.QueryAuditRequest{})
		if err != nil {
			t.Fatal(err)
		}
		last := all[len(all)-1].GetEntry()
		if last.GetWrittenAt().GetToken() != resp.GetWrittenAt().GetToken() || last.GetRequestId() != ids[0] {
			t.Errorf("given %q: entry %d has request id %q, want %q", given, last.GetRevision(), last.GetRequestId(), ids[0])
		}
	}
}

// TestAuthorizeAuditRead: the audit handlers' own check, behind the
// interceptor's, refuses what the method table refuses (a key without
// read_audit, a tenant key whatever its scopes, an anonymous caller when
// keys are configured), so that a method exempted from authentication by
// mistake, or a table edited wrongly, cannot expose the log.
func TestAuthorizeAuditRead(t *testing.T) {
	withKeys := newFixture(t, Config{Keys: []Key{{Name: "svc-a", Secret: secretA}}})
	noKeys := newFixture(t, Config{})
	for _, tc := range []struct {
		name string
		srv  *Server
		p    *Principal // nil: no principal in the context
		code codes.Code
	}{
		{"read_audit key", withKeys.srv, &Principal{Name: "auditor", Scopes: ScopeReadAudit}, codes.OK},
		{"admin key", withKeys.srv, &Principal{Name: "admin", Scopes: ScopeAdmin}, codes.OK},
		{"key without read_audit", withKeys.srv, &Principal{Name: "app", Scopes: ScopeCheck | ScopeWriteRelationships}, codes.PermissionDenied},
		{"tenant key with read_audit", withKeys.srv, &Principal{Name: "acme-app", Scopes: ScopeReadAudit, Tenant: "acme/"}, codes.PermissionDenied},
		{"tenant admin key", withKeys.srv, &Principal{Name: "acme-admin", Scopes: ScopeAdmin, Tenant: "acme/"}, codes.PermissionDenied},
		{"anonymous with keys configured", withKeys.srv, nil, codes.Unauthenticated},
		{"anonymous without keys", noKeys.srv, nil, codes.OK},
	} {
		ctx := context.Background()
		if tc.p != nil {
			ctx = withPrincipal(ctx, tc.p)
		}
		err := tc.srv.authorizeAuditRead(ctx, pb.AuditService_QueryAudit_FullMethodName)
		if code, _, _ := classify(err); err == nil && tc.code != codes.OK || err != nil && code != tc.code {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.code)
		}
	}
}
