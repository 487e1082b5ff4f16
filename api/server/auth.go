package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
)

// Key is a preshared key, the name of its holder and what it may do. The
// name is recorded as the caller of every write made with the key (the
// audit trail that Watch streams) and labels its calls in logs and
// metrics; the secret is never logged.
type Key struct {
	Name   string
	Secret string
	// Scopes the key holds; zero means every scope (ScopeAdmin), which is
	// what a plain "name secret" line of a keys file gives.
	Scopes Scope
	// Tenant, when set, is the type prefix the key is bound to ("acme/"):
	// it sees and writes only object types under it (docs/operations.md).
	Tenant string
	// Limits are the key's own limits (zero: none).
	Limits KeyLimits
}

// KeyLimits bound one key's use of the server. A zero field is no limit.
type KeyLimits struct {
	// RequestsPerSecond is the sustained call rate; Burst (default: one
	// second's worth, at least 1) is how many calls may come at once.
	RequestsPerSecond float64
	Burst             int
	// Concurrent bounds the key's calls in flight (open streams count).
	Concurrent int
	// MaxLookupLimit is the largest optional_limit of a LookupResources
	// or LookupSubjects call; with it set, a lookup must give a limit
	// (and page with cursors).
	MaxLookupLimit int
	// Streams bounds the key's lookups, reads, exports and other
	// limited streams at once (see streamguard.go); 0 takes the server's
	// Overload.MaxStreamsPerKey.
	Streams int
}

// AnonymousCaller is the caller recorded when authentication is off.
const AnonymousCaller = "anonymous"

// authenticator checks bearer tokens against the configured keys and,
// if configured, an identity token issuer. A Server swaps it whole on
// SetKeys.
type authenticator struct {
	// Digests of the secrets: comparing fixed-length digests keeps the
	// comparison constant-time in the secret's length too.
	digests    [][sha256.Size]byte
	principals []*Principal // by the index of digests
	tokens     *TokenVerifier
}

// newAuthenticator checks keys and builds their principals; prev (or
// nil) lends its rate and concurrency state to keys whose name and
// limits are unchanged, so that a reload does not refill their buckets.
func newAuthenticator(keys []Key, tokens *TokenVerifier, prev *authenticator, now func() time.Time) (*authenticator, error) {
	a := &authenticator{tokens: tokens}
	seenSecret := map[string]bool{}
	seenName := map[string]bool{}
	for i, k := range keys {
		if k.Name == "" {
			return nil, fmt.Errorf("server: key %d has no name", i)
		}
		if seenName[k.Name] {
			return nil, fmt.Errorf("server: key name %q is used twice (the name is the caller in the audit trail)", k.Name)
		}
		seenName[k.Name] = true
		if len(k.Secret) < 16 {
			return nil, fmt.Errorf("server: key %q is shorter than 16 characters", k.Name)
		}
		if seenSecret[k.Secret] {
			return nil, fmt.Errorf("server: key %q repeats another key's secret", k.Name)
		}
		seenSecret[k.Secret] = true
		if err := CheckTenant(k.Tenant); err != nil {
			return nil, fmt.Errorf("server: key %q: %w", k.Name, err)
		}
		if err := k.Limits.check(); err != nil {
			return nil, fmt.Errorf("server: key %q: %w", k.Name, err)
		}
		scopes := k.Scopes
		if scopes == 0 {
			scopes = ScopeAdmin
		}
		if scopes&^allScopes != 0 {
			return nil, fmt.Errorf("server: key %q: unknown scope bits %#x", k.Name, uint16(scopes&^allScopes))
		}
		p := &Principal{Name: k.Name, Scopes: scopes, Tenant: k.Tenant, MaxLookupLimit: k.Limits.MaxLookupLimit, maxStreams: k.Limits.Streams, counts: new(callerCounts)}
		if old := prev.principal(k.Name); old != nil && old.limiter != nil && old.limiter.limits == k.Limits {
			p.limiter = old.limiter
		} else {
			p.limiter = newKeyLimiter(k.Limits, now)
		}
		a.digests = append(a.digests, sha256.Sum256([]byte(k.Secret)))
		a.principals = append(a.principals, p)
	}
	return a, nil
}

// principal returns the principal of the key named name, or nil.
func (a *authenticator) principal(name string) *Principal {
	if a == nil {
		return nil
	}
	for _, p := range a.principals {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (a *authenticator) enabled() bool { return len(a.digests) > 0 || a.tokens != nil }

// authenticate returns the principal of the key or token presented in
// the request's "authorization: Bearer <key>" metadata.
func (a *authenticator) authenticate(ctx context.Context) (*Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return a.authenticateHeader(ctx, md.Get("authorization"))
}

// authenticateHeader checks the values of an authorization header.
func (a *authenticator) authenticateHeader(ctx context.Context, vals []string) (*Principal, error) {
	if len(vals) == 0 {
		return nil, fmt.Errorf("%w: missing \"authorization: Bearer <key>\" metadata", ErrUnauthenticated)
	}
	if len(vals) > 1 {
		return nil, fmt.Errorf("%w: more than one authorization value", ErrUnauthenticated)
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return nil, fmt.Errorf("%w: authorization metadata is not \"Bearer <key>\"", ErrUnauthenticated)
	}
	if a.tokens != nil && looksLikeJWT(token) {
		return a.tokens.Verify(ctx, token)
	}
	d := sha256.Sum256([]byte(token))
	match := -1
	// Compare against every key without stopping early.
	for i := range a.digests {
		if subtle.ConstantTimeCompare(d[:], a.digests[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return nil, fmt.Errorf("%w: the key is not valid", ErrUnauthenticated)
	}
	return a.principals[match], nil
}

// looksLikeJWT reports whether a bearer value has a JWT's compact form
// (three base64url parts); preshared keys in that form cannot be told
// apart, so ParseKeys-era keys with two dots are checked as tokens only
// when an issuer is configured.
func looksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && strings.HasPrefix(s, "eyJ")
}

type principalKey struct{}

// withPrincipal records the authenticated caller for the handlers.
func withPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// anonymous is the principal of calls when authentication is off (and of
// health checks and reflection let through without a key): every scope,
// no tenant.
var anonymous = &Principal{Name: AnonymousCaller, Scopes: ScopeAdmin}

// PrincipalOf returns the authenticated caller of ctx's call, or the
// anonymous principal (every scope, no tenant) when authentication is off.
func PrincipalOf(ctx context.Context) *Principal {
	if p, ok := ctx.Value(principalKey{}).(*Principal); ok {
		return p
	}
	return anonymous
}

// callerOf returns the name of the authenticated caller, or
// AnonymousCaller.
func callerOf(ctx context.Context) string { return PrincipalOf(ctx).Name }
