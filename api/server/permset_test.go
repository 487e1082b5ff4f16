package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestCheckPermissionSet: the rpc answers a matrix with per-cell caveat
// information, takes contextual relationships, and refuses bad requests
// with INVALID_ARGUMENT and the reason a client can switch on.
func TestCheckPermissionSet(t *testing.T) {
	f, zk := queryFixture(t)
	ctx := context.Background()
	at := &pb.Consistency{Requirement: &pb.Consistency_AtLeastAsFresh{AtLeastAsFresh: zk}}
	docs := func(ids ...string) []*pb.ObjectReference {
		var out []*pb.ObjectReference
		for _, id := range ids {
			out = append(out, obj("doc", id))
		}
		return out
	}
	res, err := f.perms.CheckPermissionSet(ctx, &pb.CheckPermissionSetRequest{
		Consistency: at, Resources: docs("readme", "secret"), Subject: sub("user", "dana", ""),
		ContextualRelationships: []*pb.Relationship{mustRel(t, "doc:readme#owner@user:dana")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.GetPermissions()) != "[edit view]" {
		t.Fatalf("columns %v", res.GetPermissions())
	}
	want := [][]string{{"HAS", "HAS"}, {"NO", "CONDITIONAL"}}
	for i, row := range res.GetRows() {
		if row.GetResource().GetObjectId() != []string{"readme", "secret"}[i] {
			t.Fatalf("row %d is %v", i, row.GetResource())
		}
		for j, c := range row.GetCells() {
			if got := c.GetAnswer().GetPermissionship().String(); got != "PERMISSIONSHIP_"+want[i][j]+"_PERMISSION" {
				t.Errorf("%s#%s: %s, want %s", row.GetResource().GetObjectId(), c.GetPermission(), got, want[i][j])
			}
		}
	}
	if m := res.GetRows()[1].GetCells()[1].GetAnswer().GetPartialCaveatInfo().GetMissingRequiredContext(); fmt.Sprint(m) != "[level]" {
		t.Errorf("missing context %v, want [level]", m)
	}

	many := make([]*pb.ObjectReference, 101)
	for i := range many {
		many[i] = obj("doc", fmt.Sprint(i))
	}
	manyRels := make([]*pb.Relationship, 1001)
	for i := range manyRels {
		manyRels[i] = mustRel(t, fmt.Sprintf("doc:d%d#viewer@user:anne", i))
	}
	bad := []struct {
		name   string
		req    *pb.CheckPermissionSetRequest
		reason string
	}{
		{"no resource", &pb.CheckPermissionSetRequest{Subject: sub("user", "anne", "")}, ReasonInvalidArgument},
		{"101 resources", &pb.CheckPermissionSetRequest{Resources: many, Subject: sub("user", "anne", "")}, ReasonInvalidArgument},
		{"two types", &pb.CheckPermissionSetRequest{Resources: []*pb.ObjectReference{obj("doc", "a"), obj("folder", "b")}, Subject: sub("user", "anne", "")}, ReasonInvalidArgument},
		{"unknown permission", &pb.CheckPermissionSetRequest{Resources: docs("readme"), OptionalPermissions: []string{"nope"}, Subject: sub("user", "anne", "")}, ReasonUnknownRelation},
		{"contextual permission", &pb.CheckPermissionSetRequest{Resources: docs("readme"), Subject: sub("user", "anne", ""), ContextualRelationships: []*pb.Relationship{mustRel(t, "doc:readme#view@user:anne")}}, ReasonInvalidRelationship},
		{"1001 contextual", &pb.CheckPermissionSetRequest{Resources: docs("readme"), Subject: sub("user", "anne", ""), ContextualRelationships: manyRels}, ReasonInvalidArgument},
		{"no subject", &pb.CheckPermissionSetRequest{Resources: docs("readme")}, ReasonInvalidArgument},
	}
	for _, tc := range bad {
		_, err := f.perms.CheckPermissionSet(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || reasonOf(err) != tc.reason {
			t.Errorf("%s: %v (reason %s), want INVALID_ARGUMENT %s", tc.name, err, reasonOf(err), tc.reason)
		}
	}
}

// TestContextualRelationshipsOnEveryRead: each read rpc takes contextual
// relationships, answers with them, and refuses invalid ones with
// INVALID_ARGUMENT as a write would.
func TestContextualRelationshipsOnEveryRead(t *testing.T) {
	f, zk := queryFixture(t)
	ctx := context.Background()
	at := &pb.Consistency{Requirement: &pb.Consistency_AtLeastAsFresh{AtLeastAsFresh: zk}}
	good := []*pb.Relationship{mustRel(t, "group:backend#member@user:zoe")}
	invalid := []*pb.Relationship{mustRel(t, "doc:readme#viewer@folder:f")}
	zoe := sub("user", "zoe", "")
	calls := []struct {
		name string
		// call returns whether zoe reached doc:readme's view (through eng)
		call func(rels []*pb.Relationship) (bool, error)
	}{
		{"CheckPermission", func(rels []*pb.Relationship) (bool, error) {
			r, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: at, Resource: obj("doc", "readme"), Permission: "view", Subject: zoe, ContextualRelationships: rels})
			return r.GetPermissionship() == pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION, err
		}},
		{"CheckBulkPermissions", func(rels []*pb.Relationship) (bool, error) {
			r, err := f.perms.CheckBulkPermissions(ctx, &pb.CheckBulkPermissionsRequest{Consistency: at, ContextualRelationships: rels,
				Items: []*pb.CheckBulkPermissionsRequestItem{{Resource: obj("doc", "readme"), Permission: "view", Subject: zoe}}})
			return len(r.GetPairs()) == 1 && r.GetPairs()[0].GetItem().GetPermissionship() == pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION, err
		}},
		{"ExpandPermissionTree", func(rels []*pb.Relationship) (bool, error) {
			r, err := f.perms.ExpandPermissionTree(ctx, &pb.ExpandPermissionTreeRequest{Consistency: at, Resource: obj("group", "backend"), Permission: "member", ContextualRelationships: rels})
			for _, s := range r.GetTreeRoot().GetLeaf().GetSubjects() {
				if s.GetObject().GetObjectId() == "zoe" {
					return true, err
				}
			}
			return false, err
		}},
		{"LookupResources", func(rels []*pb.Relationship) (bool, error) {
			s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{Consistency: at, ResourceObjectType: "doc", Permission: "view", Subject: zoe, ContextualRelationships: rels})
			if err != nil {
				return false, err
			}
			found := false
			for {
				m, err := s.Recv()
				if err != nil {
					return found, ignoreEOF(err)
				}
				found = found || m.GetResourceObjectId() == "readme"
			}
		}},
		{"LookupSubjects", func(rels []*pb.Relationship) (bool, error) {
			s, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Consistency: at, Resource: obj("group", "eng"), Permission: "member", SubjectObjectType: "user", ContextualRelationships: rels})
			if err != nil {
				return false, err
			}
			found := false
			for {
				m, err := s.Recv()
				if err != nil {
					return found, ignoreEOF(err)
				}
				found = found || m.GetSubject().GetSubjectObjectId() == "zoe"
			}
		}},
		{"CheckPermissionSet", func(rels []*pb.Relationship) (bool, error) {
			r, err := f.perms.CheckPermissionSet(ctx, &pb.CheckPermissionSetRequest{Consistency: at, Resources: []*pb.ObjectReference{obj("doc", "readme")}, OptionalPermissions: []string{"view"}, Subject: zoe, ContextualRelationships: rels})
			return len(r.GetRows()) == 1 && r.GetRows()[0].GetCells()[0].GetAnswer().GetPermissionship() == pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION, err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if got, err := c.call(nil); err != nil || got {
				t.Fatalf("without: %v %v, want no", got, err)
			}
			if got, err := c.call(good); err != nil || !got {
				t.Fatalf("with: %v %v, want yes", got, err)
			}
			if got, err := c.call(nil); err != nil || got {
				t.Fatalf("without, after a request with: %v %v, want no (an answer leaked)", got, err)
			}
			_, err := c.call(invalid)
			if status.Code(err) != codes.InvalidArgument || reasonOf(err) != ReasonInvalidRelationship {
				t.Fatalf("invalid: %v (reason %s), want INVALID_ARGUMENT %s", err, reasonOf(err), ReasonInvalidRelationship)
			}
		})
	}
}

// ignoreEOF is nil for the io.EOF that ends a stream.
func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
