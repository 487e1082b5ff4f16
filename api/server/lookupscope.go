package server

import (
	"context"
	"strings"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Scoped lookups and counts: the conversion of LookupResourcesRequest's
// optional_through and LookupSubjectsRequest's optional_within, and the
// CountResources and CountRelationships handlers.

// throughFromProto converts a ResourceScope; nil stays nil (no scope).
func throughFromProto(path string, s *pb.ResourceScope) (*engine.Through, error) {
	if s == nil {
		return nil, nil
	}
	obj, err := objectFromProto(join(path, "object"), s.GetObject())
	if err != nil {
		return nil, err
	}
	th := &engine.Through{Object: obj}
	for i, r := range s.GetRelations() {
		field := index(join(path, "relations"), i)
		typ, rel, qualified := strings.Cut(r, "#")
		if qualified {
			if err := checkType(field, typ); err != nil {
				return nil, err
			}
		} else {
			rel = r
		}
		if err := checkRelation(field, rel); err != nil {
			return nil, err
		}
		th.Relations = append(th.Relations, r)
	}
	return th, nil
}

// withinFromProto converts optional_within: a subject set with a concrete
// ID; nil stays nil (no scope).
func withinFromProto(path string, s *pb.SubjectReference) (*tuple.SubjectRef, error) {
	if s == nil {
		return nil, nil
	}
	sub, err := subjectFromProto(path, s)
	if err != nil {
		return nil, err
	}
	if sub.IsWildcard() {
		return nil, fieldf(join(join(path, "object"), "object_id"), "a subject set needs a concrete id, not the wildcard")
	}
	if sub.Relation == "" {
		return nil, fieldf(join(path, "optional_relation"), "is required: a scope is a subject set (department:d#member)")
	}
	return &sub, nil
}

// CountResources counts the resources LookupResources would stream.
func (p *permissions) CountResources(ctx context.Context, req *pb.CountResourcesRequest) (*pb.CountResourcesResponse, error) {
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	if err := checkType("resource_object_type", req.GetResourceObjectType()); err != nil {
		return nil, err
	}
	if err := checkRelation("permission", req.GetPermission()); err != nil {
		return nil, err
	}
	subj, err := subjectFromProto("subject", req.GetSubject())
	if err != nil {
		return nil, err
	}
	cctx, err := contextFromProto("context", req.GetContext())
	if err != nil {
		return nil, err
	}
	th, err := throughFromProto("optional_through", req.GetOptionalThrough())
	if err != nil {
		return nil, err
	}
	crels, err := p.contextualFromProto(ctx, "contextual_relationships", req.GetContextualRelationships())
	if err != nil {
		return nil, err
	}
	res, err := p.eng().CountResources(ctx, engine.CountResourcesRequest{
		Consistency: c,
		LookupResourcesRequest: engine.LookupResourcesQuery{
			ResourceType: req.GetResourceObjectType(), Permission: req.GetPermission(), Subject: subj, Through: th,
		},
		Context:    cctx,
		Contextual: crels,
	})
	if err != nil {
		return nil, err
	}
	return &pb.CountResourcesResponse{
		CountedAt: zookieToProto(res.Zookie), Count: uint64(res.Count), ConditionalCount: uint64(res.Conditional),
	}, nil
}

// CountRelationships counts the relationships matching a filter.
func (p *permissions) CountRelationships(ctx context.Context, req *pb.CountRelationshipsRequest) (*pb.CountRelationshipsResponse, error) {
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	f, err := filterFromProto("relationship_filter", req.GetRelationshipFilter(), false)
	if err != nil {
		return nil, err
	}
	n, zk, err := p.eng().CountRelationships(ctx, c, f)
	if err != nil {
		return nil, err
	}
	return &pb.CountRelationshipsResponse{CountedAt: zookieToProto(zk), Count: uint64(n)}, nil
}
