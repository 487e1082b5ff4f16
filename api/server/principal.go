package server

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// This file is the one place that decides what a tenant-bound caller may
// see. The interceptors authorize the method (scope.go); handlers of
// every API (pemba.v1 here, authzed.api.v1 in package api/authzed, the
// HTTP APIs) call the Principal's methods on every type a request names
// and every relationship or tree they answer with.

// Principal is the authenticated caller of one call: a preshared key or
// an identity token.
type Principal struct {
	// Name is the caller recorded with writes (WriteMeta.Caller) and in
	// logs: the key's name, or "jwt:" and the token's subject.
	Name string
	// Scopes the caller holds.
	Scopes Scope
	// Tenant is the type prefix ("acme/") the caller is bound to; ""
	// for none (every type).
	Tenant string
	// MaxLookupLimit is the largest lookup limit (0: none).
	MaxLookupLimit int
	// maxStreams is the key's own limit on its streams (0: the server's).
	maxStreams int

	limiter *keyLimiter // nil for tokens
	// label is the caller's metrics label: the key name, or "jwt" for
	// tokens (subjects are unbounded).
	label string
	// counts caches a key's caller_requests_total children by code (a
	// key's principal lives until the keys are reloaded); nil for tokens.
	counts *callerCounts
}

// callerCounts are one caller's request counters, by code.
type callerCounts [numCodes]atomic.Pointer[prometheus.Counter]

// metricsLabel is the caller label of the principal's metrics.
func (p *Principal) metricsLabel() string {
	if p.label != "" {
		return p.label
	}
	return p.Name
}

// CheckTenant checks a tenant prefix: "" (no tenant) or a type prefix
// of one or more names each followed by "/" ("acme/", "acme/eu/").
func CheckTenant(t string) error {
	if t == "" {
		return nil
	}
	if !strings.HasSuffix(t, "/") {
		return fmt.Errorf("tenant %q must end with \"/\" (a type prefix such as \"acme/\")", t)
	}
	// A valid prefix followed by a valid name is a valid type name.
	if err := tuple.ValidateType("tenant", t+"x"); err != nil {
		return fmt.Errorf("tenant %q is not a type prefix: %w", t, err)
	}
	return nil
}

// OwnsType reports whether an object type is the caller's: always without
// a tenant; with one, when the type is under the tenant's prefix.
func (p *Principal) OwnsType(t string) bool {
	return p.Tenant == "" || strings.HasPrefix(t, p.Tenant)
}

// TypeErr returns nil when the caller may name type t in a request, or
// a PERMISSION_DENIED error naming the request field.
func (p *Principal) TypeErr(field, t string) error {
	if p.OwnsType(t) {
		return nil
	}
	return fmt.Errorf("%w: %s: type %q is outside tenant %q of caller %q", ErrPermissionDenied, field, t, p.Tenant, p.Name)
}

// RelationshipErr checks both types of a relationship a request names.
func (p *Principal) RelationshipErr(field string, r tuple.Relationship) error {
	if err := p.TypeErr(field+".resource", r.Resource.Type); err != nil {
		return err
	}
	return p.TypeErr(field+".subject", r.Subject.Type)
}

// FilterErr checks a relationship filter of a read or delete: with a
// tenant, its resource type (when given) and subject type must be the
// tenant's. A filter without a resource type is allowed for reads, whose
// results go through Sees.
func (p *Principal) FilterErr(field string, f tuple.Filter) error {
	if f.ResourceType != "" {
		if err := p.TypeErr(field+".resource_type", f.ResourceType); err != nil {
			return err
		}
	}
	if f.Subject != nil {
		return p.TypeErr(field+".subject_filter.subject_type", f.Subject.Type)
	}
	return nil
}

// DeleteFilter narrows a delete filter to the caller: a tenant must name
// a resource type of its own (a delete without one would reach other
// tenants' relationships).
func (p *Principal) DeleteFilter(field string, f tuple.Filter) error {
	if p.Tenant != "" && f.ResourceType == "" {
		return fmt.Errorf("%w: %s.resource_type: a key bound to tenant %q must name a type under it", ErrPermissionDenied, field, p.Tenant)
	}
	return p.FilterErr(field, f)
}

// PreconditionsErr checks the filters of a write's preconditions, which
// reveal whether relationships exist: as DeleteFilter.
func (p *Principal) PreconditionsErr(field string, ps []engine.Precondition) error {
	if p.Tenant == "" {
		return nil
	}
	for i, pc := range ps {
		if err := p.DeleteFilter(fmt.Sprintf("%s[%d].filter", field, i), pc.Filter); err != nil {
			return err
		}
	}
	return nil
}

// Sees reports whether a stored relationship may be shown to the caller:
// both of its types are the tenant's.
func (p *Principal) Sees(r tuple.Relationship) bool {
	return p.OwnsType(r.Resource.Type) && p.OwnsType(r.Subject.Type)
}

// Tree returns an expansion tree with the parts outside the caller's
// tenant removed: subjects of other types, and nodes of other types with
// everything below them. A schema that a tenant wrote names only its own
// types, so this only bites where an administrator's schema links
// tenants.
func (p *Principal) Tree(t *engine.Tree) *engine.Tree {
	if p.Tenant == "" || t == nil {
		return t
	}
	if !p.OwnsType(t.Object.Type) {
		return nil
	}
	out := *t
	out.Subjects = nil
	for _, s := range t.Subjects {
		if p.OwnsType(s.Subject.Type) {
			out.Subjects = append(out.Subjects, s)
		}
	}
	out.Children = nil
	for _, c := range t.Children {
		if pc := p.Tree(c); pc != nil {
			out.Children = append(out.Children, pc)
		}
	}
	return &out
}

// CheckErr checks the types of a check: its resource and its subject.
func (p *Principal) CheckErr(path string, q engine.CheckQuery) error {
	if err := p.TypeErr(join(path, "resource.object_type"), q.Resource.Type); err != nil {
		return err
	}
	return p.TypeErr(join(path, "subject.object.object_type"), q.Subject.Type)
}

// LookupErr checks the resource and subject types of a lookup and its
// limit (LookupLimitErr); the fields name them in errors.
func (p *Principal) LookupErr(resourceField, resourceType, subjectField, subjectType, limitField string, limit int) error {
	if err := p.TypeErr(resourceField, resourceType); err != nil {
		return err
	}
	if err := p.TypeErr(subjectField, subjectType); err != nil {
		return err
	}
	return p.LookupLimitErr(limitField, limit)
}

// LookupLimitErr checks the limit of a lookup against the caller's
// MaxLookupLimit; field names the request's limit field.
func (p *Principal) LookupLimitErr(field string, limit int) error {
	if p.MaxLookupLimit <= 0 || (limit > 0 && limit <= p.MaxLookupLimit) {
		return nil
	}
	what := fmt.Sprintf("is %d", limit)
	if limit <= 0 {
		what = "is not set"
	}
	// A request over a limit (LIMIT_EXCEEDED, HTTP 413), not a caller to
	// slow down: retrying it unchanged never helps.
	return fmt.Errorf("%w: %s %s; caller %q may look up at most %d results per call: set it to at most %d and page with the cursor",
		engine.ErrLimitExceeded, field, what, p.Name, p.MaxLookupLimit, p.MaxLookupLimit)
}
