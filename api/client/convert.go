package client

import (
	"fmt"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Object converts an object reference.
func Object(o tuple.ObjectRef) *pb.ObjectReference { return convert.Object(o) }

// Subject converts a subject reference.
func Subject(s tuple.SubjectRef) *pb.SubjectReference { return convert.Subject(s) }

// Relationship converts a relationship. It fails only for a caveat context
// value that protobuf's Struct cannot hold.
func Relationship(r tuple.Relationship) (*pb.Relationship, error) {
	p, err := convert.Relationship(r)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return p, nil
}

// FromRelationship converts a relationship received from the server and
// validates it.
func FromRelationship(p *pb.Relationship) (tuple.Relationship, error) {
	r := tuple.Relationship{
		Resource: tuple.ObjectRef{Type: p.GetResource().GetObjectType(), ID: p.GetResource().GetObjectId()},
		Relation: p.GetRelation(),
		Subject: tuple.SubjectRef{
			Type:     p.GetSubject().GetObject().GetObjectType(),
			ID:       p.GetSubject().GetObject().GetObjectId(),
			Relation: p.GetSubject().GetOptionalRelation(),
		},
	}
	if r.Subject.Relation == tuple.Ellipsis {
		r.Subject.Relation = ""
	}
	if c := p.GetOptionalCaveat(); c != nil {
		r.Caveat = &tuple.Caveat{Name: c.GetCaveatName()}
		if len(c.GetContext().GetFields()) > 0 {
			r.Caveat.Context = c.GetContext().AsMap()
		}
	}
	if ts := p.GetOptionalExpiresAt(); ts != nil {
		r.Expiration = ts.AsTime().UTC()
	}
	if err := r.Validate(); err != nil {
		return r, fmt.Errorf("client: relationship from the server: %w", err)
	}
	return r, nil
}

// Filter converts a relationship filter. A SubjectFilter relation of
// tuple.Ellipsis selects plain subjects only, "" any.
func Filter(f tuple.Filter) *pb.RelationshipFilter {
	out := &pb.RelationshipFilter{ResourceType: f.ResourceType, OptionalResourceId: f.ResourceID, OptionalRelation: f.Relation}
	if s := f.Subject; s != nil {
		sf := &pb.SubjectFilter{SubjectType: s.Type, OptionalSubjectId: s.ID}
		switch s.Relation {
		case "":
		case tuple.Ellipsis:
			sf.OptionalRelation = &pb.SubjectFilter_RelationFilter{}
		default:
			sf.OptionalRelation = &pb.SubjectFilter_RelationFilter{Relation: s.Relation}
		}
		out.OptionalSubjectFilter = sf
	}
	return out
}

// Consistency requirements, for the Consistency field of requests.

// MinimizeLatency reads at a recent, cache-friendly revision (the default).
func MinimizeLatency() *pb.Consistency {
	return &pb.Consistency{Requirement: &pb.Consistency_MinimizeLatency{MinimizeLatency: true}}
}

// FullyConsistent reads at the head revision.
func FullyConsistent() *pb.Consistency {
	return &pb.Consistency{Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: true}}
}

// AtLeastAsFresh reads a revision that includes the write that returned z.
func AtLeastAsFresh(z *pb.Zookie) *pb.Consistency {
	return &pb.Consistency{Requirement: &pb.Consistency_AtLeastAsFresh{AtLeastAsFresh: z}}
}

// AtExactSnapshot reads exactly the revision of z.
func AtExactSnapshot(z *pb.Zookie) *pb.Consistency {
	return &pb.Consistency{Requirement: &pb.Consistency_AtExactSnapshot{AtExactSnapshot: z}}
}
