package cli

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// An arrow's "via" list shows the caveat and expiry of each relationship
// the arrow followed: a branch through a caveated team counts only under
// that caveat.
func TestRenderTreeArrowConditions(t *testing.T) {
	leaf := func(typ, id, rel string, subjects ...string) *pb.PermissionRelationshipTree {
		l := &pb.DirectSubjectSet{}
		for _, s := range subjects {
			l.Subjects = append(l.Subjects, &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: s}})
		}
		return &pb.PermissionRelationshipTree{
			ExpandedObject: &pb.ObjectReference{ObjectType: typ, ObjectId: id}, ExpandedRelation: rel,
			TreeType: &pb.PermissionRelationshipTree_Leaf{Leaf: l},
		}
	}
	ctx, err := structpb.NewStruct(map[string]any{"allowed": false})
	if err != nil {
		t.Fatal(err)
	}
	t1 := leaf("team", "t1", "member", "anne")
	t1.OptionalCaveat = &pb.ContextualizedCaveat{CaveatName: "teamcaveat", Context: ctx}
	t2 := leaf("team", "t2", "member", "anne")
	t2.OptionalExpiresAt = timestamppb.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	root := &pb.PermissionRelationshipTree{
		ExpandedObject: &pb.ObjectReference{ObjectType: "doc", ObjectId: "1"}, ExpandedRelation: "view",
		TreeType: &pb.PermissionRelationshipTree_Intermediate{Intermediate: &pb.AlgebraicSubjectSet{
			Operation: pb.AlgebraicSubjectSet_OPERATION_INTERSECTION, Children: []*pb.PermissionRelationshipTree{t1, t2},
		}},
	}
	want := "→ all doc:1#view via team:t1[teamcaveat:{\"allowed\":false}], team:t2[expires 2030-01-02T03:04:05Z]\n" +
		"├── team:t1#member: user:anne\n" +
		"└── team:t2#member: user:anne\n"
	if got := renderTree(root, nil); got != want {
		t.Errorf("renderTree =\n%s\nwant\n%s", got, want)
	}
}
