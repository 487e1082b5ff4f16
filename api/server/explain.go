package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
)

// explainPermission answers a CheckPermission that asked for an
// explanation. A check that fails on the depth limit fails as without
// explain, with the explanation (the paths that went too deep) attached
// to the status as a detail.
func (p *permissions) explainPermission(ctx context.Context, req engine.CheckRequest) (*pb.CheckPermissionResponse, error) {
	res, err := p.eng().Explain(ctx, req)
	if err != nil {
		if res.Explanation != nil && errors.Is(err, engine.ErrMaxDepth) {
			if x, cerr := explanationToProto(res.Explanation, err); cerr == nil {
				return nil, &explainedError{err: err, explanation: x}
			}
		}
		return nil, err
	}
	x, err := explanationToProto(res.Explanation, nil)
	if err != nil {
		return nil, err
	}
	perm := permissionshipToProto(res.Permissionship)
	p.s.metrics.checked(perm, res.Dispatches, res.Depth)
	return &pb.CheckPermissionResponse{
		CheckedAt:         zookieToProto(res.Zookie),
		Permissionship:    perm,
		PartialCaveatInfo: partialInfo(res.Permissionship, res.MissingContext),
		Explanation:       x,
	}, nil
}

// explainedError is a check's failure with its explanation, which
// statusOf attaches to the status.
type explainedError struct {
	err         error
	explanation *pb.CheckExplanation
}

func (e *explainedError) Error() string { return e.err.Error() }
func (e *explainedError) Unwrap() error { return e.err }

var explainKinds = map[engine.ExplainKind]pb.ExplainNode_Kind{
	engine.ExplainRelation:     pb.ExplainNode_KIND_RELATION,
	engine.ExplainUnion:        pb.ExplainNode_KIND_UNION,
	engine.ExplainIntersection: pb.ExplainNode_KIND_INTERSECTION,
	engine.ExplainExclusion:    pb.ExplainNode_KIND_EXCLUSION,
	engine.ExplainArrow:        pb.ExplainNode_KIND_ARROW,
	engine.ExplainRelationship: pb.ExplainNode_KIND_RELATIONSHIP,
	engine.ExplainSelf:         pb.ExplainNode_KIND_SELF,
	engine.ExplainNil:          pb.ExplainNode_KIND_NIL,
}

var explainReasons = map[engine.ExplainReason]pb.ExplainNode_Reason{
	engine.ReasonNone:          pb.ExplainNode_REASON_UNSPECIFIED,
	engine.ReasonMissing:       pb.ExplainNode_REASON_MISSING_RELATIONSHIP,
	engine.ReasonCaveatFalse:   pb.ExplainNode_REASON_CAVEAT_FALSE,
	engine.ReasonCaveatMissing: pb.ExplainNode_REASON_CAVEAT_MISSING_CONTEXT,
	engine.ReasonExpired:       pb.ExplainNode_REASON_EXPIRED,
	engine.ReasonExcluded:      pb.ExplainNode_REASON_EXCLUDED,
	engine.ReasonDepthLimit:    pb.ExplainNode_REASON_DEPTH_LIMIT,
	engine.ReasonCycle:         pb.ExplainNode_REASON_CYCLE,
	engine.ReasonNotAllowed:    pb.ExplainNode_REASON_SUBJECT_NOT_ALLOWED,
	engine.ReasonNoTarget:      pb.ExplainNode_REASON_NO_TARGET,
	engine.ReasonSubjectItself: pb.ExplainNode_REASON_SUBJECT_ITSELF,
	engine.ReasonNotSelf:       pb.ExplainNode_REASON_NOT_SELF,
}

// explanationToProto converts x; failure is the check's error, if any.
func explanationToProto(x *engine.Explanation, failure error) (*pb.CheckExplanation, error) {
	root, err := explainNodeToProto(x.Root)
	if err != nil {
		return nil, err
	}
	out := &pb.CheckExplanation{Root: root}
	if failure != nil {
		out.Error = failure.Error()
	} else if x.Permissionship == engine.HasPermission {
		// A grant's witness: these relationships alone grant.
		for _, r := range x.Relationships() {
			pr, err := convert.Relationship(r)
			if err != nil {
				return nil, err
			}
			out.Witness = append(out.Witness, pr)
		}
	}
	if x.Nearest != nil {
		if out.Nearest, err = convert.Relationship(*x.Nearest); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func explainNodeToProto(n *engine.ExplainNode) (*pb.ExplainNode, error) {
	kind, ok := explainKinds[n.Kind]
	if !ok {
		return nil, fmt.Errorf("server: explanation node of unknown kind %v", n.Kind)
	}
	reason, ok := explainReasons[n.Reason]
	if !ok {
		return nil, fmt.Errorf("server: explanation node with unknown reason %v", n.Reason)
	}
	out := &pb.ExplainNode{
		Kind:     kind,
		Object:   convert.Object(n.Object),
		Relation: n.Relation,
		Target:   n.Target,
		ArrowAll: n.ArrowAll,
		Reason:   reason,
		Path:     n.Path,
		Repeat:   n.Repeat,
		// Truncated: children left out at the size limit.
		Truncated: n.Truncated,
		Plan:      n.Plan,
	}
	for _, i := range n.Order {
		out.Order = append(out.Order, int32(i))
	}
	if n.Err != nil {
		out.Error = n.Err.Error()
	} else {
		out.Permissionship = permissionshipToProto(n.Permissionship)
		out.MissingContext = n.MissingContext
	}
	var err error
	if n.Relationship != nil {
		if out.Relationship, err = convert.Relationship(*n.Relationship); err != nil {
			return nil, err
		}
	}
	if n.Wanted != nil {
		if out.Wanted, err = convert.Relationship(*n.Wanted); err != nil {
			return nil, err
		}
	}
	if c := n.Caveat; c != nil {
		ctx, err := convert.Context(c.Context)
		if err != nil {
			return nil, fmt.Errorf("%w (caveat %s)", err, c.Name)
		}
		out.Caveat = &pb.CaveatEvaluation{Name: c.Name, Expression: c.Expression, Context: ctx,
			Result: permissionshipToProto(c.Result), Missing: c.Missing}
	}
	for _, c := range n.Children {
		pc, err := explainNodeToProto(c)
		if err != nil {
			return nil, err
		}
		out.Children = append(out.Children, pc)
	}
	return out, nil
}
