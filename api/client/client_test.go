package client

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// fake answers CheckPermission and WriteRelationships, recording what it
// received. The real server is exercised by api/server's tests.
type fake struct {
	pb.UnimplementedPermissionsServiceServer
	auth  []string
	check *pb.CheckPermissionRequest
	write *pb.WriteRelationshipsRequest
}

func (f *fake) CheckPermission(ctx context.Context, req *pb.CheckPermissionRequest) (*pb.CheckPermissionResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.auth = md.Get("authorization")
	f.check = req
	return &pb.CheckPermissionResponse{Permissionship: pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION}, nil
}

func (f *fake) WriteRelationships(ctx context.Context, req *pb.WriteRelationshipsRequest) (*pb.WriteRelationshipsResponse, error) {
	f.write = req
	return &pb.WriteRelationshipsResponse{WrittenAt: &pb.Zookie{Token: "z"}}, nil
}

func serveFake(t *testing.T) (*fake, string) {
	t.Helper()
	f := &fake{}
	s := grpc.NewServer()
	pb.RegisterPermissionsServiceServer(s, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return f, lis.Addr().String()
}

func TestClientSendsKeyAndConverts(t *testing.T) {
	f, addr := serveFake(t)
	c, err := New(addr, Options{Key: "k-0123456789abcdef", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	resp, err := c.Check(ctx, FullyConsistent(), "doc:readme", "view", "group:eng#member", map[string]any{"level": 3})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
		t.Errorf("answer = %v", resp)
	}
	if len(f.auth) != 1 || f.auth[0] != "Bearer k-0123456789abcdef" {
		t.Errorf("authorization = %q", f.auth)
	}
	if got := f.check.GetSubject().GetOptionalRelation(); got != "member" || f.check.GetContext().GetFields()["level"].GetNumberValue() != 3 {
		t.Errorf("check request = %v", f.check)
	}
	if _, err := c.Check(ctx, nil, "doc", "view", "user:anne", nil); err == nil || !errors.Is(err, tuple.ErrInvalid) {
		t.Errorf("malformed resource: %v", err)
	}

	r, _ := tuple.Parse(`doc:1#viewer@user:anne[c:{"x":1}][expiration:2030-01-01T00:00:00Z]`)
	zk, err := c.Write(ctx, Touch(r), Delete(r), Create(r))
	if err != nil || zk.GetToken() != "z" {
		t.Fatalf("Write = %v, %v", zk, err)
	}
	ops := []pb.RelationshipUpdate_Operation{pb.RelationshipUpdate_OPERATION_TOUCH, pb.RelationshipUpdate_OPERATION_DELETE, pb.RelationshipUpdate_OPERATION_CREATE}
	for i, u := range f.write.GetUpdates() {
		back, err := FromRelationship(u.GetRelationship())
		if err != nil || back.String() != r.String() || u.GetOperation() != ops[i] {
			t.Errorf("update %d = %v %v, %v", i, u.GetOperation(), back, err)
		}
	}
}

func TestNewNeedsATransport(t *testing.T) {
	if _, err := New("127.0.0.1:1", Options{Key: "k"}); !errors.Is(err, ErrNoTransport) {
		t.Errorf("err = %v, want ErrNoTransport", err)
	}
}

func TestRelationshipConversion(t *testing.T) {
	for _, s := range []string{
		"doc:1#viewer@user:anne",
		"doc:1#viewer@user:*",
		"group:eng#member@group:backend#member",
		`doc:1#viewer@user:anne[only_weekdays]`,
		`doc:1#viewer@user:anne[c:{"a":[1,"b",true],"n":2.5}][expiration:2030-05-06T07:08:09.123Z]`,
	} {
		r, err := tuple.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Relationship(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := FromRelationship(p)
		if err != nil || back.String() != s {
			t.Errorf("round trip of %s = %s, %v", s, back, err)
		}
	}
	bad := &pb.Relationship{Resource: Object(tuple.ObjectRef{Type: "doc"}), Relation: "viewer", Subject: Subject(tuple.SubjectRef{Type: "user", ID: "a"})}
	if _, err := FromRelationship(bad); err == nil || !strings.Contains(err.Error(), "resource id") {
		t.Errorf("FromRelationship(empty id) = %v", err)
	}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		in   tuple.Filter
		want *pb.SubjectFilter_RelationFilter
	}{
		{tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "user"}}, nil},
		{tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "user", Relation: tuple.Ellipsis}}, &pb.SubjectFilter_RelationFilter{}},
		{tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "group", Relation: "member"}}, &pb.SubjectFilter_RelationFilter{Relation: "member"}},
	}
	for _, tt := range tests {
		got := Filter(tt.in).GetOptionalSubjectFilter().GetOptionalRelation()
		if (got == nil) != (tt.want == nil) || got.GetRelation() != tt.want.GetRelation() {
			t.Errorf("Filter(%+v) relation = %v, want %v", tt.in.Subject, got, tt.want)
		}
	}
	if Filter(tuple.Filter{ResourceType: "doc"}).GetOptionalSubjectFilter() != nil {
		t.Error("no subject filter expected")
	}
}
