package eval

import (
	"context"

	"github.com/pemba-authz/pemba/engine/tuple"
)

func (rq *request) expand(ctx context.Context, resource tuple.ObjectRef, permission string, depth int) (*Tree, error) {
	return nil, invalidRequest("Expand: not implemented yet")
}
