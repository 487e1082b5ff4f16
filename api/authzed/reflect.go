package authzed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/schema"
)

// This file serves the schema reflection calls that Pemba has the data
// for: ReflectSchema and DiffSchema, from the schema text in force,
// compiled again here (the engine serves the text; schema compiles it the
// same way).

// schemaAt compiles the schema in force under c.
func (h *schemas) schemaAt(ctx context.Context, c *v1.Consistency) (*schema.Schema, string, error) {
	cons, err := consistency("consistency", c)
	if err != nil {
		return nil, "", err
	}
	rs, err := h.eng.ReadSchema(ctx, cons)
	if errors.Is(err, engine.ErrNoSchema) {
		return nil, "", fmt.Errorf("%w: %w", server.ErrNotFound, err)
	}
	if err != nil {
		return nil, "", err
	}
	text, err := server.PrincipalOf(ctx).SchemaFor(rs.Text)
	if err != nil {
		return nil, "", err
	}
	s, err := schema.Compile("schema", text)
	if err != nil {
		// The engine compiled this text when it was written.
		return nil, "", fmt.Errorf("authzed: the stored schema does not compile: %w", err)
	}
	return s, rs.Zookie, nil
}

// ReflectSchema describes the schema in force: definitions with their
// relations and permissions, and caveats, in source order.
// optional_filters is not supported.
func (h *schemas) ReflectSchema(ctx context.Context, req *v1.ReflectSchemaRequest) (*v1.ReflectSchemaResponse, error) {
	if len(req.GetOptionalFilters()) > 0 {
		return nil, unimplemented("optional_filters", "reflect the whole schema and filter the answer")
	}
	s, zk, err := h.schemaAt(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	out := &v1.ReflectSchemaResponse{ReadAt: toZedToken(zk)}
	for _, d := range inSourceOrder(s.Definitions, func(d *schema.Definition) schema.Position { return d.Pos }) {
		out.Definitions = append(out.Definitions, reflectDefinition(d))
	}
	for _, c := range inSourceOrder(s.Caveats, func(c *schema.Caveat) schema.Position { return c.Pos }) {
		out.Caveats = append(out.Caveats, reflectCaveat(c))
	}
	return out, nil
}

func inSourceOrder[T any](m map[string]T, pos func(T) schema.Position) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int {
		pa, pb := pos(a), pos(b)
		return cmp.Or(cmp.Compare(pa.Filename, pb.Filename), cmp.Compare(pa.Offset, pb.Offset))
	})
	return out
}

func reflectDefinition(d *schema.Definition) *v1.ReflectionDefinition {
	out := &v1.ReflectionDefinition{Name: d.Name, Comment: d.Doc}
	for _, r := range d.Ordered {
		if r.IsPermission {
			out.Permissions = append(out.Permissions, reflectPermission(r))
		} else {
			out.Relations = append(out.Relations, reflectRelation(r))
		}
	}
	return out
}

func reflectPermission(r *schema.Relation) *v1.ReflectionPermission {
	return &v1.ReflectionPermission{Name: r.Name, Comment: r.Doc, ParentDefinitionName: r.Definition.Name}
}

func reflectRelation(r *schema.Relation) *v1.ReflectionRelation {
	out := &v1.ReflectionRelation{Name: r.Name, Comment: r.Doc, ParentDefinitionName: r.Definition.Name}
	for _, a := range r.Allowed {
		out.SubjectTypes = append(out.SubjectTypes, reflectSubjectType(a))
	}
	return out
}

// reflectSubjectType converts an allowed subject type. "with expiration"
// has no field in authzed.api.v1 and is not shown.
func reflectSubjectType(a *schema.AllowedSubject) *v1.ReflectionTypeReference {
	out := &v1.ReflectionTypeReference{SubjectDefinitionName: a.Type}
	if a.Caveat != nil {
		out.OptionalCaveatName = a.Caveat.Name
	}
	switch {
	case a.Wildcard:
		out.Typeref = &v1.ReflectionTypeReference_IsPublicWildcard{IsPublicWildcard: true}
	case a.Relation != "":
		out.Typeref = &v1.ReflectionTypeReference_OptionalRelationName{OptionalRelationName: a.Relation}
	default:
		out.Typeref = &v1.ReflectionTypeReference_IsTerminalSubject{IsTerminalSubject: true}
	}
	return out
}

func reflectCaveat(c *schema.Caveat) *v1.ReflectionCaveat {
	out := &v1.ReflectionCaveat{Name: c.Name, Expression: c.Expression}
	for _, p := range c.Params {
		out.Parameters = append(out.Parameters, &v1.ReflectionCaveatParameter{Name: p.Name, Type: p.Type, ParentCaveatName: c.Name})
	}
	return out
}

// DiffSchema lists what comparison_schema changes relative to the schema
// in force, as schema.Diff sees it. Doc comment changes are not reported.
func (h *schemas) DiffSchema(ctx context.Context, req *v1.DiffSchemaRequest) (*v1.DiffSchemaResponse, error) {
	if err := tooMany("comparison_schema", "bytes", len(req.GetComparisonSchema()), server.MaxSchemaBytes); err != nil {
		return nil, err
	}
	if req.GetComparisonSchema() == "" {
		return nil, missing("comparison_schema")
	}
	cur, zk, err := h.schemaAt(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	next, err := schema.Compile("comparison_schema", req.GetComparisonSchema())
	if err != nil {
		return nil, err
	}
	out := &v1.DiffSchemaResponse{ReadAt: toZedToken(zk)}
	for _, c := range schema.Diff(cur, next) {
		if c.Kind == schema.CaveatChanged {
			out.Diffs = append(out.Diffs, caveatDiffs(cur.Caveats[c.Name], next.Caveats[c.Name])...)
			continue
		}
		d, err := diffOf(cur, next, c)
		if err != nil {
			return nil, err
		}
		if d != nil {
			out.Diffs = append(out.Diffs, d)
		}
	}
	return out, nil
}

// diffOf converts one change; nil for the members of an added or removed
// definition (authzed.api.v1 reports the definition alone) and for
// invariants, which it cannot express.
func diffOf(cur, next *schema.Schema, c schema.Change) (*v1.ReflectionSchemaDiff, error) {
	member := func(s *schema.Schema) *schema.Relation {
		if d := s.Definitions[c.Definition]; d != nil {
			return d.Relations[c.Name]
		}
		return nil
	}
	gone := cur.Definitions[c.Definition] != nil && next.Definitions[c.Definition] == nil
	fresh := cur.Definitions[c.Definition] == nil && next.Definitions[c.Definition] != nil
	switch c.Kind {
	case schema.DefinitionAdded:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_DefinitionAdded{DefinitionAdded: reflectDefinition(next.Definitions[c.Definition])}}, nil
	case schema.DefinitionRemoved:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_DefinitionRemoved{DefinitionRemoved: reflectDefinition(cur.Definitions[c.Definition])}}, nil
	case schema.RelationAdded, schema.RelationRemoved, schema.PermissionAdded, schema.PermissionRemoved:
		if gone || fresh {
			return nil, nil
		}
	case schema.InvariantAdded, schema.InvariantRemoved, schema.InvariantChanged:
		// A Pemba extension: authzed.api.v1 has no diff for it.
		return nil, nil
	}
	switch c.Kind {
	case schema.RelationAdded:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_RelationAdded{RelationAdded: reflectRelation(member(next))}}, nil
	case schema.RelationRemoved:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_RelationRemoved{RelationRemoved: reflectRelation(member(cur))}}, nil
	case schema.PermissionAdded:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_PermissionAdded{PermissionAdded: reflectPermission(member(next))}}, nil
	case schema.PermissionRemoved:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_PermissionRemoved{PermissionRemoved: reflectPermission(member(cur))}}, nil
	case schema.PermissionChanged:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_PermissionExprChanged{PermissionExprChanged: reflectPermission(member(next))}}, nil
	case schema.SubjectTypeAdded:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_RelationSubjectTypeAdded{RelationSubjectTypeAdded: &v1.ReflectionRelationSubjectTypeChange{
			Relation: reflectRelation(member(next)), ChangedSubjectType: reflectSubjectType(c.Subject),
		}}}, nil
	case schema.SubjectTypeRemoved:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_RelationSubjectTypeRemoved{RelationSubjectTypeRemoved: &v1.ReflectionRelationSubjectTypeChange{
			Relation: reflectRelation(member(cur)), ChangedSubjectType: reflectSubjectType(c.Subject),
		}}}, nil
	case schema.CaveatAdded:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatAdded{CaveatAdded: reflectCaveat(next.Caveats[c.Name])}}, nil
	case schema.CaveatRemoved:
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatRemoved{CaveatRemoved: reflectCaveat(cur.Caveats[c.Name])}}, nil
	}
	return nil, fmt.Errorf("authzed: schema change of unknown kind %v", c.Kind)
}

// caveatDiffs reports how a caveat changed: its expression, and each
// parameter added, removed or retyped.
func caveatDiffs(old, next *schema.Caveat) []*v1.ReflectionSchemaDiff {
	var out []*v1.ReflectionSchemaDiff
	if old.Expression != next.Expression {
		out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatExprChanged{CaveatExprChanged: reflectCaveat(next)}})
	}
	param := func(c *schema.Caveat, name string) *schema.CaveatParam {
		for i := range c.Params {
			if c.Params[i].Name == name {
				return &c.Params[i]
			}
		}
		return nil
	}
	for _, p := range next.Params {
		switch op := param(old, p.Name); {
		case op == nil:
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatParameterAdded{CaveatParameterAdded: &v1.ReflectionCaveatParameter{Name: p.Name, Type: p.Type, ParentCaveatName: next.Name}}})
		case op.Type != p.Type:
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatParameterTypeChanged{CaveatParameterTypeChanged: &v1.ReflectionCaveatParameterTypeChange{
				Parameter: &v1.ReflectionCaveatParameter{Name: p.Name, Type: p.Type, ParentCaveatName: next.Name}, PreviousType: op.Type,
			}}})
		}
	}
	for _, p := range old.Params {
		if param(next, p.Name) == nil {
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatParameterRemoved{CaveatParameterRemoved: &v1.ReflectionCaveatParameter{Name: p.Name, Type: p.Type, ParentCaveatName: old.Name}}})
		}
	}
	return out
}

// relationsOf returns the relations and permissions that r is computed
// from directly: for a permission, those its rewrite names (an arrow
// names its tupleset relation and its target on each subject type); for
// a relation, the subject sets its types allow (group#member).
func relationsOf(r *schema.Relation) []*schema.Relation {
	var out []*schema.Relation
	if !r.IsPermission {
		for _, a := range r.Allowed {
			if a.Target != nil {
				out = append(out, a.Target)
			}
		}
		return out
	}
	var walk func(rw *schema.Rewrite)
	walk = func(rw *schema.Rewrite) {
		if rw == nil {
			return
		}
		switch rw.Kind {
		case schema.RewriteComputed:
			out = append(out, rw.Relation)
		case schema.RewriteArrow:
			out = append(out, rw.Relation)
			out = append(out, inSourceOrder(rw.Targets, func(r *schema.Relation) schema.Position { return r.Pos })...)
		}
		for _, c := range rw.Children {
			walk(c)
		}
	}
	walk(r.Rewrite)
	return out
}

// dependencies returns every relation and permission that p is computed
// from, recursively, without p itself.
func dependencies(p *schema.Relation) map[*schema.Relation]bool {
	seen := map[*schema.Relation]bool{}
	var visit func(r *schema.Relation)
	visit = func(r *schema.Relation) {
		for _, d := range relationsOf(r) {
			if d != nil && !seen[d] {
				seen[d] = true
				visit(d)
			}
		}
	}
	visit(p)
	delete(seen, p)
	return seen
}

// references converts a set of relations, sorted by definition and name.
func references(set map[*schema.Relation]bool) []*v1.ReflectionRelationReference {
	out := make([]*v1.ReflectionRelationReference, 0, len(set))
	for r := range set {
		out = append(out, &v1.ReflectionRelationReference{DefinitionName: r.Definition.Name, RelationName: r.Name, IsPermission: r.IsPermission})
	}
	slices.SortFunc(out, func(a, b *v1.ReflectionRelationReference) int {
		return cmp.Or(cmp.Compare(a.GetDefinitionName(), b.GetDefinitionName()), cmp.Compare(a.GetRelationName(), b.GetRelationName()))
	})
	return out
}

// member finds definition#name in s, failing as the engine does for
// unknown names (FAILED_PRECONDITION through authzed.api.v1).
func member(s *schema.Schema, definition, name string) (*schema.Relation, error) {
	d := s.Definitions[definition]
	if d == nil {
		return nil, fmt.Errorf("%w: %q", engine.ErrUnknownDefinition, definition)
	}
	r := d.Relations[name]
	if r == nil {
		return nil, fmt.Errorf("%w: %q on definition %q", engine.ErrUnknownRelation, name, definition)
	}
	return r, nil
}

// DependentRelations lists the relations and permissions a permission is
// computed from, recursively: those its rewrite names, an arrow's tupleset
// relation and its target on each subject type, and the subject sets the
// relations reached allow.
func (h *schemas) DependentRelations(ctx context.Context, req *v1.DependentRelationsRequest) (*v1.DependentRelationsResponse, error) {
	if err := checkType("", "definition_name", req.GetDefinitionName()); err != nil {
		return nil, err
	}
	if err := checkRelation("", "permission_name", req.GetPermissionName()); err != nil {
		return nil, err
	}
	s, zk, err := h.schemaAt(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	p, err := member(s, req.GetDefinitionName(), req.GetPermissionName())
	if err != nil {
		return nil, err
	}
	if !p.IsPermission {
		return nil, fieldf("permission_name", "%s#%s is a relation, not a permission", p.Definition.Name, p.Name)
	}
	return &v1.DependentRelationsResponse{Relations: references(dependencies(p)), ReadAt: toZedToken(zk)}, nil
}

// ComputablePermissions lists the permissions computed from a relation
// (or permission), recursively: the inverse of DependentRelations,
// optionally only those of definitions whose name starts with
// optional_definition_name_filter.
func (h *schemas) ComputablePermissions(ctx context.Context, req *v1.ComputablePermissionsRequest) (*v1.ComputablePermissionsResponse, error) {
	if err := checkType("", "definition_name", req.GetDefinitionName()); err != nil {
		return nil, err
	}
	if err := checkRelation("", "relation_name", req.GetRelationName()); err != nil {
		return nil, err
	}
	s, zk, err := h.schemaAt(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	target, err := member(s, req.GetDefinitionName(), req.GetRelationName())
	if err != nil {
		return nil, err
	}
	found := map[*schema.Relation]bool{}
	for _, d := range s.Definitions {
		if !strings.HasPrefix(d.Name, req.GetOptionalDefinitionNameFilter()) {
			continue
		}
		for _, p := range d.Ordered {
			if p.IsPermission && p != target && dependencies(p)[target] {
				found[p] = true
			}
		}
	}
	return &v1.ComputablePermissionsResponse{Permissions: references(found), ReadAt: toZedToken(zk)}, nil
}
