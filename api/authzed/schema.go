package authzed

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
)

// schemas implements v1.SchemaServiceServer.
type schemas struct {
	v1.UnimplementedSchemaServiceServer
	*api
}

// ReadSchema returns the schema text in force at the head revision
// (authzed.api.v1's request has no consistency). With no schema written
// yet it fails with NOT_FOUND, as SpiceDB does.
func (h *schemas) ReadSchema(ctx context.Context, _ *v1.ReadSchemaRequest) (*v1.ReadSchemaResponse, error) {
	rs, err := h.eng.ReadSchema(ctx, engine.FullyConsistent())
	if errors.Is(err, engine.ErrNoSchema) {
		return nil, fmt.Errorf("%w: %w", server.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	text, err := server.PrincipalOf(ctx).SchemaFor(rs.Text)
	if err != nil {
		return nil, err
	}
	return &v1.ReadSchemaResponse{SchemaText: text, ReadAt: toZedToken(rs.Zookie)}, nil
}

// WriteSchema replaces the schema. A change that would orphan stored
// relationships fails with FAILED_PRECONDITION, as in SpiceDB.
func (h *schemas) WriteSchema(ctx context.Context, req *v1.WriteSchemaRequest) (*v1.WriteSchemaResponse, error) {
	if err := tooMany("schema", "bytes", len(req.GetSchema()), server.MaxSchemaBytes); err != nil {
		return nil, err
	}
	if req.GetSchema() == "" {
		return nil, missing("schema")
	}
	zk, _, err := server.WriteSchemaAs(ctx, h.eng, server.PrincipalOf(ctx), req.GetSchema())
	if err != nil {
		return nil, err
	}
	return &v1.WriteSchemaResponse{WrittenAt: toZedToken(zk)}, nil
}
