package server

import (
	"context"
	"fmt"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// contextualFromProto converts the contextual relationships of a read
// request (names and shapes only; the engine validates them against the
// schema and enforces its limits). A list longer than the engine's limit
// is refused before it is converted.
func (p *permissions) contextualFromProto(ctx context.Context, path string, rels []*pb.Relationship) ([]tuple.Relationship, error) {
	if len(rels) == 0 {
		return nil, nil
	}
	if n, max := len(rels), p.eng().Limits().MaxContextualRelationships; n > max {
		return nil, fieldErr(path, fmt.Errorf("%w: %d contextual relationships exceed the limit of %d", engine.ErrInvalidRequest, n, max))
	}
	out := make([]tuple.Relationship, len(rels))
	for i, r := range rels {
		var err error
		if out[i], err = relationshipFromProto(index(path, i), r); err != nil {
			return nil, err
		}
		// A tenant's contextual relationships are its own, as its
		// writes are.
		if err := PrincipalOf(ctx).RelationshipErr(index(path, i), out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CheckPermissionSet answers a set of permissions on one or more resources
// of one type for one subject, at one revision and in one evaluation.
// With explain, every cell also carries the explanation CheckPermission
// with explain would give for it (the tenant checks are the same).
func (p *permissions) CheckPermissionSet(ctx context.Context, req *pb.CheckPermissionSetRequest) (*pb.CheckPermissionSetResponse, error) {
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	in := engine.PermissionSetRequest{Consistency: c, IncludeRelations: req.GetIncludeRelations(), Explain: req.GetExplain()}
	if n, max := len(req.GetResources()), p.eng().Limits().MaxPermissionSetResources; n == 0 || n > max {
		return nil, fieldErr("resources", fmt.Errorf("%w: a permission set takes 1 to %d resources, not %d", engine.ErrInvalidRequest, max, n))
	}
	for i, r := range req.GetResources() {
		o, err := objectFromProto(index("resources", i), r)
		if err != nil {
			return nil, err
		}
		in.Resources = append(in.Resources, o)
	}
	for i, perm := range req.GetOptionalPermissions() {
		if err := checkRelation(index("optional_permissions", i), perm); err != nil {
			return nil, err
		}
	}
	in.Permissions = req.GetOptionalPermissions()
	if in.Subject, err = subjectFromProto("subject", req.GetSubject()); err != nil {
		return nil, err
	}
	who := PrincipalOf(ctx)
	for i, r := range in.Resources {
		if err := who.TypeErr(join(index("resources", i), "object_type"), r.Type); err != nil {
			return nil, err
		}
	}
	if err := who.TypeErr("subject.object.object_type", in.Subject.Type); err != nil {
		return nil, err
	}
	if in.Context, err = contextFromProto("context", req.GetContext()); err != nil {
		return nil, err
	}
	if in.Contextual, err = p.contextualFromProto(ctx, "contextual_relationships", req.GetContextualRelationships()); err != nil {
		return nil, err
	}
	res, err := p.eng().CheckPermissionSet(ctx, in)
	if err != nil {
		return nil, err
	}
	const method = "/pemba.v1.PermissionsService/CheckPermissionSet"
	out := &pb.CheckPermissionSetResponse{CheckedAt: zookieToProto(res.Zookie), Permissions: res.Permissions, Rows: make([]*pb.PermissionSetRow, len(res.Results))}
	for i, row := range res.Results {
		pr := &pb.PermissionSetRow{Resource: convert.Object(in.Resources[i]), Cells: make([]*pb.PermissionSetCell, len(row))}
		for j, r := range row {
			cell := &pb.PermissionSetCell{Permission: res.Permissions[j]}
			if res.Explanations != nil {
				if x := res.Explanations[i][j]; x != nil {
					if cell.Explanation, err = explanationToProto(x, r.Err); err != nil {
						return nil, err
					}
				}
			}
			if r.Err != nil {
				cell.Response = &pb.PermissionSetCell_Error{Error: itemError(ctx, p.s.log, method, r.Err)}
			} else {
				perm := permissionshipToProto(r.Permissionship)
				p.s.metrics.checked(perm, r.Dispatches, r.Depth)
				cell.Response = &pb.PermissionSetCell_Answer{Answer: &pb.PermissionSetAnswer{
					Permissionship:    perm,
					PartialCaveatInfo: partialInfo(r.Permissionship, r.MissingContext),
				}}
			}
			pr.Cells[j] = cell
		}
		out.Rows[i] = pr
	}
	return out, nil
}
