package authzed

import (
	"context"
	"slices"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzedclient "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestBadInputChangesNothing sends malformed, unknown, oversized and
// unsupported requests through authzed.api.v1: each gets SpiceDB's code
// (and, where SpiceDB documents one, its ErrorInfo reason), and neither
// the relationships nor the schema change.
func TestBadInputChangesNothing(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	f.touch("doc:1#viewer@user:anne", "doc:1#owner@user:bob", "doc:2#viewer@user:anne")
	ctx := f.ctx
	az := f.az
	write := func(op v1.RelationshipUpdate_Operation, rels ...*v1.Relationship) error {
		req := &v1.WriteRelationshipsRequest{}
		for _, r := range rels {
			req.Updates = append(req.Updates, &v1.RelationshipUpdate{Operation: op, Relationship: r})
		}
		_, err := az.WriteRelationships(ctx, req)
		return err
	}
	touch := func(rels ...*v1.Relationship) error { return write(v1.RelationshipUpdate_OPERATION_TOUCH, rels...) }
	rel := func(res, relation, sub string) *v1.Relationship {
		r := &v1.Relationship{Relation: relation, Subject: subj(sub)}
		typ, id, _ := strings.Cut(res, ":")
		r.Resource = &v1.ObjectReference{ObjectType: typ, ObjectId: id}
		return r
	}
	check := func(c *v1.Consistency, res, perm, sub string) error {
		typ, id, _ := strings.Cut(res, ":")
		_, err := az.CheckPermission(ctx, &v1.CheckPermissionRequest{Consistency: c, Resource: &v1.ObjectReference{ObjectType: typ, ObjectId: id}, Permission: perm, Subject: subj(sub)})
		return err
	}
	atLeast := func(tok string) *v1.Consistency {
		return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: tok}}}
	}
	tooMany := make([]*v1.Relationship, f.eng.Limits().MaxUpdatesPerWrite+1)
	for i := range tooMany {
		tooMany[i] = rel("doc:x"+strings.Repeat("y", i%7)+string(rune('a'+i%26)), "viewer", "user:u"+string(rune('a'+i/26%26))+string(rune('a'+i%26)))
	}
	metadata, _ := structpb.NewStruct(map[string]any{"ticket": "T-1"})
	bulkItems := make([]*v1.CheckBulkPermissionsRequestItem, f.eng.Limits().MaxBulkCheckItems+1)
	for i := range bulkItems {
		bulkItems[i] = &v1.CheckBulkPermissionsRequestItem{Resource: obj("doc:1"), Permission: "view", Subject: subj("user:anne")}
	}
	stream := func(open func(context.Context) (func() error, error)) error {
		c, cancel := context.WithCancel(ctx)
		defer cancel()
		recv, err := open(c)
		if err != nil {
			return err
		}
		return recv()
	}

	for _, tc := range []struct {
		name   string
		call   func() error
		code   codes.Code
		reason v1.ErrorReason // of the authzed.com ErrorInfo; unspecified: none required
		field  string         // the message names it
	}{
		{"unknown resource type", func() error { return touch(rel("nosuch:1", "viewer", "user:a")) }, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_DEFINITION, ""},
		{"unknown subject type", func() error { return touch(rel("doc:1", "viewer", "nosuch:a")) }, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_DEFINITION, ""},
		{"unknown relation", func() error { return touch(rel("doc:1", "nosuch", "user:a")) }, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION, ""},
		{"malformed resource id", func() error { return touch(rel("doc:bad id", "viewer", "user:a")) }, codes.InvalidArgument, 0, "updates[0].relationship.resource.object_id"},
		{"malformed type", func() error { return touch(rel("Doc!:1", "viewer", "user:a")) }, codes.InvalidArgument, 0, "updates[0].relationship.resource.object_type"},
		{"missing subject", func() error {
			return touch(&v1.Relationship{Resource: obj("doc:1"), Relation: "viewer"})
		}, codes.InvalidArgument, 0, "updates[0].relationship.subject"},
		{"subject type not allowed", func() error { return touch(rel("doc:1", "owner", "group:eng#member")) }, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_INVALID_SUBJECT_TYPE, ""},
		{"write to a permission", func() error { return touch(rel("doc:1", "view", "user:a")) }, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_CANNOT_UPDATE_PERMISSION, ""},
		{"caveat required", func() error { return touch(rel("doc:1", "leveled", "user:a")) }, codes.InvalidArgument, 0, ""},
		{"same relationship twice", func() error {
			return touch(rel("doc:9", "viewer", "user:a"), rel("doc:9", "viewer", "user:a"))
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_UPDATES_ON_SAME_RELATIONSHIP, ""},
		{"create existing", func() error {
			return write(v1.RelationshipUpdate_OPERATION_CREATE, rel("doc:9", "viewer", "user:z"), rel("doc:1", "viewer", "user:anne"))
		}, codes.AlreadyExists, v1.ErrorReason_ERROR_REASON_ATTEMPT_TO_RECREATE_RELATIONSHIP, ""},
		{"oversized caveat context", func() error {
			big, _ := structpb.NewStruct(map[string]any{"required": 1, "pad": strings.Repeat("x", 70<<10)})
			r := rel("doc:1", "leveled", "user:a")
			r.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: "min_level", Context: big}
			return touch(r)
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_MAX_RELATIONSHIP_CONTEXT_SIZE, ""},
		{"no operation", func() error {
			return write(v1.RelationshipUpdate_OPERATION_UNSPECIFIED, rel("doc:9", "viewer", "user:a"))
		}, codes.InvalidArgument, 0, "updates[0].operation"},
		{"no updates", func() error { return touch() }, codes.InvalidArgument, 0, "updates"},
		{"too many updates", func() error { return touch(tooMany...) }, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_TOO_MANY_UPDATES_IN_REQUEST, "updates"},
		{"failed precondition", func() error {
			_, err := az.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{
				Updates:               []*v1.RelationshipUpdate{{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: rel("doc:9", "viewer", "user:a")}},
				OptionalPreconditions: []*v1.Precondition{{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: &v1.RelationshipFilter{ResourceType: "folder"}}},
			})
			return err
		}, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_WRITE_OR_DELETE_PRECONDITION_FAILURE, ""},
		{"transaction metadata", func() error {
			_, err := az.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{
				Updates:                     []*v1.RelationshipUpdate{{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: rel("doc:9", "viewer", "user:a")}},
				OptionalTransactionMetadata: metadata,
			})
			return err
		}, codes.Unimplemented, 0, "optional_transaction_metadata"},
		{"oversized request", func() error {
			_, err := az.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: strings.Repeat("// padding\n", 500_000)})
			return err
		}, codes.ResourceExhausted, 0, ""},
		{"invalid schema", func() error {
			_, err := az.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition doc { relation x: nosuch }"})
			return err
		}, codes.InvalidArgument, 0, ""},
		{"empty schema", func() error {
			_, err := az.WriteSchema(ctx, &v1.WriteSchemaRequest{})
			return err
		}, codes.InvalidArgument, 0, "schema"},
		{"delete without resource type", func() error {
			_, err := az.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{OptionalRelation: "viewer"}})
			return err
		}, codes.InvalidArgument, 0, "relationship_filter.resource_type"},
		{"delete by id prefix", func() error {
			_, err := az.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc", OptionalResourceIdPrefix: "1"}})
			return err
		}, codes.Unimplemented, 0, "optional_resource_id_prefix"},
		{"delete with cursor", func() error {
			_, err := az.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc"}, OptionalCursor: &v1.Cursor{Token: "x"}})
			return err
		}, codes.Unimplemented, 0, "optional_cursor"},
		{"delete over the limit", func() error {
			_, err := az.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc"}, OptionalLimit: 1})
			return err
		}, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_TOO_MANY_RELATIONSHIPS_FOR_TRANSACTIONAL_DELETE, "optional_limit"},
		{"invalid ZedToken", func() error { return check(atLeast("not-a-token"), "doc:1", "view", "user:anne") }, codes.InvalidArgument, 0, ""},
		{"empty ZedToken", func() error { return check(atLeast(""), "doc:1", "view", "user:anne") }, codes.InvalidArgument, 0, "consistency.at_least_as_fresh.token"},
		{"exact snapshot of a bad token", func() error {
			return check(&v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: "AgE8bRONIHjh7AKyEUb1"}}}, "doc:1", "view", "user:anne")
		}, codes.InvalidArgument, 0, ""},
		{"check unknown type", func() error { return check(nil, "nosuch:1", "view", "user:anne") }, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_DEFINITION, ""},
		{"check unknown permission", func() error { return check(nil, "doc:1", "nosuch", "user:anne") }, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION, ""},
		{"check with tracing", func() error {
			_, err := az.CheckPermission(ctx, &v1.CheckPermissionRequest{Resource: obj("doc:1"), Permission: "view", Subject: subj("user:anne"), WithTracing: true})
			return err
		}, codes.Unimplemented, 0, "with_tracing"},
		{"bulk check over the limit", func() error {
			_, err := az.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{Items: bulkItems})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_TOO_MANY_CHECKS_IN_REQUEST, "items"},
		{"read by id prefix", func() error {
			return stream(func(c context.Context) (func() error, error) {
				s, err := az.ReadRelationships(c, &v1.ReadRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc", OptionalResourceIdPrefix: "d"}})
				return func() error { return recvErr(s.Recv) }, err
			})
		}, codes.Unimplemented, 0, "optional_resource_id_prefix"},
		{"lookup with debug", func() error {
			return stream(func(c context.Context) (func() error, error) {
				s, err := az.LookupResources(c, &v1.LookupResourcesRequest{ResourceObjectType: "doc", Permission: "view", Subject: subj("user:anne"), WithDebug: true})
				return func() error { return recvErr(s.Recv) }, err
			})
		}, codes.Unimplemented, 0, "with_debug"},
		{"lookup with a bad cursor", func() error {
			return stream(func(c context.Context) (func() error, error) {
				s, err := az.LookupResources(c, &v1.LookupResourcesRequest{ResourceObjectType: "doc", Permission: "view", Subject: subj("user:anne"), OptionalCursor: &v1.Cursor{Token: "garbage"}})
				return func() error { return recvErr(s.Recv) }, err
			})
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_INVALID_CURSOR, "optional_cursor"},
		{"watch from a bad ZedToken", func() error {
			return stream(func(c context.Context) (func() error, error) {
				s, err := az.Watch(c, &v1.WatchRequest{OptionalStartCursor: &v1.ZedToken{Token: "garbage"}})
				return func() error { _, err := s.Recv(); return err }, err
			})
		}, codes.InvalidArgument, 0, ""},
		{"watch types and filters", func() error {
			return stream(func(c context.Context) (func() error, error) {
				s, err := az.Watch(c, &v1.WatchRequest{OptionalObjectTypes: []string{"doc"}, OptionalRelationshipFilters: []*v1.RelationshipFilter{{ResourceType: "doc"}}})
				return func() error { _, err := s.Recv(); return err }, err
			})
		}, codes.InvalidArgument, 0, "optional_relationship_filters"},
		{"import of an invalid relationship", func() error {
			s, err := az.ImportBulkRelationships(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&v1.ImportBulkRelationshipsRequest{Relationships: []*v1.Relationship{rel("doc:7", "viewer", "user:a"), rel("doc:7", "nosuch", "user:a")}}); err != nil {
				return err
			}
			_, err = s.CloseAndRecv()
			return err
		}, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			beforeRels := f.engineRels(tuple.Filter{})
			beforeSchema, err := az.ReadSchema(ctx, &v1.ReadSchemaRequest{})
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code %v (%v), want %v", st.Code(), err, tc.code)
			}
			if tc.field != "" && !strings.Contains(st.Message(), tc.field) {
				t.Errorf("message %q does not name %s", st.Message(), tc.field)
			}
			if tc.reason != 0 && !slices.Contains(reasons(st), tc.reason.String()) {
				t.Errorf("reasons %v, want %v", reasons(st), tc.reason)
			}
			afterSchema, err := az.ReadSchema(ctx, &v1.ReadSchemaRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if after := f.engineRels(tuple.Filter{}); !slices.Equal(beforeRels, after) {
				t.Fatalf("relationships changed:\n%v\n%v", beforeRels, after)
			}
			if afterSchema.GetSchemaText() != beforeSchema.GetSchemaText() || afterSchema.GetReadAt().GetToken() != beforeSchema.GetReadAt().GetToken() {
				t.Fatalf("the store moved on: read at %v, before %v", afterSchema.GetReadAt(), beforeSchema.GetReadAt())
			}
		})
	}
}

// reasons lists the authzed.com ErrorInfo reasons of st.
func reasons(st *status.Status) []string {
	var out []string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == spicedbDomain {
			out = append(out, info.GetReason())
		}
	}
	return out
}

// TestBearerKeys: SpiceDB clients authenticate with the preshared key as
// a bearer token; a missing or wrong key is refused on every service.
func TestBearerKeys(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	for name, opts := range map[string][]grpc.DialOption{
		"no key":    {grpc.WithTransportCredentials(insecure.NewCredentials())},
		"wrong key": {grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken("not-the-key-at-all-really")},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := authzedclient.NewClient(f.addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.ReadSchema(f.ctx, &v1.ReadSchemaRequest{})
			wantCode(t, err, codes.Unauthenticated)
			_, err = c.WriteRelationships(f.ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
				{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "doc:1#viewer@user:a")},
			}})
			wantCode(t, err, codes.Unauthenticated)
			s, err := c.Watch(f.ctx, &v1.WatchRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			wantCode(t, err, codes.Unauthenticated)
		})
	}
	if got := f.engineRels(tuple.Filter{}); len(got) != 0 {
		t.Fatalf("unauthenticated writes landed: %v", got)
	}
	// The key's name is recorded as the writer, as for pemba.v1.
	z0, err := f.az.ReadSchema(f.ctx, &v1.ReadSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f.touch("doc:1#viewer@user:a")
	for ev, err := range f.eng.Watch(f.ctx, z0.GetReadAt().GetToken()) {
		if err != nil || ev.Caller != "ci" {
			t.Fatalf("write recorded by %q (%v), want the key's name ci", ev.Caller, err)
		}
		break
	}
}

// TestMetrics: authzed.api.v1 calls are counted by the server's metrics,
// under their own method labels and with SpiceDB's codes, and their
// checks in the check metrics.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	f.touch("doc:1#viewer@user:anne")
	for _, sub := range []string{"user:anne", "user:anne", "user:bob"} {
		if _, err := f.az.CheckPermission(f.ctx, &v1.CheckPermissionRequest{Consistency: fullyConsistent(), Resource: obj("doc:1"), Permission: "view", Subject: subj(sub)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.az.CheckPermission(f.ctx, &v1.CheckPermissionRequest{Resource: obj("nosuch:1"), Permission: "view", Subject: subj("user:anne")})
	wantCode(t, err, codes.FailedPrecondition)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pemba_grpc_requests_total", map[string]string{"method": "authzed.PermissionsService/CheckPermission", "code": "OK"}, 3},
		{"pemba_grpc_requests_total", map[string]string{"method": "authzed.PermissionsService/CheckPermission", "code": "FailedPrecondition"}, 1},
		{"pemba_grpc_requests_total", map[string]string{"method": "PermissionsService/CheckPermission"}, 0},
		{"pemba_check_results_total", map[string]string{"outcome": "has_permission"}, 2},
		{"pemba_check_results_total", map[string]string{"outcome": "no_permission"}, 1},
	} {
		if got := f.counter(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
