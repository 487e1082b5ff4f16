package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/pemba-authz/pemba/engine/eval"
)

// The vocabulary of explanations, owned by the evaluator (see facade.go
// for why these are aliases).
type (
	// Explanation is a check's answer with the tree that proves it.
	Explanation = eval.Explanation
	// ExplainNode is one step of an explanation.
	ExplainNode = eval.ExplainNode
	// ExplainKind is what an ExplainNode stands for.
	ExplainKind = eval.ExplainKind
	// ExplainReason says why a step has its answer.
	ExplainReason = eval.ExplainReason
	// CaveatExplanation is one evaluation of a relationship's caveat.
	CaveatExplanation = eval.CaveatExplanation
)

// Explanation node kinds.
const (
	ExplainRelation     = eval.ExplainRelation
	ExplainUnion        = eval.ExplainUnion
	ExplainIntersection = eval.ExplainIntersection
	ExplainExclusion    = eval.ExplainExclusion
	ExplainArrow        = eval.ExplainArrow
	ExplainRelationship = eval.ExplainRelationship
	ExplainSelf         = eval.ExplainSelf
	ExplainNil          = eval.ExplainNil
)

// Explanation reasons.
const (
	ReasonNone          = eval.ReasonNone
	ReasonMissing       = eval.ReasonMissing
	ReasonCaveatFalse   = eval.ReasonCaveatFalse
	ReasonCaveatMissing = eval.ReasonCaveatMissing
	ReasonExpired       = eval.ReasonExpired
	ReasonExcluded      = eval.ReasonExcluded
	ReasonDepthLimit    = eval.ReasonDepthLimit
	ReasonCycle         = eval.ReasonCycle
	ReasonNotAllowed    = eval.ReasonNotAllowed
	ReasonNoTarget      = eval.ReasonNoTarget
	ReasonSubjectItself = eval.ReasonSubjectItself
	ReasonNotSelf       = eval.ReasonNotSelf
)

// ErrExplainMismatch: an explanation reached another answer than the check
// it explains (a bug; nothing is returned).
var ErrExplainMismatch = eval.ErrExplainMismatch

// ExplainResponse is a check's answer, the revision it was read at, and
// its explanation.
type ExplainResponse struct {
	CheckResponse
	Explanation *Explanation
}

// Explain answers a check as Check does and explains it: for a grant the
// witness (relationships, rewrites and caveat evaluations that grant), for
// a denial or a conditional answer every branch tried and why it failed.
// It costs a check plus a walk of every branch, so it is an option of its
// own and Check pays nothing for it. When the check fails on the depth
// limit, the error (a *MaxDepthError) comes with a response whose
// Explanation shows the paths that went too deep (and Zookie is set).
func (e *Engine) Explain(ctx context.Context, req CheckRequest) (ExplainResponse, error) {
	if err := e.checkContextSize(req.Context); err != nil {
		return ExplainResponse{}, err
	}
	v, err := e.needSchemaWith(ctx, req.Consistency, req.Contextual)
	if err != nil {
		return ExplainResponse{}, err
	}
	if err := e.noteDeprecated(ctx, v.c.schema, "check", use{req.Resource.Type, req.Permission}); err != nil {
		return ExplainResponse{}, err
	}
	x, err := v.c.eval.Explain(ctx, e.params(v, req.Context, req.Contextual), req.CheckRequest)
	if err != nil {
		err = fmt.Errorf("engine: explain %s#%s@%s: %w", req.Resource, req.Permission, req.Subject, err)
		if x != nil && errors.Is(err, ErrMaxDepth) {
			return ExplainResponse{CheckResponse: CheckResponse{Zookie: e.zookieOf(v.rev)}, Explanation: x}, err
		}
		return ExplainResponse{}, err
	}
	return ExplainResponse{CheckResponse: CheckResponse{CheckResult: x.CheckResult, Zookie: e.zookieOf(v.rev)}, Explanation: x}, nil
}
