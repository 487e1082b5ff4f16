package server

import (
	"context"
	"fmt"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/schema"
)

// SchemaFor returns the part of a stored schema text that p may read:
// all of it without a tenant, the tenant's definitions and caveats
// otherwise (ErrNotFound when it has none yet).
func (p *Principal) SchemaFor(text string) (string, error) {
	if p.Tenant == "" {
		return text, nil
	}
	part, err := schema.TenantPart(text, p.Tenant)
	if err != nil {
		return "", fmt.Errorf("server: the stored schema does not parse: %w", err)
	}
	if part == "" {
		return "", fmt.Errorf("%w: tenant %q has no definitions in the schema yet", ErrNotFound, p.Tenant)
	}
	return part, nil
}

// WriteSchemaAs writes text as p's schema: the whole schema without a
// tenant; with one, text replaces the tenant's definitions and caveats
// and must declare nothing outside the tenant (PERMISSION_DENIED) nor
// refer to another tenant's types (INVALID_ARGUMENT: an unknown
// definition), and the other tenants' definitions stay.
func WriteSchemaAs(ctx context.Context, e *engine.Engine, p *Principal, text string) (string, []schema.Change, error) {
	if p.Tenant == "" {
		return e.WriteSchema(ctx, p.Name, text)
	}
	return e.UpdateSchema(ctx, p.Name, func(current string) (string, error) {
		merged, err := schema.ReplaceTenantPart(current, p.Tenant, text)
		if err != nil {
			return "", fmt.Errorf("%w: caller %q of tenant %q: %w", engine.ErrInvalidSchema, p.Name, p.Tenant, err)
		}
		return merged, nil
	})
}
