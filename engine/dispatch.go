package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/token"
)

// MaxDispatchClockSkew bounds how far the clock of a dispatched request may
// be from this node's. The clock decides which relationships have expired,
// so a caller must not be able to choose it: the nodes of a cluster keep
// their clocks synchronised (NTP), and a request outside the bound is
// refused (the sender then evaluates the subproblem itself).
const MaxDispatchClockSkew = 5 * time.Second

// dispatchCheck answers a subproblem another node of the cluster sent to
// this one, its owner. fp is the sender's store fingerprint: nodes on
// different stores share no revisions, so a mismatch is refused
// (ErrInvalidRequest) rather than answered from unrelated data. The
// request's revision must still be inside the GC window.
func (e *Engine) dispatchCheck(ctx context.Context, fp token.Fingerprint, req *eval.DispatchRequest) (*eval.DispatchResponse, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if fp != e.fingerprint {
		return nil, fmt.Errorf("%w: dispatch from a node on another datastore", ErrInvalidRequest)
	}
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, err
	}
	if skew := req.Now.Sub(e.now()).Abs(); skew > MaxDispatchClockSkew {
		return nil, fmt.Errorf("%w: dispatch clock is %v away from this node's (at most %v): synchronise the nodes' clocks",
			ErrInvalidRequest, skew.Round(time.Millisecond), MaxDispatchClockSkew)
	}
	v, err := e.openAt(ctx, req.Revision)
	if err != nil {
		return nil, err
	}
	if v.c == nil {
		return nil, fmt.Errorf("%w (at revision %d)", ErrNoSchema, v.rev)
	}
	resp, err := v.c.eval.DispatchCheck(ctx, eval.Params{Reader: v.evalReader()}, req)
	if err != nil {
		return nil, fmt.Errorf("engine: dispatched check %s#%s@%s: %w", req.Resource, req.Relation, req.Subject, err)
	}
	return resp, nil
}
