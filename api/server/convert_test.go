package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func obj(t, id string) *pb.ObjectReference { return &pb.ObjectReference{ObjectType: t, ObjectId: id} }

func sub(t, id, rel string) *pb.SubjectReference {
	return &pb.SubjectReference{Object: obj(t, id), OptionalRelation: rel}
}

func rel(res *pb.ObjectReference, relation string, s *pb.SubjectReference) *pb.Relationship {
	return &pb.Relationship{Resource: res, Relation: relation, Subject: s}
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRelationshipRoundTrip converts text -> tuple -> proto -> tuple and
// expects the same text back.
func TestRelationshipRoundTrip(t *testing.T) {
	tests := []string{
		"enterprise:acme#member@employee:li",
		"group:eng#member@group:backend#member",
		"doc:1#viewer@user:*",
		"tenant/doc:a-b_c=d+e/f|g.h~i#viewer@tenant/user:X9",
		"org/identity_team/group:admins#member@org/identity_team/group:eng#member",
		`doc:1#viewer@org/iam/user:anne[org/iam/on_vpn:{"ip":"10.0.0.1"}]`,
		`doc:1#viewer@user:anne[only_weekdays]`,
		`doc:1#viewer@user:anne[ip_allow:{"cidr":"10.0.0.0/8","n":12,"tags":["a","b"]}]`,
		`link:ag#granted@employee:li[expiration:2099-01-01T00:00:00Z]`,
		`link:ag#granted@employee:li[c:{"a":{"b":[1,2.5,true,null]}}][expiration:2030-05-06T07:08:09.123456789Z]`,
	}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			r, err := tuple.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			p, err := convert.Relationship(r)
			if err != nil {
				t.Fatal(err)
			}
			// Through the wire format too.
			b, err := proto.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var q pb.Relationship
			if err := proto.Unmarshal(b, &q); err != nil {
				t.Fatal(err)
			}
			back, err := relationshipFromProto("relationship", &q)
			if err != nil {
				t.Fatalf("relationshipFromProto: %v", err)
			}
			if got := back.String(); got != s {
				t.Errorf("round trip: got %q, want %q", got, s)
			}
		})
	}
}

func TestRelationshipFromProtoErrors(t *testing.T) {
	good := func() *pb.Relationship { return rel(obj("doc", "1"), "viewer", sub("user", "anne", "")) }
	with := func(f func(r *pb.Relationship)) *pb.Relationship { r := good(); f(r); return r }
	tests := []struct {
		name      string
		in        *pb.Relationship
		field     string // FieldError.Field
		wantInMsg string
		isTuple   bool // wraps tuple.ErrInvalid
	}{
		{"nil", nil, "r", "r: is required", false},
		{"no resource", with(func(r *pb.Relationship) { r.Resource = nil }), "r.resource", "r.resource: is required", false},
		{"bad type", with(func(r *pb.Relationship) { r.Resource.ObjectType = "Doc" }), "r.resource.object_type", `invalid r.resource.object_type "Doc": must start with a lowercase letter`, true},
		{"empty id", with(func(r *pb.Relationship) { r.Resource.ObjectId = "" }), "r.resource.object_id", "must not be empty", true},
		{"wildcard resource", with(func(r *pb.Relationship) { r.Resource.ObjectId = "*" }), "r.resource.object_id", "wildcard is allowed only as a subject", true},
		{"bad relation", with(func(r *pb.Relationship) { r.Relation = "view er" }), "r.relation", "not allowed", true},
		{"no subject", with(func(r *pb.Relationship) { r.Subject = nil }), "r.subject", "r.subject: is required", false},
		{"no subject object", with(func(r *pb.Relationship) { r.Subject.Object = nil }), "r.subject.object", "is required", false},
		{"bad subject id", with(func(r *pb.Relationship) { r.Subject.Object.ObjectId = "a b" }), "r.subject.object.object_id", "not allowed in an id", true},
		{"wildcard with relation", with(func(r *pb.Relationship) { r.Subject = sub("user", "*", "member") }), "r.subject.optional_relation", "wildcard subject cannot have a relation", false},
		{"bad subject relation", with(func(r *pb.Relationship) { r.Subject.OptionalRelation = "Member" }), "r.subject.optional_relation", "lowercase", true},
		{"bad caveat name", with(func(r *pb.Relationship) { r.OptionalCaveat = &pb.ContextualizedCaveat{} }), "r.optional_caveat.caveat_name", "must not be empty", true},
		{"bad nested type", with(func(r *pb.Relationship) { r.Resource.ObjectType = "org//doc" }), "r.resource.object_type", `prefix "": must not be empty`, true},
		{"bad caveat prefix", with(func(r *pb.Relationship) { r.OptionalCaveat = &pb.ContextualizedCaveat{CaveatName: "Org/c"} }), "r.optional_caveat.caveat_name", `prefix "Org"`, true},
		{"bad timestamp", with(func(r *pb.Relationship) { r.OptionalExpiresAt = &timestamppb.Timestamp{Nanos: -1} }), "r.optional_expires_at", "r.optional_expires_at:", false},
		{"null context value", with(func(r *pb.Relationship) {
			r.OptionalCaveat = &pb.ContextualizedCaveat{CaveatName: "c", Context: &structpb.Struct{Fields: map[string]*structpb.Value{"x": {}}}}
		}), "r.optional_caveat.context.x", "has no value", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := relationshipFromProto("r", tt.in)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q", fe.Field, tt.field)
			}
			if !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("message %q does not contain %q", err, tt.wantInMsg)
			}
			if got := errors.Is(err, tuple.ErrInvalid); got != tt.isTuple {
				t.Errorf("errors.Is(err, tuple.ErrInvalid) = %v, want %v", got, tt.isTuple)
			}
		})
	}
}

func TestRelationshipFromProtoDetails(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	in := &pb.Relationship{
		Resource:          obj("doc", "1"),
		Relation:          "viewer",
		Subject:           sub("group", "eng", "..."),
		OptionalCaveat:    &pb.ContextualizedCaveat{CaveatName: "c", Context: mustStruct(t, map[string]any{"n": 3, "s": "x"})},
		OptionalExpiresAt: timestamppb.New(exp),
	}
	r, err := relationshipFromProto("r", in)
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject.Relation != "" {
		t.Errorf("subject relation %q, want \"\" for the ellipsis", r.Subject.Relation)
	}
	if !r.Expiration.Equal(exp) || r.Expiration.Location() != time.UTC {
		t.Errorf("expiration %v, want %v in UTC", r.Expiration, exp)
	}
	if r.Caveat.Context["n"] != 3.0 || r.Caveat.Context["s"] != "x" {
		t.Errorf("context %v", r.Caveat.Context)
	}
}

func TestFilterFromProto(t *testing.T) {
	tests := []struct {
		name     string
		in       *pb.RelationshipFilter
		needType bool
		want     tuple.Filter
		errField string
	}{
		{name: "nil read", in: nil, want: tuple.Filter{}},
		{name: "nil delete", in: nil, needType: true, errField: "f"},
		{name: "empty type on delete", in: &pb.RelationshipFilter{}, needType: true, errField: "f.resource_type"},
		{name: "all fields", in: &pb.RelationshipFilter{
			ResourceType: "doc", OptionalResourceId: "1", OptionalRelation: "viewer",
			OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "group", OptionalSubjectId: "eng",
				OptionalRelation: &pb.SubjectFilter_RelationFilter{Relation: "member"}},
		}, want: tuple.Filter{ResourceType: "doc", ResourceID: "1", Relation: "viewer",
			Subject: &tuple.SubjectFilter{Type: "group", ID: "eng", Relation: "member"}}},
		{name: "subject any relation", in: &pb.RelationshipFilter{ResourceType: "doc",
			OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user"}},
			want: tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "user"}}},
		{name: "subject no relation", in: &pb.RelationshipFilter{ResourceType: "doc",
			OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user", OptionalRelation: &pb.SubjectFilter_RelationFilter{}}},
			want: tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "user", Relation: tuple.Ellipsis}}},
		{name: "wildcard subject id", in: &pb.RelationshipFilter{
			OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user", OptionalSubjectId: "*"}},
			want: tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", ID: "*"}}},
		{name: "bad id", in: &pb.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "a b"}, errField: "f.optional_resource_id"},
		{name: "bad relation", in: &pb.RelationshipFilter{ResourceType: "doc", OptionalRelation: "X"}, errField: "f.optional_relation"},
		{name: "subject filter without type", in: &pb.RelationshipFilter{ResourceType: "doc",
			OptionalSubjectFilter: &pb.SubjectFilter{}}, errField: "f.optional_subject_filter.subject_type"},
		{name: "bad subject relation", in: &pb.RelationshipFilter{ResourceType: "doc",
			OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user", OptionalRelation: &pb.SubjectFilter_RelationFilter{Relation: "A"}}},
			errField: "f.optional_subject_filter.optional_relation.relation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := filterFromProto("f", tt.in, tt.needType)
			if tt.errField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tt.errField {
					t.Fatalf("err = %v, want a FieldError on %q", err, tt.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ResourceType != tt.want.ResourceType || got.ResourceID != tt.want.ResourceID || got.Relation != tt.want.Relation ||
				(got.Subject == nil) != (tt.want.Subject == nil) || (got.Subject != nil && *got.Subject != *tt.want.Subject) {
				t.Errorf("got %+v (subject %+v), want %+v (subject %+v)", got, got.Subject, tt.want, tt.want.Subject)
			}
		})
	}
}

func TestOpConversion(t *testing.T) {
	for _, op := range []engine.Op{engine.OpCreate, engine.OpTouch, engine.OpDelete} {
		back, err := opFromProto("op", opToProto(op))
		if err != nil || back != op {
			t.Errorf("%v: round trip gave %v, %v", op, back, err)
		}
	}
	for _, op := range []pb.RelationshipUpdate_Operation{pb.RelationshipUpdate_OPERATION_UNSPECIFIED, 42} {
		if _, err := opFromProto("op", op); err == nil {
			t.Errorf("opFromProto(%v) succeeded", op)
		}
	}
	if opToProto(engine.Op(99)) != pb.RelationshipUpdate_OPERATION_UNSPECIFIED {
		t.Error("unknown store op should convert to UNSPECIFIED")
	}
}

// FuzzRelationshipFromProto: whatever arrives on the wire, conversion
// never panics, and what it accepts is a valid relationship that survives
// the trip back.
func FuzzRelationshipFromProto(f *testing.F) {
	for _, s := range []string{
		"doc:1#viewer@user:anne",
		"group:eng#member@group:backend#member",
		`doc:1#viewer@user:*[c:{"a":[1,"x"]}][expiration:2030-01-01T00:00:00Z]`,
	} {
		r, _ := tuple.Parse(s)
		p, _ := convert.Relationship(r)
		b, _ := proto.Marshal(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p pb.Relationship
		if err := proto.Unmarshal(b, &p); err != nil {
			return
		}
		r, err := relationshipFromProto("r", &p)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid relationship %s: %v", r, err)
		}
		back, err := convert.Relationship(r)
		if err != nil {
			t.Fatalf("accepted %s but cannot send it back: %v", r, err)
		}
		again, err := relationshipFromProto("r", back)
		if err != nil || again.String() != r.String() {
			t.Fatalf("round trip of %s gave %s, %v", r, again, err)
		}
	})
}
