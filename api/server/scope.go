package server

import (
	"fmt"
	"slices"
	"strings"
)

// This file is the one table of what each RPC needs: the scope a key must
// hold to call it, and whether its handler keeps a tenant key inside the
// tenant's types. Every method the server registers must be in it
// (TestEveryMethodHasAScope walks the registered services): a method that
// is not is served only to admin keys without a tenant, so that an RPC
// added later fails closed until someone decides its scope.

// Scope is one group of methods a key may call (docs/operations.md,
// "Keys, scopes and tenants").
type Scope uint16

// The scopes. ScopeAdmin holds every other scope and, alone, the methods
// that belong to no group.
const (
	// ScopeCheck: checks, bulk checks, expand and lookups (the questions
	// an application asks; AuthZEN's evaluations and searches).
	ScopeCheck Scope = 1 << iota
	// ScopeReadRelationships: reading and exporting relationships.
	ScopeReadRelationships
	// ScopeWriteRelationships: writing, deleting and importing
	// relationships.
	ScopeWriteRelationships
	// ScopeReadSchema: reading, reflecting and diffing the schema.
	ScopeReadSchema
	// ScopeWriteSchema: writing the schema.
	ScopeWriteSchema
	// ScopeWatch: watching changes.
	ScopeWatch
	// ScopeReadAudit: reading the audit log (pemba.v1.AuditService).
	ScopeReadAudit
	// ScopeDispatch: the cluster's internal DispatchService (the key a
	// node presents to its peers).
	ScopeDispatch
	// ScopeAdmin: everything.
	ScopeAdmin
)

// scopeNames are the names of the scopes in keys files and token claims,
// in Scope bit order.
var scopeNames = []string{
	"check", "read_relationships", "write_relationships", "read_schema", "write_schema",
	"watch", "read_audit", "dispatch", "admin",
}

// allScopes is every scope bit.
const allScopes = ScopeAdmin<<1 - 1

// Has reports whether s holds every scope of want (admin holds all).
func (s Scope) Has(want Scope) bool {
	return s&ScopeAdmin != 0 || s&want == want
}

// String names the scopes of s, joined by "+".
func (s Scope) String() string {
	var names []string
	for i, n := range scopeNames {
		if s&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}

// ParseScopes reads scope names ("check", "write_schema", ...). Names are
// exact; an unknown one is an error naming the known ones.
func ParseScopes(names []string) (Scope, error) {
	var s Scope
	for _, n := range names {
		i := slices.Index(scopeNames, n)
		if i < 0 {
			return 0, fmt.Errorf("unknown scope %q (known: %s)", n, strings.Join(scopeNames, ", "))
		}
		s |= 1 << i
	}
	return s, nil
}

// ScopeNames lists the scope names, for documentation and tests.
func ScopeNames() []string { return slices.Clone(scopeNames) }

// methodRule says what calling one method takes.
type methodRule struct {
	// scope the key must hold; 0: any authenticated key (health checks,
	// reflection).
	scope Scope
	// tenantSafe: a tenant key may call it, because its handler keeps the
	// key inside the tenant's types (or it returns no stored data).
	tenantSafe bool
}

// methodRules maps full method names to their rules.
var methodRules = func() map[string]methodRule {
	m := map[string]methodRule{}
	// The services of pemba.v1 and authzed.api.v1 share their names and
	// most methods.
	both := func(svcMethod string, r methodRule) {
		m["/pemba.v1."+svcMethod] = r
		m["/authzed.api.v1."+svcMethod] = r
	}
	guarded := func(s Scope) methodRule { return methodRule{scope: s, tenantSafe: true} }
	for _, name := range []string{"CheckPermission", "CheckBulkPermissions", "ExpandPermissionTree", "LookupResources", "LookupSubjects"} {
		both("PermissionsService/"+name, guarded(ScopeCheck))
	}
	m["/pemba.v1.PermissionsService/CheckPermissionSet"] = guarded(ScopeCheck)
	both("PermissionsService/ReadRelationships", guarded(ScopeReadRelationships))
	both("PermissionsService/WriteRelationships", guarded(ScopeWriteRelationships))
	both("PermissionsService/DeleteRelationships", guarded(ScopeWriteRelationships))
	both("SchemaService/ReadSchema", guarded(ScopeReadSchema))
	both("SchemaService/WriteSchema", guarded(ScopeWriteSchema))
	both("WatchService/Watch", guarded(ScopeWatch))

	// Not yet kept inside a tenant's types by their handlers: refused to
	// tenant keys (methodRule without tenantSafe).
	m["/pemba.v1.PermissionsService/CountResources"] = methodRule{scope: ScopeCheck}
	m["/pemba.v1.PermissionsService/CountRelationships"] = methodRule{scope: ScopeReadRelationships}
	m["/pemba.v1.PermissionsService/DiffPermissions"] = methodRule{scope: ScopeCheck}
	m["/pemba.v1.WatchService/WatchPermissions"] = methodRule{scope: ScopeWatch}

	m["/pemba.v1.PermissionsService/ImportRelationships"] = guarded(ScopeWriteRelationships)
	m["/pemba.v1.PermissionsService/ExportRelationships"] = guarded(ScopeReadRelationships)
	// A copy of the whole datastore: admin keys without a tenant only.
	m["/pemba.v1.BackupService/Backup"] = methodRule{scope: ScopeAdmin}
	// Cluster-internal: evaluates any subproblem, so never a tenant's.
	m["/pemba.v1.DispatchService/DispatchCheck"] = methodRule{scope: ScopeDispatch}

	m["/authzed.api.v1.PermissionsService/ImportBulkRelationships"] = guarded(ScopeWriteRelationships)
	m["/authzed.api.v1.PermissionsService/ExportBulkRelationships"] = guarded(ScopeReadRelationships)
	for _, name := range []string{"ReflectSchema", "DiffSchema", "DependentRelations", "ComputablePermissions"} {
		m["/authzed.api.v1.SchemaService/"+name] = guarded(ScopeReadSchema)
	}
	const x = "/authzed.api.v1.ExperimentalService/"
	m[x+"BulkImportRelationships"] = guarded(ScopeWriteRelationships)
	m[x+"BulkExportRelationships"] = guarded(ScopeReadRelationships)
	m[x+"BulkCheckPermission"] = guarded(ScopeCheck)
	// Refused as unimplemented by their handlers: they return no data.
	for _, name := range []string{"ExperimentalReflectSchema", "ExperimentalComputablePermissions", "ExperimentalDependentRelations", "ExperimentalDiffSchema"} {
		m[x+name] = guarded(ScopeReadSchema)
	}
	m[x+"ExperimentalCountRelationships"] = guarded(ScopeReadRelationships)
	m[x+"ExperimentalRegisterRelationshipCounter"] = guarded(ScopeWriteRelationships)
	m[x+"ExperimentalUnregisterRelationshipCounter"] = guarded(ScopeWriteRelationships)

	// Health and reflection reveal no data: any key (and no key at all
	// with -health-without-auth / ReflectionWithoutAuth).
	for _, name := range []string{"Check", "Watch", "List"} {
		m["/grpc.health.v1.Health/"+name] = methodRule{tenantSafe: true}
	}
	m["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"] = methodRule{tenantSafe: true}
	m["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"] = methodRule{tenantSafe: true}
	return m
}()

// ruleOf returns the rule of a full method name; a method in no group
// needs ScopeAdmin and no tenant.
func ruleOf(fullMethod string) methodRule {
	if r, ok := methodRules[fullMethod]; ok {
		return r
	}
	return methodRule{scope: ScopeAdmin}
}

// authorize decides whether p may call fullMethod: a PERMISSION_DENIED
// error naming the missing scope, or the tenant restriction, otherwise.
func authorize(p *Principal, fullMethod string) error {
	r := ruleOf(fullMethod)
	if !p.Scopes.Has(r.scope) {
		return &ScopeError{Caller: p.Name, Method: shortMethod(fullMethod), Missing: r.scope}
	}
	if p.Tenant != "" && !r.tenantSafe {
		return fmt.Errorf("%w: %s is not served to tenant keys (caller %q is bound to tenant %q)",
			ErrPermissionDenied, shortMethod(fullMethod), p.Name, p.Tenant)
	}
	return nil
}

// ScopeError is a call refused because the caller lacks a scope. It
// matches ErrPermissionDenied.
type ScopeError struct {
	Caller  string
	Method  string // short method name
	Missing Scope
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("server: permission denied: %s needs scope %q, which caller %q does not hold", e.Method, e.Missing.String(), e.Caller)
}

// Is makes a *ScopeError match ErrPermissionDenied.
func (e *ScopeError) Is(target error) bool { return target == ErrPermissionDenied }

// MethodScope returns the scope a full method name needs (0: any
// authenticated caller) and whether tenant keys may call it; known is
// false for a method in no group (served to admin keys only).
func MethodScope(fullMethod string) (scope Scope, tenantSafe, known bool) {
	r, ok := methodRules[fullMethod]
	return r.scope, r.tenantSafe, ok
}
