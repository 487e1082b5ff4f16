package server

import (
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
)

// impactToProto converts the impact of a schema dry run.
func impactToProto(zookie string, im engine.SchemaImpact) *pb.SchemaImpact {
	out := &pb.SchemaImpact{
		EvaluatedAt:        zookieToProto(zookie),
		ResourcesEvaluated: uint64(im.Resources),
		Truncated:          im.Truncated,
	}
	for _, p := range im.Permissions {
		out.Permissions = append(out.Permissions, &pb.PermissionImpact{
			ResourceObjectType: p.ResourceType,
			Permission:         p.Permission,
			Granted:            uint64(p.Granted),
			Revoked:            uint64(p.Revoked),
			Conditional:        uint64(p.Conditional),
			Resources:          uint64(p.Resources),
			Truncated:          p.Truncated,
		})
	}
	for _, f := range im.Samples {
		out.Samples = append(out.Samples, &pb.SchemaImpactFlip{
			Resource:           &pb.ObjectReference{ObjectType: f.Resource.Type, ObjectId: f.Resource.ID},
			Permission:         f.Permission,
			Subject:            &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: f.Subject.Type, ObjectId: f.Subject.ID}, OptionalRelation: f.Subject.Relation},
			ExcludedSubjectIds: f.ExcludedIDs,
			Before:             permissionshipToProto(f.Before),
			After:              permissionshipToProto(f.After),
		})
	}
	return out
}
