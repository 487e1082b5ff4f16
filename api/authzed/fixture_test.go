package authzed

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzedclient "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/storetest"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// testKey is the preshared key the fixture's server accepts; clients send
// it as SpiceDB clients do, "authorization: Bearer <key>".
const testKey = "s3cret-key-for-the-tests"

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

// fixture is a real pemba server (pemba.v1 and authzed.api.v1 on one
// listener) over a memstore engine on a standing clock, with an authzed-go
// client and pemba.v1 clients.
type fixture struct {
	t     testing.TB
	ctx   context.Context
	addr  string
	eng   *engine.Engine
	clock *storetest.Clock
	reg   *prometheus.Registry // the server's metrics
	az    *authzedclient.Client
	// pemba.v1, on its own connection.
	perms  pb.PermissionsServiceClient
	schema pb.SchemaServiceClient
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOpts(t, engine.Options{})
}

func newFixtureOpts(t testing.TB, opts engine.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	st := memstore.New(memstore.Options{Now: clock.Now})
	opts.Now = clock.Now
	eng, err := engine.Open(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := server.New(eng, server.Config{Keys: []server.Key{{Name: "ci", Secret: testKey}}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	Register(srv, eng)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	addr := lis.Addr().String()
	az, err := authzedclient.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(testKey))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(testKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		az.Close()
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		eng.Close()
		st.Close()
	})
	return &fixture{
		t: t, ctx: ctx, addr: addr, eng: eng, clock: clock, reg: reg, az: az,
		perms: pb.NewPermissionsServiceClient(conn), schema: pb.NewSchemaServiceClient(conn),
	}
}

// writeSchema writes text through authzed.api.v1.
func (f *fixture) writeSchema(text string) *v1.ZedToken {
	f.t.Helper()
	resp, err := f.az.WriteSchema(f.ctx, &v1.WriteSchemaRequest{Schema: text})
	if err != nil {
		f.t.Fatalf("WriteSchema: %v", err)
	}
	return resp.GetWrittenAt()
}

// touch writes relationships given as text through authzed.api.v1.
func (f *fixture) touch(rels ...string) *v1.ZedToken {
	f.t.Helper()
	return f.update(v1.RelationshipUpdate_OPERATION_TOUCH, rels...)
}

func (f *fixture) update(op v1.RelationshipUpdate_Operation, rels ...string) *v1.ZedToken {
	f.t.Helper()
	req := &v1.WriteRelationshipsRequest{}
	for _, s := range rels {
		req.Updates = append(req.Updates, &v1.RelationshipUpdate{Operation: op, Relationship: mustRel(f.t, s)})
	}
	resp, err := f.az.WriteRelationships(f.ctx, req)
	if err != nil {
		f.t.Fatalf("WriteRelationships: %v", err)
	}
	return resp.GetWrittenAt()
}

func mustRel(t testing.TB, s string) *v1.Relationship {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	p, err := toRelationship(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func obj(s string) *v1.ObjectReference {
	o, err := tuple.ParseObject(s)
	if err != nil {
		panic(err)
	}
	return toObject(o)
}

func subj(s string) *v1.SubjectReference {
	sr, err := tuple.ParseSubject(s)
	if err != nil {
		panic(err)
	}
	return toSubject(sr)
}

// engineRels returns every stored relationship, as text, read through the
// engine at the head revision.
func (f *fixture) engineRels(filter tuple.Filter) []string {
	f.t.Helper()
	var out []string
	cursor := ""
	for {
		page, err := f.eng.ReadRelationships(f.ctx, engine.FullyConsistent(), filter, 1000, cursor)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, r := range page.Relationships {
			out = append(out, r.String())
		}
		if page.Next == "" {
			return out
		}
		cursor = page.Next
	}
}

// relText renders a wire relationship as tuple text.
func relText(t testing.TB, r *v1.Relationship) string {
	t.Helper()
	tr, err := relationship("r", r)
	if err != nil {
		t.Fatal(err)
	}
	return tr.String()
}

// recvAll drains a server stream.
func recvAll[T any](t testing.TB, recv func() (*T, error)) []*T {
	t.Helper()
	var out []*T
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		out = append(out, m)
	}
}

// recvErr drains a stream and returns its error (nil at EOF).
func recvErr[T any](recv func() (*T, error)) error {
	for {
		_, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func wantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code %v (%v), want %v", got, err, want)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// consistencies returns every consistency mode of authzed.api.v1, the
// token ones at zt.
func consistencies(zt *v1.ZedToken) map[string]*v1.Consistency {
	return map[string]*v1.Consistency{
		"unset":             nil,
		"minimize_latency":  {Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}},
		"at_least_as_fresh": {Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: zt}},
		"at_exact_snapshot": {Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: zt}},
		"fully_consistent":  {Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
	}
}

// pembaConsistency is the pemba.v1 consistency of the same name.
func pembaConsistency(name string, zt *v1.ZedToken) *pb.Consistency {
	switch name {
	case "minimize_latency":
		return &pb.Consistency{Requirement: &pb.Consistency_MinimizeLatency{MinimizeLatency: true}}
	case "at_least_as_fresh":
		return &pb.Consistency{Requirement: &pb.Consistency_AtLeastAsFresh{AtLeastAsFresh: &pb.Zookie{Token: zt.GetToken()}}}
	case "at_exact_snapshot":
		return &pb.Consistency{Requirement: &pb.Consistency_AtExactSnapshot{AtExactSnapshot: &pb.Zookie{Token: zt.GetToken()}}}
	case "fully_consistent":
		return &pb.Consistency{Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: true}}
	}
	return nil
}

func fullyConsistent() *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
}

func exact(zt *v1.ZedToken) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: zt}}
}

// pembaTouch is a pemba.v1 write touching relationships given as text.
func pembaTouch(t testing.TB, rels ...string) *pb.WriteRelationshipsRequest {
	t.Helper()
	req := &pb.WriteRelationshipsRequest{}
	for _, s := range rels {
		r, err := tuple.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		p, err := convert.Relationship(r)
		if err != nil {
			t.Fatal(err)
		}
		req.Updates = append(req.Updates, &pb.RelationshipUpdate{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: p})
	}
	return req
}

// counter returns the value of a counter of the server's metrics with the
// given labels (0 when absent).
func (f *fixture) counter(name string, labels map[string]string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
