package engine

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/pemba-authz/pemba/schema"
)

// DeprecationPolicy says what a request naming a relation or permission
// marked @deprecated in the schema gets.
type DeprecationPolicy uint8

const (
	// DeprecationWarn answers the request and warns: the warning is
	// logged, counted (Stats.DeprecatedUses) and passed to Options.Warn.
	DeprecationWarn DeprecationPolicy = iota
	// DeprecationRefuse refuses the request with ErrDeprecated.
	DeprecationRefuse
)

// ParseDeprecationPolicy parses "warn" or "refuse".
func ParseDeprecationPolicy(s string) (DeprecationPolicy, error) {
	switch s {
	case "warn":
		return DeprecationWarn, nil
	case "refuse":
		return DeprecationRefuse, nil
	}
	return 0, fmt.Errorf("%w: deprecation policy %q (want warn or refuse)", ErrInvalidRequest, s)
}

// deprecation applies the engine's DeprecationPolicy.
type deprecation struct {
	policy DeprecationPolicy
	warn   func(ctx context.Context, msg string)
	uses   atomic.Int64
}

// use names a relation or permission a request uses: its resource type
// and name.
type use struct {
	typ, name string
}

// noteDeprecated applies the policy to the relations and permissions a
// request names in s, each once, for action ("check", "write", ...): nil
// when none is deprecated or the policy warns, an error wrapping
// ErrDeprecated when it refuses.
func (e *Engine) noteDeprecated(ctx context.Context, s *schema.Schema, action string, uses ...use) error {
	var seen map[use]bool
	for _, u := range uses {
		d := s.Definitions[u.typ]
		if d == nil {
			continue
		}
		r := d.Relations[u.name]
		if r == nil || !r.Deprecated || seen[u] {
			continue
		}
		if seen == nil {
			seen = map[use]bool{}
		}
		seen[u] = true
		e.deprecation.uses.Add(1)
		notice := r.DeprecationNotice()
		if e.deprecation.policy == DeprecationRefuse {
			e.log.WarnContext(ctx, "deprecated relation refused", "action", action, "notice", notice)
			return fmt.Errorf("%w: %s; this server refuses to %s it", ErrDeprecated, notice, action)
		}
		e.log.WarnContext(ctx, "deprecated relation used", "action", action, "notice", notice)
		if e.deprecation.warn != nil {
			e.deprecation.warn(ctx, notice)
		}
	}
	return nil
}
