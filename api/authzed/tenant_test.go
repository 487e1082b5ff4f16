//lint:file-ignore SA1019 the boundary test tries the deprecated experimental calls too: older zed and clients still send them.
package authzed

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/grpcutil"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// The tenants' keys: each holds every data scope, bound to its prefix.
const (
	acmeKey   = "acme-secret-0123456789"
	globexKey = "globex-secret-0123456789"
	adminKey  = "admin-secret-0123456789"
)

const acmeSchema = `definition acme/user {}

// Acme's documents.
definition acme/doc {
	relation viewer: acme/user
	relation parent: acme/folder
	permission view = viewer + parent->view
}

definition acme/folder {
	relation viewer: acme/user
	permission view = viewer
}
`

const globexSchema = `definition globex/user {}

// Globex's secret documents.
definition globex/doc {
	relation viewer: globex/user
	permission view = viewer
}
`

// tenantFixture is a pemba server with pemba.v1, authzed.api.v1 and the
// HTTP gateway, and a connection per key.
type tenantFixture struct {
	ctx      context.Context
	httpAddr string
	conns    map[string]*grpc.ClientConn // by key
	reg      *prometheus.Registry
}

func newTenantFixture(t *testing.T) *tenantFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := engine.Open(ctx, memstore.New(memstore.Options{}), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := server.ScopeCheck | server.ScopeReadRelationships | server.ScopeWriteRelationships |
		server.ScopeReadSchema | server.ScopeWriteSchema | server.ScopeWatch
	reg := prometheus.NewRegistry()
	srv, err := server.New(eng, server.Config{Registerer: reg, Keys: []server.Key{
		{Name: "admin", Secret: adminKey},
		{Name: "acme-app", Secret: acmeKey, Scopes: data, Tenant: "acme/"},
		{Name: "globex-app", Secret: globexKey, Scopes: data, Tenant: "globex/"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	Register(srv, eng)
	grpcAddr, httpAddr := make(chan net.Addr, 1), make(chan net.Addr, 1)
	ran := make(chan error, 1)
	go func() {
		ran <- srv.Run(ctx, server.RunConfig{
			Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
			HTTPListening: func(a net.Addr) { httpAddr <- a },
			Listening:     func(a, _ net.Addr) { grpcAddr <- a },
		})
	}()
	f := &tenantFixture{ctx: context.Background(), conns: map[string]*grpc.ClientConn{}, reg: reg}
	var addr string
	select {
	case a := <-grpcAddr:
		addr = a.String()
		f.httpAddr = (<-httpAddr).String()
	case err := <-ran:
		t.Fatalf("Run: %v", err)
	}
	for _, key := range []string{adminKey, acmeKey, globexKey} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(key))
		if err != nil {
			t.Fatal(err)
		}
		f.conns[key] = conn
	}
	t.Cleanup(func() {
		for _, c := range f.conns {
			c.Close()
		}
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		eng.Close()
	})
	return f
}

func (f *tenantFixture) pemba(key string) (pb.PermissionsServiceClient, pb.SchemaServiceClient, pb.WatchServiceClient) {
	c := f.conns[key]
	return pb.NewPermissionsServiceClient(c), pb.NewSchemaServiceClient(c), pb.NewWatchServiceClient(c)
}

func (f *tenantFixture) authzed(key string) (v1.PermissionsServiceClient, v1.SchemaServiceClient, v1.WatchServiceClient, v1.ExperimentalServiceClient) {
	c := f.conns[key]
	return v1.NewPermissionsServiceClient(c), v1.NewSchemaServiceClient(c), v1.NewWatchServiceClient(c), v1.NewExperimentalServiceClient(c)
}

func pObj(typ, id string) *pb.ObjectReference {
	return &pb.ObjectReference{ObjectType: typ, ObjectId: id}
}
func pSub(typ, id string) *pb.SubjectReference {
	return &pb.SubjectReference{Object: pObj(typ, id)}
}
func pFull() *pb.Consistency {
	return &pb.Consistency{Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: true}}
}
func aObj(typ, id string) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: typ, ObjectId: id}
}
func aSub(typ, id string) *v1.SubjectReference {
	return &v1.SubjectReference{Object: aObj(typ, id)}
}
func aFull() *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
}

// drain reads a stream to its end, returning the messages as text.
func drain[T proto.Message](recv func() (T, error)) (string, error) {
	var b strings.Builder
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		b.WriteString(protojson.Format(m))
	}
}

// TestTenantBoundary: a key bound to tenant acme/ cannot read globex/'s
// relationships, nor write into globex/, by any route: every RPC of
// pemba.v1 and authzed.api.v1 that touches data, and a sample through the
// HTTP gateway. Each call either fails with PERMISSION_DENIED or answers
// without any globex data; the same calls for acme's own data succeed
// (so the test can tell a refusal from a broken route).
func TestTenantBoundary(t *testing.T) {
	f := newTenantFixture(t)
	ctx := f.ctx
	pp, ps, pw := f.pemba(acmeKey)
	ap, as, aw, ax := f.authzed(acmeKey)
	gp, gs, _ := f.pemba(globexKey)
	_, adminSchema, _ := f.pemba(adminKey)

	head := func() *pb.Zookie {
		// The zookie to watch from: before the tenants' writes.
		resp, err := adminSchema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition platform {}"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetWrittenAt()
	}()
	if _, err := gs.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: globexSchema}); err != nil {
		t.Fatalf("globex WriteSchema: %v", err)
	}
	if _, err := as.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: acmeSchema}); err != nil {
		t.Fatalf("acme WriteSchema (authzed): %v", err)
	}
	touch := func(c pb.PermissionsServiceClient, res, sub string) {
		rt, rid, _ := strings.Cut(res, ":")
		st, sid, _ := strings.Cut(sub, ":")
		rel := &pb.Relationship{Resource: pObj(rt, rid), Relation: "viewer", Subject: pSub(st, sid)}
		_, err := c.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: rel}}})
		if err != nil {
			t.Fatalf("touch %s@%s: %v", res, sub, err)
		}
	}
	touch(gp, "globex/doc:g1", "globex/user:bob")
	touch(pp, "acme/doc:a1", "acme/user:alice")

	// The whole schema, as the administrator sees it, holds all three.
	whole, err := adminSchema.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: pFull()})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"definition platform", "definition globex/doc", "definition acme/doc"} {
		if !strings.Contains(whole.GetSchemaText(), want) {
			t.Errorf("the stored schema lacks %q:\n%s", want, whole.GetSchemaText())
		}
	}

	type call struct {
		name string
		// run makes the call; out is what it answered, as text.
		run func() (out string, err error)
		// own: the call is about acme's data and must succeed, showing
		// acme/ data (when wantOwn is set). Otherwise it reaches for
		// globex's and must be denied, or answer without globex data.
		own     bool
		wantOwn string
		denied  bool
	}
	unary := func(m proto.Message, err error) (string, error) {
		if err != nil {
			return "", err
		}
		return protojson.Format(m), nil
	}
	watchFrom := func(typ string) *pb.WatchRequest {
		w := &pb.WatchRequest{OptionalStartCursor: head}
		if typ != "" {
			w.OptionalObjectTypes = []string{typ}
		}
		return w
	}
	// watchUntilOwn reads a watch stream until acme's own write shows:
	// globex's write came before it, so it had its chance to leak.
	watchUntilOwn := func(recv func() (string, error)) (string, error) {
		var b strings.Builder
		for i := 0; i < 10; i++ {
			m, err := recv()
			if err != nil {
				return b.String(), err
			}
			b.WriteString(m)
			if strings.Contains(m, "acme/doc") {
				return b.String(), nil
			}
		}
		return b.String(), errors.New("acme's write never came")
	}
	pembaWatch := func(typ string) func() (string, error) {
		return func() (string, error) {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			s, err := pw.Watch(wctx, watchFrom(typ))
			if err != nil {
				return "", err
			}
			return watchUntilOwn(func() (string, error) {
				m, err := s.Recv()
				if err != nil {
					return "", err
				}
				return protojson.Format(m), nil
			})
		}
	}
	authzedWatch := func(req *v1.WatchRequest) func() (string, error) {
		return func() (string, error) {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			req.OptionalStartCursor = &v1.ZedToken{Token: head.GetToken()}
			s, err := aw.Watch(wctx, req)
			if err != nil {
				return "", err
			}
			return watchUntilOwn(func() (string, error) {
				m, err := s.Recv()
				if err != nil {
					return "", err
				}
				return protojson.Format(m), nil
			})
		}
	}
	g := func(id string) *pb.ObjectReference { return pObj("globex/doc", id) }
	ga := func(id string) *v1.ObjectReference { return aObj("globex/doc", id) }

	calls := []call{
		// pemba.v1, acme's own data.
		{name: "pemba ReadRelationships own", own: true, wantOwn: "acme/user", run: func() (string, error) {
			s, err := pp.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: pFull(), RelationshipFilter: &pb.RelationshipFilter{ResourceType: "acme/doc"}})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "pemba CheckPermission own", own: true, wantOwn: "HAS_PERMISSION", run: func() (string, error) {
			return unary(pp.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: pFull(), Resource: pObj("acme/doc", "a1"), Permission: "view", Subject: pSub("acme/user", "alice")}))
		}},
		{name: "pemba ReadSchema own", own: true, wantOwn: "acme/doc", run: func() (string, error) {
			return unary(ps.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: pFull()}))
		}},
		{name: "pemba Watch own", own: true, wantOwn: "acme/user", run: pembaWatch("")},
		{name: "authzed ReadSchema own", own: true, wantOwn: "acme/doc", run: func() (string, error) {
			return unary(as.ReadSchema(ctx, &v1.ReadSchemaRequest{}))
		}},
		{name: "authzed LookupResources own", own: true, wantOwn: "a1", run: func() (string, error) {
			s, err := ap.LookupResources(ctx, &v1.LookupResourcesRequest{Consistency: aFull(), ResourceObjectType: "acme/doc", Permission: "view", Subject: aSub("acme/user", "alice")})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},

		// pemba.v1 across the boundary.
		{name: "pemba ReadRelationships globex type", denied: true, run: func() (string, error) {
			s, err := pp.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: pFull(), RelationshipFilter: &pb.RelationshipFilter{ResourceType: "globex/doc"}})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "pemba ReadRelationships no type", run: func() (string, error) {
			s, err := pp.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: pFull()})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "pemba ReadRelationships globex subject", denied: true, run: func() (string, error) {
			s, err := pp.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: pFull(), RelationshipFilter: &pb.RelationshipFilter{
				ResourceType: "acme/doc", OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "globex/user"}}})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "pemba WriteRelationships into globex", denied: true, run: func() (string, error) {
			return unary(pp.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{{
				Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: &pb.Relationship{Resource: g("g2"), Relation: "viewer", Subject: pSub("globex/user", "mallory")}}}}))
		}},
		{name: "pemba WriteRelationships globex subject", denied: true, run: func() (string, error) {
			return unary(pp.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{{
				Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: &pb.Relationship{Resource: pObj("acme/doc", "a2"), Relation: "viewer", Subject: pSub("globex/user", "bob")}}}}))
		}},
		{name: "pemba WriteRelationships globex precondition", denied: true, run: func() (string, error) {
			return unary(pp.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{
				OptionalPreconditions: []*pb.Precondition{{Operation: pb.Precondition_OPERATION_MUST_EXIST, Filter: &pb.RelationshipFilter{ResourceType: "globex/doc"}}},
				Updates:               []*pb.RelationshipUpdate{{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: &pb.Relationship{Resource: pObj("acme/doc", "a3"), Relation: "viewer", Subject: pSub("acme/user", "carol")}}}}))
		}},
		{name: "pemba DeleteRelationships globex", denied: true, run: func() (string, error) {
			return unary(pp.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "globex/doc"}}))
		}},
		{name: "pemba CheckPermissionSet globex resource", denied: true, run: func() (string, error) {
			return unary(pp.CheckPermissionSet(ctx, &pb.CheckPermissionSetRequest{Consistency: pFull(), Resources: []*pb.ObjectReference{pObj("acme/doc", "a1"), g("g1")}, Subject: pSub("acme/user", "alice")}))
		}},
		{name: "pemba CheckPermission globex contextual relationship", denied: true, run: func() (string, error) {
			return unary(pp.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: pFull(), Resource: pObj("acme/doc", "a1"), Permission: "view", Subject: pSub("acme/user", "alice"),
				ContextualRelationships: []*pb.Relationship{{Resource: g("g1"), Relation: "viewer", Subject: pSub("globex/user", "bob")}}}))
		}},
		{name: "pemba CheckPermission globex resource", denied: true, run: func() (string, error) {
			return unary(pp.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: pFull(), Resource: g("g1"), Permission: "view", Subject: pSub("globex/user", "bob")}))
		}},
		{name: "pemba CheckPermission globex subject", denied: true, run: func() (string, error) {
			return unary(pp.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: pFull(), Resource: pObj("acme/doc", "a1"), Permission: "view", Subject: pSub("globex/user", "bob")}))
		}},
		{name: "pemba CheckBulkPermissions globex item", run: func() (string, error) {
			// Item errors: the pair carries PERMISSION_DENIED (code 7).
			resp, err := pp.CheckBulkPermissions(ctx, &pb.CheckBulkPermissionsRequest{Consistency: pFull(), Items: []*pb.CheckBulkPermissionsRequestItem{
				{Resource: g("g1"), Permission: "view", Subject: pSub("globex/user", "bob")}}})
			out, err := unary(resp, err)
			if err == nil && codes.Code(resp.GetPairs()[0].GetError().GetCode()) != codes.PermissionDenied {
				return out, errors.New("the item was not refused with PERMISSION_DENIED")
			}
			return strings.NewReplacer("globex", "G", "bob", "B").Replace(out), err // the echoed request names globex
		}},
		{name: "pemba ExpandPermissionTree globex", denied: true, run: func() (string, error) {
			return unary(pp.ExpandPermissionTree(ctx, &pb.ExpandPermissionTreeRequest{Consistency: pFull(), Resource: g("g1"), Permission: "view"}))
		}},
		{name: "pemba LookupResources globex type", denied: true, run: func() (string, error) {
			s, err := pp.LookupResources(ctx, &pb.LookupResourcesRequest{Consistency: pFull(), ResourceObjectType: "globex/doc", Permission: "view", Subject: pSub("globex/user", "bob")})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "pemba LookupSubjects globex", denied: true, run: func() (string, error) {
			s, err := pp.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Consistency: pFull(), Resource: g("g1"), Permission: "view", SubjectObjectType: "globex/user"})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "pemba ImportRelationships into globex", denied: true, run: func() (string, error) {
			s, err := pp.ImportRelationships(ctx)
			if err != nil {
				return "", err
			}
			if err := s.Send(&pb.ImportRelationshipsRequest{Relationships: []*pb.Relationship{{Resource: g("g9"), Relation: "viewer", Subject: pSub("globex/user", "mallory")}}}); err != nil && !errors.Is(err, io.EOF) {
				return "", err
			}
			return unary(s.CloseAndRecv())
		}},
		{name: "pemba ExportRelationships all", run: func() (string, error) {
			s, err := pp.ExportRelationships(ctx, &pb.ExportRelationshipsRequest{Consistency: pFull()})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "pemba ExportRelationships globex", denied: true, run: func() (string, error) {
			s, err := pp.ExportRelationships(ctx, &pb.ExportRelationshipsRequest{Consistency: pFull(), OptionalRelationshipFilter: &pb.RelationshipFilter{ResourceType: "globex/doc"}})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "pemba ReadSchema", run: func() (string, error) {
			return unary(ps.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: pFull()}))
		}},
		{name: "pemba WriteSchema globex definition", denied: true, run: func() (string, error) {
			return unary(ps.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: acmeSchema + "definition globex/evil {}"}))
		}},
		{name: "pemba Watch all", run: pembaWatch("")},
		{name: "pemba Watch globex type", denied: true, run: pembaWatch("globex/doc")},
		{name: "pemba DispatchCheck", denied: true, run: func() (string, error) {
			return unary(pb.NewDispatchServiceClient(f.conns[acmeKey]).DispatchCheck(ctx, &pb.DispatchCheckRequest{}))
		}},

		// authzed.api.v1 across the boundary.
		{name: "authzed ReadRelationships globex type", denied: true, run: func() (string, error) {
			s, err := ap.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: aFull(), RelationshipFilter: &v1.RelationshipFilter{ResourceType: "globex/doc"}})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "authzed ReadRelationships no type", run: func() (string, error) {
			s, err := ap.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: aFull(), RelationshipFilter: &v1.RelationshipFilter{OptionalRelation: "viewer"}})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "authzed WriteRelationships into globex", denied: true, run: func() (string, error) {
			return unary(ap.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
				Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: &v1.Relationship{Resource: ga("g2"), Relation: "viewer", Subject: aSub("globex/user", "mallory")}}}}))
		}},
		{name: "authzed DeleteRelationships globex", denied: true, run: func() (string, error) {
			return unary(ap.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "globex/doc"}}))
		}},
		{name: "authzed CheckPermission globex", denied: true, run: func() (string, error) {
			return unary(ap.CheckPermission(ctx, &v1.CheckPermissionRequest{Consistency: aFull(), Resource: ga("g1"), Permission: "view", Subject: aSub("globex/user", "bob")}))
		}},
		{name: "authzed CheckBulkPermissions globex item", run: func() (string, error) {
			resp, err := ap.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{Consistency: aFull(), Items: []*v1.CheckBulkPermissionsRequestItem{
				{Resource: ga("g1"), Permission: "view", Subject: aSub("globex/user", "bob")}}})
			out, err := unary(resp, err)
			if err == nil && codes.Code(resp.GetPairs()[0].GetError().GetCode()) != codes.PermissionDenied {
				return out, errors.New("the item was not refused with PERMISSION_DENIED")
			}
			return strings.NewReplacer("globex", "G", "bob", "B").Replace(out), err
		}},
		{name: "authzed BulkCheckPermission globex item", run: func() (string, error) {
			resp, err := ax.BulkCheckPermission(ctx, &v1.BulkCheckPermissionRequest{Consistency: aFull(), Items: []*v1.BulkCheckPermissionRequestItem{
				{Resource: ga("g1"), Permission: "view", Subject: aSub("globex/user", "bob")}}})
			out, err := unary(resp, err)
			if err == nil && codes.Code(resp.GetPairs()[0].GetError().GetCode()) != codes.PermissionDenied {
				return out, errors.New("the item was not refused with PERMISSION_DENIED")
			}
			return strings.NewReplacer("globex", "G", "bob", "B").Replace(out), err
		}},
		{name: "authzed ExpandPermissionTree globex", denied: true, run: func() (string, error) {
			return unary(ap.ExpandPermissionTree(ctx, &v1.ExpandPermissionTreeRequest{Consistency: aFull(), Resource: ga("g1"), Permission: "view"}))
		}},
		{name: "authzed LookupResources globex", denied: true, run: func() (string, error) {
			s, err := ap.LookupResources(ctx, &v1.LookupResourcesRequest{Consistency: aFull(), ResourceObjectType: "globex/doc", Permission: "view", Subject: aSub("globex/user", "bob")})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "authzed LookupSubjects globex", denied: true, run: func() (string, error) {
			s, err := ap.LookupSubjects(ctx, &v1.LookupSubjectsRequest{Consistency: aFull(), Resource: ga("g1"), Permission: "view", SubjectObjectType: "globex/user"})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "authzed ImportBulkRelationships into globex", denied: true, run: func() (string, error) {
			s, err := ap.ImportBulkRelationships(ctx)
			if err != nil {
				return "", err
			}
			if err := s.Send(&v1.ImportBulkRelationshipsRequest{Relationships: []*v1.Relationship{{Resource: ga("g9"), Relation: "viewer", Subject: aSub("globex/user", "mallory")}}}); err != nil && !errors.Is(err, io.EOF) {
				return "", err
			}
			return unary(s.CloseAndRecv())
		}},
		{name: "authzed ExportBulkRelationships all", run: func() (string, error) {
			s, err := ap.ExportBulkRelationships(ctx, &v1.ExportBulkRelationshipsRequest{Consistency: aFull()})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "authzed BulkExportRelationships all", run: func() (string, error) {
			s, err := ax.BulkExportRelationships(ctx, &v1.BulkExportRelationshipsRequest{Consistency: aFull()})
			if err != nil {
				return "", err
			}
			return drain(s.Recv)
		}},
		{name: "authzed ReadSchema", run: func() (string, error) {
			return unary(as.ReadSchema(ctx, &v1.ReadSchemaRequest{}))
		}},
		{name: "authzed ReflectSchema", run: func() (string, error) {
			return unary(as.ReflectSchema(ctx, &v1.ReflectSchemaRequest{Consistency: aFull()}))
		}},
		{name: "authzed DiffSchema", run: func() (string, error) {
			return unary(as.DiffSchema(ctx, &v1.DiffSchemaRequest{Consistency: aFull(), ComparisonSchema: acmeSchema}))
		}},
		{name: "authzed ComputablePermissions globex", run: func() (string, error) {
			out, err := unary(as.ComputablePermissions(ctx, &v1.ComputablePermissionsRequest{Consistency: aFull(), DefinitionName: "globex/doc", RelationName: "viewer"}))
			if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.InvalidArgument || status.Code(err) == codes.NotFound {
				// Not in the tenant's schema: unknown to it.
				return "", nil
			}
			return out, err
		}},
		{name: "authzed DependentRelations globex", run: func() (string, error) {
			out, err := unary(as.DependentRelations(ctx, &v1.DependentRelationsRequest{Consistency: aFull(), DefinitionName: "globex/doc", PermissionName: "view"}))
			if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.InvalidArgument || status.Code(err) == codes.NotFound {
				return "", nil
			}
			return out, err
		}},
		{name: "authzed WriteSchema globex definition", denied: true, run: func() (string, error) {
			return unary(as.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition globex/evil {}"}))
		}},
		{name: "authzed Watch all", run: authzedWatch(&v1.WatchRequest{})},
		{name: "authzed Watch globex type", denied: true, run: authzedWatch(&v1.WatchRequest{OptionalObjectTypes: []string{"globex/doc"}})},
		{name: "authzed Watch globex filter", denied: true, run: authzedWatch(&v1.WatchRequest{OptionalRelationshipFilters: []*v1.RelationshipFilter{{ResourceType: "globex/doc"}}})},

		// The HTTP gateway: the same gRPC handlers, the same refusals.
		{name: "HTTP check globex", denied: true, run: func() (string, error) {
			return f.post("/v1/permissions/check", acmeKey, `{"consistency":{"fullyConsistent":true},"resource":{"objectType":"globex/doc","objectId":"g1"},"permission":"view","subject":{"object":{"objectType":"globex/user","objectId":"bob"}}}`)
		}},
		{name: "HTTP read no type", run: func() (string, error) {
			return f.post("/v1/relationships/read", acmeKey, `{"consistency":{"fullyConsistent":true}}`)
		}},
		{name: "HTTP read own", own: true, wantOwn: "acme/user", run: func() (string, error) {
			return f.post("/v1/relationships/read", acmeKey, `{"consistency":{"fullyConsistent":true},"relationshipFilter":{"resourceType":"acme/doc"}}`)
		}},
		{name: "HTTP schema read", run: func() (string, error) {
			return f.post("/v1/schema/read", acmeKey, `{"consistency":{"fullyConsistent":true}}`)
		}},
		{name: "HTTP export globex", denied: true, run: func() (string, error) {
			return f.post("/v1/relationships/export", acmeKey, `{"consistency":{"fullyConsistent":true},"optionalRelationshipFilter":{"resourceType":"globex/doc"}}`)
		}},
	}
	for _, c := range calls {
		out, err := c.run()
		switch {
		case c.own:
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else if !strings.Contains(out, c.wantOwn) {
				t.Errorf("%s: the answer lacks %q:\n%s", c.name, c.wantOwn, out)
			}
		case c.denied:
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s: err = %v, want PERMISSION_DENIED", c.name, err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		}
		if strings.Contains(out, "globex") || strings.Contains(out, "Globex") || strings.Contains(out, "bob") || strings.Contains(out, "platform") {
			t.Errorf("%s: the answer shows another tenant's data:\n%s", c.name, out)
		}
	}

	// Nothing of globex's changed; acme's schema write kept globex's.
	gs2, err := gs.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: pFull()})
	if err != nil || !strings.Contains(gs2.GetSchemaText(), "Globex's secret documents") || strings.Contains(gs2.GetSchemaText(), "acme") {
		t.Errorf("globex's schema after acme's writes: %v\n%s", err, gs2.GetSchemaText())
	}
	rs, err := gp.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: pFull(), RelationshipFilter: &pb.RelationshipFilter{ResourceType: "globex/doc"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := drain(rs.Recv)
	if err != nil || strings.Count(out, `"relationship"`) != 1 || !strings.Contains(out, "bob") {
		t.Errorf("globex's relationships after acme's attempts: %v\n%s", err, out)
	}
}

// post calls the HTTP gateway with a key; a non-200 answer is returned as
// the gRPC status its body carries.
func (f *tenantFixture) post(path, key, body string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+f.httpAddr+path, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		code := codes.Unknown
		if resp.StatusCode == http.StatusForbidden {
			code = codes.PermissionDenied
		}
		return "", status.Errorf(code, "HTTP %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

// TestEveryAuthzedMethodHasAScope: every method of the authzed.api.v1
// services Register serves is in api/server's scope table.
func TestEveryAuthzedMethodHasAScope(t *testing.T) {
	for _, d := range []*grpc.ServiceDesc{&v1.PermissionsService_ServiceDesc, &v1.ExperimentalService_ServiceDesc, &v1.SchemaService_ServiceDesc, &v1.WatchService_ServiceDesc} {
		var names []string
		for _, m := range d.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range d.Streams {
			names = append(names, s.StreamName)
		}
		for _, n := range names {
			if _, _, known := server.MethodScope("/" + d.ServiceName + "/" + n); !known {
				t.Errorf("/%s/%s is in no scope group (api/server/scope.go)", d.ServiceName, n)
			}
		}
	}
}
