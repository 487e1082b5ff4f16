package server

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/storetest"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

const testSchema = `use expiration

caveat min_level(level int, required int) {
  level >= required
}

definition user {}

definition group {
  relation member: user | group#member
}

definition doc {
  relation owner: user
  relation viewer: user | user:* | group#member
  relation leveled: user with min_level
  relation temp: user with expiration
  relation banned: user
  permission edit = owner
  permission view = (viewer + owner + leveled + temp) - banned
}

definition folder {
  relation parent: folder
  relation viewer: user
  permission view = viewer + parent->view
}
`

// newFixtureClock returns a fixture's clock, at a fixed time.
func newFixtureClock() *storetest.Clock {
	return storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// fixture is a real server over a real engine and memstore, on a
// loopback port, with clients.
type fixture struct {
	t    testing.TB
	addr string // the server's listening address
	srv  *Server
	eng  *engine.Engine
	st   store.Store // the engine's store, for tests that inspect it
	// clock is the engine's clock (and newFixture's memstore's). It
	// stands still unless a test advances it, so that no answer depends
	// on how fast the machine runs: with the real clock, a test slower
	// than engine.DefaultQuantum saw a MinimizeLatency (or
	// AtLeastAsFresh) read move on to a newer head revision.
	clock  *storetest.Clock
	reg    *prometheus.Registry
	conn   *grpc.ClientConn
	perms  pb.PermissionsServiceClient
	schema pb.SchemaServiceClient
	watch  pb.WatchServiceClient
}

func newFixture(t testing.TB, cfg Config, dial ...grpc.DialOption) *fixture {
	t.Helper()
	clock := newFixtureClock()
	return serveFixture(t, memstore.New(memstore.Options{Now: clock.Now}), clock, engine.Options{}, cfg, dial...)
}

// newFixtureOn serves a given store; the fixture closes it. The store
// keeps its own clock; the engine's is the fixture's.
func newFixtureOn(t testing.TB, st store.Store, cfg Config, dial ...grpc.DialOption) *fixture {
	t.Helper()
	return newFixtureEngine(t, st, engine.Options{}, cfg, dial...)
}

// newFixtureEngine serves a given store with engine options (small
// limits, say); the fixture closes the store. The engine's clock is the
// fixture's, whatever opts.Now says.
func newFixtureEngine(t testing.TB, st store.Store, opts engine.Options, cfg Config, dial ...grpc.DialOption) *fixture {
	t.Helper()
	return serveFixture(t, st, newFixtureClock(), opts, cfg, dial...)
}

func serveFixture(t testing.TB, st store.Store, clock *storetest.Clock, opts engine.Options, cfg Config, dial ...grpc.DialOption) *fixture {
	t.Helper()
	ctx := context.Background()
	opts.Now = clock.Now
	eng, err := engine.Open(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	srv, err := New(eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dial...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		eng.Close()
		st.Close()
	})
	return &fixture{
		t: t, addr: lis.Addr().String(), srv: srv, eng: eng, st: st, clock: clock, reg: reg, conn: conn,
		perms:  pb.NewPermissionsServiceClient(conn),
		schema: pb.NewSchemaServiceClient(conn),
		watch:  pb.NewWatchServiceClient(conn),
	}
}

// writeSchema writes testSchema and returns its zookie.
func (f *fixture) writeSchema() *pb.Zookie {
	f.t.Helper()
	resp, err := f.schema.WriteSchema(context.Background(), &pb.WriteSchemaRequest{Schema: testSchema})
	if err != nil {
		f.t.Fatalf("WriteSchema: %v", err)
	}
	return resp.GetWrittenAt()
}

// write touches relationships given in text form and returns the zookie.
func (f *fixture) write(rels ...string) *pb.Zookie {
	f.t.Helper()
	req := &pb.WriteRelationshipsRequest{}
	for _, s := range rels {
		req.Updates = append(req.Updates, &pb.RelationshipUpdate{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(f.t, s)})
	}
	resp, err := f.perms.WriteRelationships(context.Background(), req)
	if err != nil {
		f.t.Fatalf("WriteRelationships: %v", err)
	}
	return resp.GetWrittenAt()
}

func mustRel(t testing.TB, s string) *pb.Relationship {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	p, err := convert.Relationship(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fresh(z *pb.Zookie) *pb.Consistency {
	return &pb.Consistency{Requirement: &pb.Consistency_AtLeastAsFresh{AtLeastAsFresh: z}}
}

func exact(z *pb.Zookie) *pb.Consistency {
	return &pb.Consistency{Requirement: &pb.Consistency_AtExactSnapshot{AtExactSnapshot: z}}
}

func full() *pb.Consistency {
	return &pb.Consistency{Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: true}}
}

// collect drains a server stream.
func collect[T any](t *testing.T, recv func() (T, error)) ([]T, error) {
	t.Helper()
	var out []T
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// reasonOf returns the ErrorInfo reason of a status error.
func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason()
		}
	}
	return ""
}

func wantCode(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("code = %v (%v), want %v", got, err, code)
	}
	if reason != "" && reasonOf(err) != reason {
		t.Fatalf("reason = %q (%v), want %q", reasonOf(err), err, reason)
	}
}

func TestSchemaWriteRead(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	_, err := f.schema.ReadSchema(ctx, &pb.ReadSchemaRequest{})
	wantCode(t, err, codes.NotFound, ReasonNotFound)

	zk := f.writeSchema()
	if zk.GetToken() == "" {
		t.Fatal("WriteSchema returned no zookie")
	}
	got, err := f.schema.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: fresh(zk)})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSchemaText() != testSchema {
		t.Errorf("ReadSchema text differs:\n%s", got.GetSchemaText())
	}
	if got.GetReadAt().GetToken() == "" {
		t.Error("ReadSchema returned no zookie")
	}

	// A second write reports what changed.
	resp, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: testSchema + "\ndefinition project {}\n"})
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.GetChanges()
	if len(ch) != 1 || ch[0].GetKind() != pb.SchemaChange_KIND_DEFINITION_ADDED || ch[0].GetDefinition() != "project" || ch[0].GetDescription() == "" {
		t.Errorf("WriteSchema changes = %v, want one DEFINITION_ADDED project", ch)
	}

	_, err = f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition doc { relation viewer: nosuch }"})
	wantCode(t, err, codes.InvalidArgument, ReasonInvalidSchema)
}

// TestChangeKindsAreComplete: every kind of schema change has its own
// SchemaChange kind (an unmapped one would reach clients as UNSPECIFIED).
func TestChangeKindsAreComplete(t *testing.T) {
	for k := schema.DefinitionAdded; !strings.HasPrefix(k.String(), "ChangeKind("); k++ {
		if changeKinds[k] == pb.SchemaChange_KIND_UNSPECIFIED {
			t.Errorf("schema change kind %q has no SchemaChange kind", k)
		}
	}
}

func relStrings(t *testing.T, msgs []*pb.ReadRelationshipsResponse) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		r, err := relationshipFromProto("r", m.GetRelationship())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.String())
	}
	return out
}

func TestWriteReadDelete(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	f.writeSchema()
	rels := []string{
		"doc:1#viewer@user:anne",
		"doc:1#viewer@user:bob",
		"doc:2#viewer@group:eng#member",
		"doc:3#owner@user:carl",
		`doc:4#leveled@user:dana[min_level:{"required":3}]`,
		"doc:5#temp@user:erin[expiration:2099-01-01T00:00:00Z]",
	}
	zk := f.write(rels...)

	read := func(req *pb.ReadRelationshipsRequest) ([]string, []*pb.ReadRelationshipsResponse) {
		t.Helper()
		stream, err := f.perms.ReadRelationships(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := collect(t, stream.Recv)
		if err != nil {
			t.Fatal(err)
		}
		return relStrings(t, msgs), msgs
	}
	all, _ := read(&pb.ReadRelationshipsRequest{Consistency: fresh(zk), RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}})
	if !slices.Equal(all, rels) {
		t.Errorf("read all = %q, want %q", all, rels)
	}
	viewers, _ := read(&pb.ReadRelationshipsRequest{Consistency: fresh(zk), RelationshipFilter: &pb.RelationshipFilter{
		ResourceType: "doc", OptionalRelation: "viewer",
		OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user"},
	}})
	if want := rels[:2]; !slices.Equal(viewers, want) {
		t.Errorf("read viewers = %q, want %q", viewers, want)
	}

	// A limited read hands out a cursor that resumes at the same revision.
	first, msgs := read(&pb.ReadRelationshipsRequest{Consistency: fresh(zk), RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}, OptionalLimit: 2})
	cur := msgs[len(msgs)-1].GetAfterResultCursor()
	if len(first) != 2 || cur.GetToken() == "" {
		t.Fatalf("limited read = %q, cursor %v", first, cur)
	}
	f.write("doc:0#viewer@user:zed") // sorts first; must not appear in the resumed read
	rest, _ := read(&pb.ReadRelationshipsRequest{Consistency: full(), RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}, OptionalCursor: cur})
	if got := append(first, rest...); !slices.Equal(got, rels) {
		t.Errorf("paged read = %q, want %q", got, rels)
	}

	// CREATE of an existing relationship.
	_, err := f.perms.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{
		{Operation: pb.RelationshipUpdate_OPERATION_CREATE, Relationship: mustRel(t, rels[0])},
	}})
	wantCode(t, err, codes.AlreadyExists, ReasonAlreadyExists)

	// A failed precondition writes nothing.
	_, err = f.perms.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{
		Updates: []*pb.RelationshipUpdate{{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "doc:9#owner@user:anne")}},
		OptionalPreconditions: []*pb.Precondition{{
			Operation: pb.Precondition_OPERATION_MUST_EXIST,
			Filter:    &pb.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "nope"},
		}},
	})
	wantCode(t, err, codes.FailedPrecondition, ReasonPreconditionFailed)

	// Delete with a limit: refused without allow-partial, partial with it.
	viewerFilter := &pb.RelationshipFilter{ResourceType: "doc", OptionalRelation: "viewer"}
	_, err = f.perms.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{RelationshipFilter: viewerFilter, OptionalLimit: 2})
	wantCode(t, err, codes.FailedPrecondition, ReasonPreconditionFailed)
	del, err := f.perms.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{RelationshipFilter: viewerFilter, OptionalLimit: 2, OptionalAllowPartialDeletions: true})
	if err != nil {
		t.Fatal(err)
	}
	if del.GetRelationshipsDeletedCount() != 2 || del.GetDeletionProgress() != pb.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL {
		t.Errorf("partial delete = %v", del)
	}
	del, err = f.perms.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{RelationshipFilter: viewerFilter})
	if err != nil {
		t.Fatal(err)
	}
	if del.GetRelationshipsDeletedCount() != 2 || del.GetDeletionProgress() != pb.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE {
		t.Errorf("full delete = %v", del)
	}
	left, _ := read(&pb.ReadRelationshipsRequest{Consistency: fresh(del.GetDeletedAt()), RelationshipFilter: viewerFilter})
	if len(left) != 0 {
		t.Errorf("viewers left after delete: %q", left)
	}
	// The old revision still has them.
	old, _ := read(&pb.ReadRelationshipsRequest{Consistency: exact(zk), RelationshipFilter: viewerFilter})
	if len(old) != 3 {
		t.Errorf("viewers at the old revision: %q", old)
	}
}
