package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/token"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// TestClassify maps the typed errors of every layer, wrapped as the
// layers wrap them, to codes.
func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("engine: check doc:1#view@user:a: %w", err) }
	tests := []struct {
		name   string
		err    error
		code   codes.Code
		reason string
	}{
		{"canceled", wrap(context.Canceled), codes.Canceled, ReasonCanceled},
		{"deadline", wrap(context.DeadlineExceeded), codes.DeadlineExceeded, ReasonDeadlineExceeded},
		{"canceled wins over the layer", fmt.Errorf("%w: %w", engine.ErrInvalidRequest, context.Canceled), codes.Canceled, ReasonCanceled},
		{"unauthenticated", fmt.Errorf("%w: missing key", ErrUnauthenticated), codes.Unauthenticated, ReasonUnauthenticated},
		{"not found", fmt.Errorf("%w: %w", ErrNotFound, engine.ErrNoSchema), codes.NotFound, ReasonNotFound},
		{"engine limit", &engine.LimitError{Limit: "updates", Max: 1, Got: 2}, codes.ResourceExhausted, ReasonLimitExceeded},
		{"limit inside a field error", fieldErr("updates", &engine.LimitError{Limit: "updates", Max: 1, Got: 2}), codes.ResourceExhausted, ReasonLimitExceeded},
		{"api limit", tooMany("schema", "bytes", 10, 5), codes.ResourceExhausted, ReasonLimitExceeded},
		{"store batch", fmt.Errorf("%w: %w", engine.ErrLimitExceeded, store.ErrBatchTooLarge), codes.ResourceExhausted, ReasonLimitExceeded},
		{"max depth", wrap(&eval.MaxDepthError{Depth: 50}), codes.ResourceExhausted, ReasonMaxDepth},
		{"engine closed", engine.ErrClosed, codes.Unavailable, ReasonUnavailable},
		{"store closed", wrap(store.ErrClosed), codes.Unavailable, ReasonUnavailable},
		{"store unavailable", fmt.Errorf("engine: write: pgstore: query: %w: dial unix /run/pg: connection refused", store.ErrUnavailable), codes.Unavailable, ReasonUnavailable},
		{"commit outcome unknown", fmt.Errorf("engine: write: pgstore: commit: %w: transaction 7", store.ErrCommitUnknown), codes.Unknown, ReasonCommitOutcomeUnknown},
		// pebblestore after a disk fault (TestDiskFaults): the write being
		// synced, then every later write until the store is reopened.
		{"pebble disk full while syncing", fmt.Errorf("engine: write: pebblestore: %w: pebble: fatal commit error: db/000002.log: no space left on device", store.ErrCommitUnknown), codes.Unknown, ReasonCommitOutcomeUnknown},
		{"pebble failed store", fmt.Errorf("engine: write: pebblestore: %w: the store failed earlier and must be reopened: db/000002.log: input/output error", store.ErrUnavailable), codes.Unavailable, ReasonUnavailable},
		{"already exists", fmt.Errorf("engine: update 0: %w", &store.AlreadyExistsError{}), codes.AlreadyExists, ReasonAlreadyExists},
		{"precondition", &engine.PreconditionError{Index: 1}, codes.FailedPrecondition, ReasonPreconditionFailed},
		{"compacted", fmt.Errorf("%w: %w", engine.ErrSnapshotExpired, &store.CompactedError{Requested: 1, Horizon: 5}), codes.FailedPrecondition, ReasonSnapshotExpired},
		{"compacted from the store", &store.CompactedError{Requested: 1, Horizon: 5}, codes.FailedPrecondition, ReasonSnapshotExpired},
		{"unsafe schema change", &engine.UnsafeSchemaChangeError{}, codes.FailedPrecondition, ReasonUnsafeSchemaChange},
		{"no schema", fmt.Errorf("%w (at revision 0)", engine.ErrNoSchema), codes.FailedPrecondition, ReasonNoSchema},
		{"unknown stored caveat", wrap(&eval.CaveatError{Err: eval.ErrUnknownCaveat}), codes.FailedPrecondition, ReasonUnknownStoredCaveat},
		{"invalid schema", fmt.Errorf("%w: %w", engine.ErrInvalidSchema, schema.ErrorList{{Msg: "x"}}), codes.InvalidArgument, ReasonInvalidSchema},
		{"schema error list", schema.ErrorList{{Msg: "x"}}, codes.InvalidArgument, ReasonInvalidSchema},
		{"future zookie", &engine.FutureZookieError{Requested: 9, Head: 2}, codes.InvalidArgument, ReasonFutureZookie},
		{"future revision", &store.FutureError{}, codes.InvalidArgument, ReasonFutureZookie},
		{"invalid zookie", fmt.Errorf("%w: %w", engine.ErrInvalidZookie, token.ErrInvalid), codes.InvalidArgument, ReasonInvalidZookie},
		{"other store's zookie", token.ErrOtherStore, codes.InvalidArgument, ReasonInvalidZookie},
		{"cursor", fieldErr("optional_cursor.token", fmt.Errorf("%w: bad", engine.ErrInvalidCursor)), codes.InvalidArgument, ReasonInvalidCursor},
		{"duplicate update", &engine.DuplicateUpdateError{}, codes.InvalidArgument, ReasonDuplicateUpdate},
		{"relationship", &engine.RelationshipError{Index: 0, Reason: engine.ErrUnknownRelation}, codes.InvalidArgument, ReasonInvalidRelationship},
		{"unknown definition", wrap(&eval.UnknownDefinitionError{Name: "x"}), codes.InvalidArgument, ReasonUnknownDefinition},
		{"unknown relation", wrap(&eval.UnknownRelationError{Definition: "doc", Relation: "x"}), codes.InvalidArgument, ReasonUnknownRelation},
		{"caveat param", wrap(&eval.CaveatError{Err: &schema.CaveatParamError{}}), codes.InvalidArgument, ReasonCaveat},
		{"caveat eval", fmt.Errorf("%w: division by zero", schema.ErrCaveatEval), codes.InvalidArgument, ReasonCaveat},
		{"field", missing("resource"), codes.InvalidArgument, ReasonInvalidArgument},
		{"tuple", fmt.Errorf("x: %w", &tuple.InvalidError{Field: "resource id"}), codes.InvalidArgument, ReasonInvalidArgument},
		{"engine request", fmt.Errorf("%w: negative limit", engine.ErrInvalidRequest), codes.InvalidArgument, ReasonInvalidArgument},
		{"eval request", fmt.Errorf("%w: no reader", eval.ErrInvalidRequest), codes.InvalidArgument, ReasonInvalidArgument},
		{"corrupt store", fmt.Errorf("engine: read: %w", store.ErrCorrupt), codes.Internal, ReasonInternal},
		{"unknown", errors.New("boom"), codes.Internal, ReasonInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, _ := classify(tt.err)
			if code != tt.code || reason != tt.reason {
				t.Errorf("classify(%v) = %v %s, want %v %s", tt.err, code, reason, tt.code, tt.reason)
			}
			st := statusOf(t.Context(), slog.New(slog.DiscardHandler), "/m", tt.err)
			if st.Code() != tt.code || reasonOf(st.Err()) != tt.reason {
				t.Errorf("statusOf = %v %q, want %v %s", st.Code(), reasonOf(st.Err()), tt.code, tt.reason)
			}
		})
	}
}

// TestDatastoreFaultMessages: Unavailable and commit-outcome-unknown
// statuses say what to do and keep the database's message (hosts, paths)
// in the log.
func TestDatastoreFaultMessages(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code codes.Code
		want string // in the message
	}{
		{"unavailable", fmt.Errorf("pgstore: query: %w: dial unix /run/secret/.s.PGSQL.5432: connect: connection refused", store.ErrUnavailable), codes.Unavailable, "retry"},
		{"commit unknown", fmt.Errorf("pgstore: commit: %w: /run/secret", store.ErrCommitUnknown), codes.Unknown, "fully_consistent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			st := statusOf(t.Context(), slog.New(slog.NewTextHandler(&buf, nil)), "/m", tt.err)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.want) || strings.Contains(st.Message(), "secret") {
				t.Errorf("status = %v %q, want %v mentioning %q and not the cause", st.Code(), st.Message(), tt.code, tt.want)
			}
			if !strings.Contains(buf.String(), "/run/secret") {
				t.Errorf("log %q lacks the cause", buf.String())
			}
		})
	}
}

// TestInternalErrorsAreLoggedNotLeaked: the client sees a reference, the
// log has the cause under the same reference.
func TestInternalErrorsAreLoggedNotLeaked(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	st := statusOf(t.Context(), log, "/pemba.v1.PermissionsService/CheckPermission", errors.New("disk on fire at /var/secret"))
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "secret") {
		t.Fatalf("status = %v %q", st.Code(), st.Message())
	}
	ref := strings.TrimSuffix(strings.Fields(st.Message())[3], ";")
	if !strings.Contains(buf.String(), "disk on fire") || !strings.Contains(buf.String(), ref) {
		t.Errorf("log %q lacks the cause or the reference %q", buf.String(), ref)
	}
	if ie := itemError(t.Context(), log, "/m", errors.New("x")); ie.GetCode() != int32(codes.Internal) {
		t.Errorf("itemError code = %d", ie.GetCode())
	}
}

// TestErrorCodes drives every class of bad input through the real server.
func TestErrorCodes(t *testing.T) {
	ctx := context.Background()
	f, zk := queryFixture(t)
	bare := newFixture(t, Config{})  // another datastore
	empty := newFixture(t, Config{}) // no schema
	otherZk := bare.writeSchemaText(t, "definition user {}")
	futureZk := &pb.Zookie{Token: token.EncodeZookie(f.eng.Fingerprint(), 1<<40)}

	check := func(mod func(r *pb.CheckPermissionRequest)) func() error {
		return func() error {
			r := &pb.CheckPermissionRequest{Consistency: fresh(zk), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", "")}
			mod(r)
			_, err := f.perms.CheckPermission(ctx, r)
			return err
		}
	}
	write := func(ups ...*pb.RelationshipUpdate) func() error {
		return func() error {
			_, err := f.perms.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: ups})
			return err
		}
	}
	touch := func(s string) *pb.RelationshipUpdate {
		return &pb.RelationshipUpdate{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, s)}
	}
	rawTouch := func(r *pb.Relationship) *pb.RelationshipUpdate {
		return &pb.RelationshipUpdate{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: r}
	}
	drain := func(open func() (func() error, error)) error {
		recv, err := open()
		if err != nil {
			return err
		}
		for {
			if err := recv(); err != nil {
				return err
			}
		}
	}
	lookup := func(mod func(r *pb.LookupResourcesRequest)) func() error {
		return func() error {
			r := &pb.LookupResourcesRequest{Consistency: fresh(zk), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "anne", "")}
			mod(r)
			return drain(func() (func() error, error) {
				s, err := f.perms.LookupResources(ctx, r)
				return func() error { _, err := s.Recv(); return err }, err
			})
		}
	}
	many := func(n int) []*pb.RelationshipUpdate {
		var ups []*pb.RelationshipUpdate
		for i := range n {
			ups = append(ups, touch(fmt.Sprintf("doc:d%d#viewer@user:u", i)))
		}
		return ups
	}
	// Arrows nest checks one level per folder.
	deep := []*pb.RelationshipUpdate{touch("folder:f0#viewer@user:deep")}
	for i := 1; i <= 60; i++ {
		deep = append(deep, touch(fmt.Sprintf("folder:f%d#parent@folder:f%d", i, i-1)))
	}

	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
		inMsg  string // the message names the field or the problem
	}{
		{"missing resource", check(func(r *pb.CheckPermissionRequest) { r.Resource = nil }), codes.InvalidArgument, ReasonInvalidArgument, "resource: is required"},
		{"malformed type", check(func(r *pb.CheckPermissionRequest) { r.Resource.ObjectType = "Doc" }), codes.InvalidArgument, ReasonInvalidArgument, "resource.object_type"},
		{"malformed subject id", check(func(r *pb.CheckPermissionRequest) { r.Subject.Object.ObjectId = "a b" }), codes.InvalidArgument, ReasonInvalidArgument, "subject.object.object_id"},
		{"empty permission", check(func(r *pb.CheckPermissionRequest) { r.Permission = "" }), codes.InvalidArgument, ReasonInvalidArgument, "permission"},
		{"unknown type", check(func(r *pb.CheckPermissionRequest) { r.Resource.ObjectType = "invoice" }), codes.InvalidArgument, ReasonUnknownDefinition, "invoice"},
		{"unknown permission", check(func(r *pb.CheckPermissionRequest) { r.Permission = "delete" }), codes.InvalidArgument, ReasonUnknownRelation, "delete"},
		{"garbage zookie", check(func(r *pb.CheckPermissionRequest) { r.Consistency = fresh(&pb.Zookie{Token: "garbage"}) }), codes.InvalidArgument, ReasonInvalidZookie, "zookie"},
		{"empty zookie", check(func(r *pb.CheckPermissionRequest) { r.Consistency = exact(&pb.Zookie{}) }), codes.InvalidArgument, ReasonInvalidArgument, "consistency.at_exact_snapshot.token"},
		{"other store's zookie", check(func(r *pb.CheckPermissionRequest) { r.Consistency = fresh(otherZk) }), codes.InvalidArgument, ReasonInvalidZookie, "another datastore"},
		{"future zookie", check(func(r *pb.CheckPermissionRequest) { r.Consistency = fresh(futureZk) }), codes.InvalidArgument, ReasonFutureZookie, "future"},
		{"minimize_latency false", check(func(r *pb.CheckPermissionRequest) {
			r.Consistency = &pb.Consistency{Requirement: &pb.Consistency_MinimizeLatency{}}
		}), codes.InvalidArgument, ReasonInvalidArgument, "consistency.minimize_latency"},
		{"caveat context of the wrong type", check(func(r *pb.CheckPermissionRequest) {
			r.Resource.ObjectId, r.Subject.Object.ObjectId = "secret", "dana"
			r.Context = mustStruct(t, map[string]any{"level": "high"})
		}), codes.InvalidArgument, ReasonCaveat, "level"},
		{"type unknown to the other schema", func() error {
			_, err := bare.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "a", "")})
			return err
		}, codes.InvalidArgument, ReasonUnknownDefinition, "doc"},
		{"no schema", func() error {
			_, err := empty.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "a", "")})
			return err
		}, codes.FailedPrecondition, ReasonNoSchema, "no schema"},
		{"write before schema", func() error {
			_, err := empty.perms.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{touch("doc:1#viewer@user:a")}})
			return err
		}, codes.FailedPrecondition, ReasonNoSchema, "schema"},
		{"max depth", func() error {
			if err := write(deep...)(); err != nil {
				return err
			}
			_, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("folder", "f60"), Permission: "view", Subject: sub("user", "deep", "")})
			return err
		}, codes.ResourceExhausted, ReasonMaxDepth, "depth"},

		{"no updates", write(), codes.InvalidArgument, ReasonInvalidArgument, "updates: is required"},
		{"unspecified operation", write(&pb.RelationshipUpdate{Relationship: mustRel(t, "doc:1#viewer@user:a")}), codes.InvalidArgument, ReasonInvalidArgument, "updates[0].operation"},
		{"unknown relation", write(touch("doc:1#reader@user:a")), codes.InvalidArgument, ReasonInvalidRelationship, "reader"},
		{"write to a permission", write(touch("doc:1#view@user:a")), codes.InvalidArgument, ReasonInvalidRelationship, "permission"},
		{"subject type not allowed", write(touch("doc:1#owner@group:eng")), codes.InvalidArgument, ReasonInvalidRelationship, "allows"},
		{"caveat required", write(touch("doc:1#leveled@user:a")), codes.InvalidArgument, ReasonInvalidRelationship, "caveat"},
		{"expiration not allowed", write(touch("doc:1#owner@user:a[expiration:2099-01-01T00:00:00Z]")), codes.InvalidArgument, ReasonInvalidRelationship, "expiration"},
		{"bad field in the second update", write(touch("doc:1#viewer@user:a"), rawTouch(rel(obj("doc", ""), "viewer", sub("user", "a", "")))), codes.InvalidArgument, ReasonInvalidArgument, "updates[1].relationship.resource.object_id"},
		{"duplicate update", write(touch("doc:1#viewer@user:a"), touch("doc:1#viewer@user:a")), codes.InvalidArgument, ReasonDuplicateUpdate, "both"},
		{"too many updates", write(many(1001)...), codes.ResourceExhausted, ReasonLimitExceeded, "updates"},
		{"too many preconditions", func() error {
			req := &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{touch("doc:1#viewer@user:a")}}
			for range 101 {
				req.OptionalPreconditions = append(req.OptionalPreconditions, &pb.Precondition{Operation: pb.Precondition_OPERATION_MUST_EXIST, Filter: &pb.RelationshipFilter{ResourceType: "doc"}})
			}
			_, err := f.perms.WriteRelationships(ctx, req)
			return err
		}, codes.ResourceExhausted, ReasonLimitExceeded, "optional_preconditions"},
		{"precondition without filter", func() error {
			_, err := f.perms.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{
				Updates:               []*pb.RelationshipUpdate{touch("doc:1#viewer@user:a")},
				OptionalPreconditions: []*pb.Precondition{{Operation: pb.Precondition_OPERATION_MUST_EXIST}},
			})
			return err
		}, codes.InvalidArgument, ReasonInvalidArgument, "optional_preconditions[0].filter"},
		{"delete without resource type", func() error {
			_, err := f.perms.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{}})
			return err
		}, codes.InvalidArgument, ReasonInvalidArgument, "relationship_filter.resource_type"},
		{"delete limit too large", func() error {
			_, err := f.perms.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}, OptionalLimit: MaxDeleteLimit + 1})
			return err
		}, codes.ResourceExhausted, ReasonLimitExceeded, "optional_limit"},

		{"invalid schema", func() error {
			_, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition doc { relation x: nosuch }"})
			return err
		}, codes.InvalidArgument, ReasonInvalidSchema, "nosuch"},
		{"unsafe schema change", func() error {
			_, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: strings.NewReplacer("  relation banned: user\n", "", " - banned", "").Replace(testSchema)})
			return err
		}, codes.FailedPrecondition, ReasonUnsafeSchemaChange, "banned"},
		{"schema too large", func() error {
			_, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: strings.Repeat(" ", MaxSchemaBytes+1)})
			return err
		}, codes.ResourceExhausted, "", ""},
		{"read schema before any", func() error {
			_, err := empty.schema.ReadSchema(ctx, &pb.ReadSchemaRequest{})
			return err
		}, codes.NotFound, ReasonNotFound, "no schema"},

		{"lookup limit too large", lookup(func(r *pb.LookupResourcesRequest) { r.OptionalLimit = 1_000_000 }), codes.ResourceExhausted, ReasonLimitExceeded, "lookup"},
		{"lookup cursor garbage", lookup(func(r *pb.LookupResourcesRequest) { r.OptionalCursor = &pb.Cursor{Token: "AAAA"} }), codes.InvalidArgument, ReasonInvalidCursor, "optional_cursor.token"},
		{"lookup cursor of another lookup", lookup(func(r *pb.LookupResourcesRequest) {
			rev, err := token.DecodeZookie(f.eng.Fingerprint(), zk.GetToken())
			if err != nil {
				t.Fatal(err)
			}
			r.OptionalCursor = &pb.Cursor{Token: token.EncodeCursor(f.eng.Fingerprint(), token.Cursor{Revision: rev, Request: token.RequestHash("another lookup"), Position: "a"})}
		}), codes.InvalidArgument, ReasonInvalidCursor, "different request"},
		{"lookup cursor that is a zookie", lookup(func(r *pb.LookupResourcesRequest) { r.OptionalCursor = &pb.Cursor{Token: zk.GetToken()} }), codes.InvalidArgument, ReasonInvalidCursor, "not a cursor"},
		{"lookup without subject", lookup(func(r *pb.LookupResourcesRequest) { r.Subject = nil }), codes.InvalidArgument, ReasonInvalidArgument, "subject"},
		{"read cursor garbage", func() error {
			return drain(func() (func() error, error) {
				s, err := f.perms.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}, OptionalCursor: &pb.Cursor{Token: "AAAA"}})
				return func() error { _, err := s.Recv(); return err }, err
			})
		}, codes.InvalidArgument, ReasonInvalidCursor, "cursor"},
		{"too many bulk items", func() error {
			req := &pb.CheckBulkPermissionsRequest{}
			for range 1001 {
				req.Items = append(req.Items, &pb.CheckBulkPermissionsRequestItem{Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "a", "")})
			}
			_, err := f.perms.CheckBulkPermissions(ctx, req)
			return err
		}, codes.ResourceExhausted, ReasonLimitExceeded, "items"},
		{"expand unknown permission", func() error {
			_, err := f.perms.ExpandPermissionTree(ctx, &pb.ExpandPermissionTreeRequest{Resource: obj("doc", "1"), Permission: "nosuch"})
			return err
		}, codes.InvalidArgument, ReasonUnknownRelation, "nosuch"},
		{"import batch too large", func() error {
			s, err := f.perms.ImportRelationships(ctx)
			if err != nil {
				return err
			}
			msg := &pb.ImportRelationshipsRequest{}
			for i := range MaxImportBatch + 1 {
				msg.Relationships = append(msg.Relationships, mustRel(t, fmt.Sprintf("doc:i%d#viewer@user:a", i)))
			}
			if err := s.Send(msg); err != nil {
				return err
			}
			_, err = s.CloseAndRecv()
			return err
		}, codes.ResourceExhausted, ReasonLimitExceeded, "messages[0].relationships"},
		{"import invalid relationship", func() error {
			s, err := f.perms.ImportRelationships(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&pb.ImportRelationshipsRequest{Relationships: []*pb.Relationship{mustRel(t, "doc:1#nosuch@user:a")}}); err != nil {
				return err
			}
			_, err = s.CloseAndRecv()
			return err
		}, codes.InvalidArgument, ReasonInvalidRelationship, "nosuch"},
		{"export batch too large", func() error {
			return drain(func() (func() error, error) {
				s, err := f.perms.ExportRelationships(ctx, &pb.ExportRelationshipsRequest{OptionalBatchSize: MaxExportBatch + 1})
				return func() error { _, err := s.Recv(); return err }, err
			})
		}, codes.ResourceExhausted, ReasonLimitExceeded, "optional_batch_size"},
		{"watch bad type", func() error {
			return drain(func() (func() error, error) {
				s, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalObjectTypes: []string{"Doc"}})
				return func() error { _, err := s.Recv(); return err }, err
			})
		}, codes.InvalidArgument, ReasonInvalidArgument, "optional_object_types[0]"},
		{"watch bad zookie", func() error {
			return drain(func() (func() error, error) {
				s, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalStartCursor: &pb.Zookie{Token: "nope"}})
				return func() error { _, err := s.Recv(); return err }, err
			})
		}, codes.InvalidArgument, ReasonInvalidZookie, "zookie"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			wantCode(t, err, tt.code, tt.reason)
			if msg := err.Error(); !strings.Contains(msg, tt.inMsg) {
				t.Errorf("message %q does not contain %q", msg, tt.inMsg)
			}
		})
	}
}

// TestSnapshotExpired reads and watches from a garbage-collected revision.
func TestSnapshotExpired(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st := memstore.New(memstore.Options{GCWindow: time.Minute, Now: clock})
	f := newFixtureOn(t, st, Config{})
	old := f.writeSchema()
	f.write("doc:1#viewer@user:a")
	f.write("doc:1#viewer@user:b")
	now = now.Add(time.Hour)
	f.write("doc:1#viewer@user:c")
	if _, err := st.GC(ctx, now); err != nil {
		t.Fatal(err)
	}
	_, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: exact(old), Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "a", "")})
	wantCode(t, err, codes.FailedPrecondition, ReasonSnapshotExpired)

	s, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalStartCursor: old})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	wantCode(t, err, codes.FailedPrecondition, ReasonSnapshotExpired)
}

// writeSchemaText writes a schema and returns its zookie.
func (f *fixture) writeSchemaText(t *testing.T, text string) *pb.Zookie {
	t.Helper()
	resp, err := f.schema.WriteSchema(context.Background(), &pb.WriteSchemaRequest{Schema: text})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetWrittenAt()
}

// TestMaxDepthStatus: a grant nested past the engine's depth limit fails
// every query the same way: RESOURCE_EXHAUSTED, MAX_DEPTH_EXCEEDED, a
// message naming the path and details saying where it ran and that no
// cycle was seen.
func TestMaxDepthStatus(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	f.writeSchema()
	// folder:f60#view, …, folder:f0#view, folder:f0#viewer: 62 relations.
	rels := []string{"folder:f0#viewer@user:deep"}
	for i := 1; i <= 60; i++ {
		rels = append(rels, fmt.Sprintf("folder:f%d#parent@folder:f%d", i, i-1))
	}
	zk := f.write(rels...)
	cons := fresh(zk)
	res, who := obj("folder", "f60"), sub("user", "deep", "")
	drainStream := func(recv func() error) error {
		for {
			if err := recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	calls := map[string]func() error{
		"CheckPermission": func() error {
			_, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: cons, Resource: res, Permission: "view", Subject: who})
			return err
		},
		"ExpandPermissionTree": func() error {
			_, err := f.perms.ExpandPermissionTree(ctx, &pb.ExpandPermissionTreeRequest{Consistency: cons, Resource: res, Permission: "view"})
			return err
		},
		"LookupResources": func() error {
			s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{Consistency: cons, ResourceObjectType: "folder", Permission: "view", Subject: who})
			if err != nil {
				return err
			}
			return drainStream(func() error { _, err := s.Recv(); return err })
		},
		"LookupSubjects": func() error {
			s, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Consistency: cons, Resource: res, Permission: "view", SubjectObjectType: "user"})
			if err != nil {
				return err
			}
			return drainStream(func() error { _, err := s.Recv(); return err })
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			wantCode(t, err, codes.ResourceExhausted, ReasonMaxDepth)
			if !client.MaxDepthExceeded(err) {
				t.Errorf("client.MaxDepthExceeded(%v) = false", err)
			}
			var info *errdetails.ErrorInfo
			for _, d := range status.Convert(err).Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok {
					info = ei
				}
			}
			md := info.GetMetadata()
			if md["maxDepth"] != "50" || md["pathLength"] != "51" || md["cycle"] != "false" || !strings.HasPrefix(md["from"], "folder:f") {
				t.Errorf("ErrorInfo metadata = %v", md)
			}
			msg := status.Convert(err).Message()
			if !strings.Contains(msg, md["from"]+" -> ") || !strings.Contains(msg, "… 45 more …") || !strings.Contains(msg, "no cycle") {
				t.Errorf("message %q does not name the path", msg)
			}
			// LookupResources meets the shallowest resource past the
			// limit first; the others start where they were asked.
			if name != "LookupResources" && md["from"] != "folder:f60#view" {
				t.Errorf("path from %s, want folder:f60#view", md["from"])
			}
		})
	}
}
