package server

import (
	"context"
	"errors"
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

// DryRunSchemaAs is WriteSchemaAs without the write: the changes and
// impact of writing text as p's schema (for a tenant, the stored schema
// with the tenant's part replaced, so the other tenants' definitions
// show no change).
func DryRunSchemaAs(ctx context.Context, e *engine.Engine, p *Principal, text string) (engine.SchemaDryRun, error) {
	if p.Tenant == "" {
		return e.DryRunSchema(ctx, text, engine.SchemaImpactOptions{})
	}
	current := ""
	rs, err := e.ReadSchema(ctx, engine.FullyConsistent())
	switch {
	case err == nil:
		current = rs.Text
	case !errors.Is(err, engine.ErrNoSchema):
		return engine.SchemaDryRun{}, err
	}
	merged, err := schema.ReplaceTenantPart(current, p.Tenant, text)
	if err != nil {
		return engine.SchemaDryRun{}, fmt.Errorf("%w: caller %q of tenant %q: %w", engine.ErrInvalidSchema, p.Name, p.Tenant, err)
	}
	return e.DryRunSchema(ctx, merged, engine.SchemaImpactOptions{})
}
