package server

import (
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
)

// consistencyFromProto converts a consistency requirement; unset means
// minimize latency. The engine decodes and checks the zookie itself.
func consistencyFromProto(path string, c *pb.Consistency) (engine.Consistency, error) {
	switch r := c.GetRequirement().(type) {
	case nil:
		return engine.MinimizeLatency(), nil
	case *pb.Consistency_MinimizeLatency:
		if !r.MinimizeLatency {
			return engine.Consistency{}, fieldf(join(path, "minimize_latency"), "must be true when set")
		}
		return engine.MinimizeLatency(), nil
	case *pb.Consistency_FullyConsistent:
		if !r.FullyConsistent {
			return engine.Consistency{}, fieldf(join(path, "fully_consistent"), "must be true when set")
		}
		return engine.FullyConsistent(), nil
	case *pb.Consistency_AtLeastAsFresh:
		tok, err := zookieFromProto(join(path, "at_least_as_fresh"), r.AtLeastAsFresh)
		if err != nil {
			return engine.Consistency{}, err
		}
		return engine.AtLeastAsFresh(tok), nil
	case *pb.Consistency_AtExactSnapshot:
		tok, err := zookieFromProto(join(path, "at_exact_snapshot"), r.AtExactSnapshot)
		if err != nil {
			return engine.Consistency{}, err
		}
		return engine.AtExactSnapshot(tok), nil
	}
	return engine.Consistency{}, fieldf(path, "unknown requirement %T", c.GetRequirement())
}

func zookieFromProto(path string, z *pb.Zookie) (string, error) {
	if z.GetToken() == "" {
		return "", missing(join(path, "token"))
	}
	return z.GetToken(), nil
}

func zookieToProto(tok string) *pb.Zookie {
	if tok == "" {
		return nil
	}
	return &pb.Zookie{Token: tok}
}

func cursorToProto(tok string) *pb.Cursor {
	if tok == "" {
		return nil
	}
	return &pb.Cursor{Token: tok}
}

func permissionshipToProto(p engine.Permissionship) pb.Permissionship {
	switch p {
	case engine.NoPermission:
		return pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION
	case engine.HasPermission:
		return pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION
	case engine.ConditionalPermission:
		return pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return pb.Permissionship_PERMISSIONSHIP_UNSPECIFIED
}

// partialInfo is set for conditional answers only.
func partialInfo(p engine.Permissionship, missing []string) *pb.PartialCaveatInfo {
	if p != engine.ConditionalPermission {
		return nil
	}
	return &pb.PartialCaveatInfo{MissingRequiredContext: missing}
}

// preconditionFromProto converts a write precondition.
func preconditionFromProto(path string, p *pb.Precondition) (engine.Precondition, error) {
	if p == nil {
		return engine.Precondition{}, missing(path)
	}
	var out engine.Precondition
	switch op := p.GetOperation(); op {
	case pb.Precondition_OPERATION_MUST_EXIST:
		out.MustExist = true
	case pb.Precondition_OPERATION_MUST_NOT_EXIST:
	case pb.Precondition_OPERATION_UNSPECIFIED:
		return out, missing(join(path, "operation"))
	default:
		return out, fieldf(join(path, "operation"), "unknown operation %d", int32(op))
	}
	f, err := filterFromProto(join(path, "filter"), p.GetFilter(), true)
	if err != nil {
		return out, err
	}
	out.Filter = f
	return out, nil
}

// tooMany reports a field over a limit of the engine or of the API layer.
func tooMany(field, what string, got, limit int) error {
	if got <= limit {
		return nil
	}
	return fieldErr(field, &engine.LimitError{Limit: what, Max: limit, Got: got})
}
