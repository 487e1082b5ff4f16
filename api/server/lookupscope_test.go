package server

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestScopedLookupsAPI runs the scoped lookups and both counts over gRPC:
// folders under folder:root (through nested parents), viewers of a
// document within a group, and the counts of both.
func TestScopedLookupsAPI(t *testing.T) {
	f, _ := queryFixture(t)
	zk := f.write(
		"folder:root#viewer@user:anne",
		"folder:sub#parent@folder:root",
		"folder:subsub#parent@folder:sub",
		"folder:other#viewer@user:anne",
	)
	ctx := context.Background()
	anne := &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "anne"}}
	root := &pb.ResourceScope{Object: &pb.ObjectReference{ObjectType: "folder", ObjectId: "root"}}
	folders := func(scope *pb.ResourceScope, limit uint32, cursor *pb.Cursor) ([]string, *pb.Cursor, error) {
		s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{Consistency: fresh(zk), ResourceObjectType: "folder", Permission: "view",
			Subject: anne, OptionalThrough: scope, OptionalLimit: limit, OptionalCursor: cursor})
		if err != nil {
			return nil, nil, err
		}
		msgs, err := collect(t, s.Recv)
		var ids []string
		var last *pb.Cursor
		for _, m := range msgs {
			ids, last = append(ids, m.GetResourceObjectId()), m.GetAfterResultCursor()
		}
		return ids, last, err
	}
	for _, tc := range []struct {
		name  string
		scope *pb.ResourceScope
		want  []string
	}{
		{"unscoped", nil, []string{"other", "root", "sub", "subsub"}},
		{"under root, default relations", root, []string{"sub", "subsub"}},
		{"under root, parent", &pb.ResourceScope{Object: root.Object, Relations: []string{"folder#parent"}}, []string{"sub", "subsub"}},
		{"under sub", &pb.ResourceScope{Object: &pb.ObjectReference{ObjectType: "folder", ObjectId: "sub"}}, []string{"subsub"}},
	} {
		got, _, err := folders(tc.scope, 0, nil)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v (%v), want %v", tc.name, got, err, tc.want)
		}
	}
	first, cur, err := folders(root, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	rest, _, err := folders(root, 0, cur)
	if err != nil || !slices.Equal(append(first, rest...), []string{"sub", "subsub"}) {
		t.Errorf("paged under root: %v then %v (%v)", first, rest, err)
	}
	_, _, err = folders(nil, 0, cur)
	wantCode(t, err, codes.InvalidArgument, "")

	viewers := func(within *pb.SubjectReference) ([]string, error) {
		s, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Consistency: fresh(zk), Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "readme"},
			Permission: "view", SubjectObjectType: "user", OptionalWithin: within})
		if err != nil {
			return nil, err
		}
		msgs, err := collect(t, s.Recv)
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.GetSubject().GetSubjectObjectId())
		}
		return ids, err
	}
	group := func(id string) *pb.SubjectReference {
		return &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "group", ObjectId: id}, OptionalRelation: "member"}
	}
	for _, tc := range []struct {
		within *pb.SubjectReference
		want   []string
	}{
		{nil, []string{"anne", "carl"}},
		{group("eng"), []string{"anne"}},
		{group("backend"), nil}, // bob is banned
	} {
		got, err := viewers(tc.within)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("viewers of readme within %v: %v (%v), want %v", tc.within, got, err, tc.want)
		}
	}

	cr, err := f.perms.CountResources(ctx, &pb.CountResourcesRequest{Consistency: fresh(zk), ResourceObjectType: "folder", Permission: "view", Subject: anne, OptionalThrough: root})
	if err != nil || cr.GetCount() != 2 || cr.GetConditionalCount() != 0 || cr.GetCountedAt().GetToken() == "" {
		t.Errorf("CountResources under root: %v (%v)", cr, err)
	}
	dana := &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "dana"}}
	cr, err = f.perms.CountResources(ctx, &pb.CountResourcesRequest{Consistency: fresh(zk), ResourceObjectType: "doc", Permission: "view", Subject: dana})
	if err != nil || cr.GetCount() != 2 || cr.GetConditionalCount() != 1 {
		t.Errorf("CountResources of dana (public, and secret conditionally): %v (%v)", cr, err)
	}
	for _, tc := range []struct {
		f    *pb.RelationshipFilter
		want uint64
	}{
		{&pb.RelationshipFilter{}, 14}, // doc:old's expired relationship is not counted
		{&pb.RelationshipFilter{ResourceType: "folder"}, 4},
		{&pb.RelationshipFilter{ResourceType: "folder", OptionalRelation: "parent"}, 2},
		{&pb.RelationshipFilter{ResourceType: "group", OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user"}}, 2},
	} {
		r, err := f.perms.CountRelationships(ctx, &pb.CountRelationshipsRequest{Consistency: fresh(zk), RelationshipFilter: tc.f})
		if err != nil || r.GetCount() != tc.want || r.GetCountedAt().GetToken() == "" {
			t.Errorf("CountRelationships(%v) = %v (%v), want %d", tc.f, r, err, tc.want)
		}
	}
}

// TestScopedLookupsAPIErrors: every malformed scope is INVALID_ARGUMENT
// with the reason that names the problem.
func TestScopedLookupsAPIErrors(t *testing.T) {
	f, zk := queryFixture(t)
	ctx := context.Background()
	anne := &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "anne"}}
	lookup := func(scope *pb.ResourceScope) error {
		s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{Consistency: fresh(zk), ResourceObjectType: "folder", Permission: "view", Subject: anne, OptionalThrough: scope})
		if err == nil {
			_, err = collect(t, s.Recv)
		}
		return err
	}
	within := func(w *pb.SubjectReference) error {
		s, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Consistency: fresh(zk), Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "readme"},
			Permission: "view", SubjectObjectType: "user", OptionalWithin: w})
		if err == nil {
			_, err = collect(t, s.Recv)
		}
		return err
	}
	count := func(req *pb.CountResourcesRequest) error {
		req.Consistency = fresh(zk)
		_, err := f.perms.CountResources(ctx, req)
		return err
	}
	obj := func(typ, id string) *pb.ObjectReference { return &pb.ObjectReference{ObjectType: typ, ObjectId: id} }
	for _, tc := range []struct {
		name   string
		err    error
		reason string
	}{
		{"scope without object", lookup(&pb.ResourceScope{}), ReasonInvalidArgument},
		{"scope with a bad relation name", lookup(&pb.ResourceScope{Object: obj("folder", "root"), Relations: []string{"Not A Name"}}), ReasonInvalidArgument},
		{"scope of an unknown type", lookup(&pb.ResourceScope{Object: obj("planet", "x")}), ReasonUnknownDefinition},
		{"scope no chain reaches", lookup(&pb.ResourceScope{Object: obj("group", "eng")}), ReasonInvalidArgument},
		{"scope following a permission", lookup(&pb.ResourceScope{Object: obj("folder", "root"), Relations: []string{"view"}}), ReasonInvalidArgument},
		{"within a plain object", within(&pb.SubjectReference{Object: obj("group", "eng")}), ReasonInvalidArgument},
		{"within a wildcard", within(&pb.SubjectReference{Object: obj("group", "*"), OptionalRelation: "member"}), ReasonInvalidArgument},
		{"within an unknown relation", within(&pb.SubjectReference{Object: obj("group", "eng"), OptionalRelation: "owner"}), ReasonUnknownRelation},
		{"count without subject", count(&pb.CountResourcesRequest{ResourceObjectType: "doc", Permission: "view"}), ReasonInvalidArgument},
		{"count of an unknown permission", count(&pb.CountResourcesRequest{ResourceObjectType: "doc", Permission: "nope", Subject: anne}), ReasonUnknownRelation},
		{"count relationships with a bad filter", func() error {
			_, err := f.perms.CountRelationships(ctx, &pb.CountRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "Bad Type"}})
			return err
		}(), ReasonInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.err, codes.InvalidArgument, tc.reason) })
	}
}
