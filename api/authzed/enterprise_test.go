package authzed

import (
	"fmt"
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/validation"
)

// TestEnterpriseBothAPIs loads the showcase example (examples/enterprise)
// half through authzed.api.v1 and half through pemba.v1, then asks every
// assertion of its validation file through both APIs at every
// consistency mode, with ZedTokens from one API given to the other: the
// answers, and the revisions they were answered at, must agree, and match
// the file.
func TestEnterpriseBothAPIs(t *testing.T) {
	vf, err := validation.Load("../../examples/enterprise/enterprise.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(vf.Assertions) < 50 || len(vf.Relationships) < 100 {
		t.Fatalf("only %d assertions, %d relationships", len(vf.Assertions), len(vf.Relationships))
	}
	f := newFixture(t)
	if _, err := f.schema.WriteSchema(f.ctx, &pb.WriteSchemaRequest{Schema: vf.Schema}); err != nil {
		t.Fatal(err)
	}
	half := len(vf.Relationships) / 2
	azReq := &v1.WriteRelationshipsRequest{}
	for _, r := range vf.Relationships[:half] {
		wr, err := toRelationship(r.Relationship)
		if err != nil {
			t.Fatal(err)
		}
		azReq.Updates = append(azReq.Updates, &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: wr})
	}
	azResp, err := f.az.WriteRelationships(f.ctx, azReq)
	if err != nil {
		t.Fatal(err)
	}
	pbReq := &pb.WriteRelationshipsRequest{}
	for _, r := range vf.Relationships[half:] {
		pr, err := convert.Relationship(r.Relationship)
		if err != nil {
			t.Fatal(err)
		}
		pbReq.Updates = append(pbReq.Updates, &pb.RelationshipUpdate{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: pr})
	}
	pbResp, err := f.perms.WriteRelationships(f.ctx, pbReq)
	if err != nil {
		t.Fatal(err)
	}
	halfway := azResp.GetWrittenAt()                              // from authzed.api.v1
	full := &v1.ZedToken{Token: pbResp.GetWrittenAt().GetToken()} // from pemba.v1

	want := map[validation.AssertionKind]v1.CheckPermissionResponse_Permissionship{
		validation.AssertTrue:     v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION,
		validation.AssertFalse:    v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION,
		validation.AssertCaveated: v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION,
	}
	checks := 0
	for _, at := range []*v1.ZedToken{full, halfway} {
		for name, c := range consistencies(at) {
			for _, a := range vf.Assertions {
				var ctx *structpb.Struct
				if a.Context != nil {
					if ctx, err = structpb.NewStruct(a.Context); err != nil {
						t.Fatal(err)
					}
				}
				got, err := f.az.CheckPermission(f.ctx, &v1.CheckPermissionRequest{
					Consistency: c, Resource: toObject(a.Resource), Permission: a.Permission, Subject: toSubject(a.Subject), Context: ctx,
				})
				if err != nil {
					t.Fatalf("%s: authzed %s: %v", a.Text, name, err)
				}
				own, err := f.perms.CheckPermission(f.ctx, &pb.CheckPermissionRequest{
					Consistency: pembaConsistency(name, at), Resource: convert.Object(a.Resource), Permission: a.Permission,
					Subject: convert.Subject(a.Subject), Context: ctx,
				})
				if err != nil {
					t.Fatalf("%s: pemba.v1 %s: %v", a.Text, name, err)
				}
				checks++
				if int32(got.GetPermissionship()) != int32(own.GetPermissionship()) || got.GetCheckedAt().GetToken() != own.GetCheckedAt().GetToken() {
					t.Errorf("%s at %s: authzed %v at %v, pemba.v1 %v at %v", a.Text, name,
						got.GetPermissionship(), got.GetCheckedAt(), own.GetPermissionship(), own.GetCheckedAt())
				}
				// Every mode but the exact halfway snapshot sees all data.
				if (at == full || name != "at_exact_snapshot") && got.GetPermissionship() != want[a.Kind] {
					t.Errorf("%s (%v) at %s: %v", a.Text, a.Kind, name, got.GetPermissionship())
				}
			}
		}
	}
	t.Logf("%d checks through each API", checks)

	// The expected-subjects section, through both LookupSubjects.
	for _, e := range vf.Expected {
		type kind struct{ typ, rel string }
		kinds := map[kind]bool{}
		for _, s := range e.Subjects {
			kinds[kind{s.Subject.Type, s.Subject.Relation}] = true
		}
		for k := range kinds {
			typ := k.typ
			stream, err := f.az.LookupSubjects(f.ctx, &v1.LookupSubjectsRequest{
				Consistency: exact(full), Resource: toObject(e.Resource), Permission: e.Permission, SubjectObjectType: typ,
				OptionalSubjectRelation: k.rel,
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range recvAll(t, stream.Recv) {
				got = append(got, fmt.Sprint(m.GetSubject().GetSubjectObjectId(), m.GetSubject().GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION))
			}
			ps, err := f.perms.LookupSubjects(f.ctx, &pb.LookupSubjectsRequest{
				Consistency: pembaConsistency("at_exact_snapshot", full), Resource: convert.Object(e.Resource), Permission: e.Permission, SubjectObjectType: typ,
				OptionalSubjectRelation: k.rel,
			})
			if err != nil {
				t.Fatal(err)
			}
			var own []string
			for _, m := range recvAll(t, ps.Recv) {
				own = append(own, fmt.Sprint(m.GetSubject().GetSubjectObjectId(), m.GetSubject().GetPermissionship() == pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION))
			}
			if !slices.Equal(got, own) || len(got) == 0 {
				t.Errorf("%s#%s subjects of type %s: authzed %v, pemba.v1 %v", e.Resource, e.Permission, typ, got, own)
			}
		}
	}
}
