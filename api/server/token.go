package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Identity tokens: JWTs signed by an OpenID Connect (or any OAuth 2.0)
// issuer whose public keys come from a JWKS document. golang-jwt checks
// the signature and the registered claims (iss, aud, exp, nbf, iat);
// go-jose decodes the JWKS. The key set is fetched on first use, again
// when a token names a key id it lacks (key rotation) and after
// TokenConfig.Refresh (removed keys stop verifying).

// Defaults of TokenConfig fields left zero.
const (
	DefaultTokenRefresh    = 15 * time.Minute
	DefaultTokenMinRefetch = 10 * time.Second
	DefaultTokenLeeway     = 30 * time.Second
	DefaultScopesClaim     = "scope"
	DefaultSubjectClaim    = "sub"
)

// TokenConfig configures identity token verification.
type TokenConfig struct {
	// Issuer is the exact "iss" the tokens must carry (required).
	Issuer string
	// Audience must be one of the token's "aud" values (required).
	Audience string
	// JWKSFile or JWKSURL (https only) holds the issuer's public keys
	// (exactly one is required).
	JWKSFile string
	JWKSURL  string
	// HTTPClient fetches JWKSURL (nil: a client with a 10s timeout).
	HTTPClient *http.Client
	// Refresh is how long fetched keys are used before they are fetched
	// again (0: DefaultTokenRefresh).
	Refresh time.Duration
	// MinRefetch is the least time between fetches caused by unknown key
	// ids, so that tokens with made-up key ids cannot make the server
	// hammer the issuer (0: DefaultTokenMinRefetch).
	MinRefetch time.Duration
	// Leeway tolerates clock skew on exp, nbf and iat (0:
	// DefaultTokenLeeway; negative: none).
	Leeway time.Duration
	// ScopesClaim holds the caller's scopes: a space-separated string
	// (OAuth's "scope") or an array of strings (0: DefaultScopesClaim).
	ScopesClaim string
	// ScopePrefix, when set, is stripped from scope values, and values
	// without it are ignored ("pemba:check" with prefix "pemba:"). Values
	// that name no scope are ignored either way: tokens carry other
	// applications' scopes too.
	ScopePrefix string
	// TenantClaim, when set, names the claim holding the caller's tenant
	// (a type prefix such as "acme/"); tokens without it are refused.
	// Unset: tokens are bound to no tenant.
	TenantClaim string
	// SubjectClaim names the caller: the caller recorded with writes is
	// "jwt:" followed by its value (0: DefaultSubjectClaim).
	SubjectClaim string
	// Algorithms are the accepted signature algorithms (nil: RS256,
	// RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA).
	Algorithms []string
	// Clock is the time tokens are checked at (nil: time.Now).
	Clock func() time.Time
	// Logger receives key set fetch failures (nil: discard).
	Logger *slog.Logger
}

// TokenVerifier verifies identity tokens; see NewTokenVerifier.
type TokenVerifier struct {
	cfg    TokenConfig
	parser *jwt.Parser
	keys   *keySet
}

// errTokenPrefix starts the messages of tokens that did not verify.
const errTokenPrefix = "identity token"

// NewTokenVerifier checks cfg and returns its verifier. It fetches
// nothing yet: the key set is fetched by the first token.
func NewTokenVerifier(cfg TokenConfig) (*TokenVerifier, error) {
	switch {
	case cfg.Issuer == "":
		return nil, fmt.Errorf("server: identity tokens: no issuer")
	case cfg.Audience == "":
		return nil, fmt.Errorf("server: identity tokens: no audience")
	case (cfg.JWKSFile == "") == (cfg.JWKSURL == ""):
		return nil, fmt.Errorf("server: identity tokens: give exactly one of a JWKS file and a JWKS URL")
	}
	if cfg.JWKSURL != "" {
		u, err := url.Parse(cfg.JWKSURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("server: identity tokens: JWKS URL %q is not an https:// URL", cfg.JWKSURL)
		}
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultTokenRefresh
	}
	if cfg.MinRefetch <= 0 {
		cfg.MinRefetch = DefaultTokenMinRefetch
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultTokenLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	}
	if cfg.ScopesClaim == "" {
		cfg.ScopesClaim = DefaultScopesClaim
	}
	if cfg.SubjectClaim == "" {
		cfg.SubjectClaim = DefaultSubjectClaim
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	v := &TokenVerifier{cfg: cfg}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Clock),
	)
	v.keys = &keySet{cfg: &v.cfg}
	return v, nil
}

// Verify checks a token and returns its caller. Errors wrap
// ErrUnauthenticated and say what failed (expired, audience, issuer,
// signature, unknown key id), never the token.
func (v *TokenVerifier) Verify(ctx context.Context, token string) (*Principal, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return v.keys.key(ctx, kid, t.Method.Alg())
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnauthenticated, errTokenPrefix, err)
	}
	sub, _ := claims[v.cfg.SubjectClaim].(string)
	if sub == "" {
		return nil, fmt.Errorf("%w: %s: no %q claim", ErrUnauthenticated, errTokenPrefix, v.cfg.SubjectClaim)
	}
	p := &Principal{Name: "jwt:" + sub, label: "jwt", Scopes: v.scopes(claims[v.cfg.ScopesClaim])}
	if c := v.cfg.TenantClaim; c != "" {
		t, _ := claims[c].(string)
		if t == "" {
			return nil, fmt.Errorf("%w: %s: no %q claim (the tenant)", ErrUnauthenticated, errTokenPrefix, c)
		}
		if err := CheckTenant(t); err != nil {
			return nil, fmt.Errorf("%w: %s: claim %q: %v", ErrUnauthenticated, errTokenPrefix, c, err)
		}
		p.Tenant = t
	}
	return p, nil
}

// scopes reads the scopes claim: a space-separated string or an array.
func (v *TokenVerifier) scopes(claim any) Scope {
	var vals []string
	switch c := claim.(type) {
	case string:
		vals = strings.Fields(c)
	case []any:
		for _, x := range c {
			if s, ok := x.(string); ok {
				vals = append(vals, s)
			}
		}
	}
	var out Scope
	for _, s := range vals {
		if v.cfg.ScopePrefix != "" {
			var ok bool
			if s, ok = strings.CutPrefix(s, v.cfg.ScopePrefix); !ok {
				continue
			}
		}
		if sc, err := ParseScopes([]string{s}); err == nil {
			out |= sc
		}
	}
	return out
}

// keySet is the issuer's public keys by key id, fetched on demand.
type keySet struct {
	cfg *TokenConfig

	mu      sync.Mutex
	keys    map[string]jose.JSONWebKey
	fetched time.Time // of the last successful fetch
	tried   time.Time // of the last fetch, successful or not
}

// errUnknownKid: the token names a key the issuer does not publish.
var errUnknownKid = errors.New("unknown key id")

// key returns the public key of kid for alg.
func (s *keySet) key(ctx context.Context, kid, alg string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	if s.keys == nil || now.Sub(s.fetched) >= s.cfg.Refresh {
		s.refetch(ctx, now)
	}
	k, ok := s.lookup(kid)
	if !ok && now.Sub(s.tried) >= s.cfg.MinRefetch {
		// A new key id: the issuer may have rotated its keys.
		s.refetch(ctx, now)
		k, ok = s.lookup(kid)
	}
	if s.keys == nil {
		return nil, fmt.Errorf("the issuer's keys could not be fetched (see the server log)")
	}
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return nil, fmt.Errorf("key %q is for %s, the token is signed with %s", kid, k.Algorithm, alg)
	}
	return k.Key, nil
}

// lookup finds kid; a token without a kid matches a set of one key.
func (s *keySet) lookup(kid string) (jose.JSONWebKey, bool) {
	if kid == "" && len(s.keys) == 1 {
		for _, k := range s.keys {
			return k, true
		}
	}
	k, ok := s.keys[kid]
	return k, ok
}

// refetch replaces the keys with freshly fetched ones; on failure the
// keys held stay in use and the failure is logged.
func (s *keySet) refetch(ctx context.Context, now time.Time) {
	s.tried = now
	keys, err := s.fetch(ctx)
	if err != nil {
		s.cfg.Logger.Warn("identity tokens: fetching the issuer's keys failed; keeping those held", "err", err.Error(), "held", len(s.keys))
		return
	}
	s.keys, s.fetched = keys, now
}

// maxJWKSBytes bounds a JWKS document.
const maxJWKSBytes = 1 << 20

func (s *keySet) fetch(ctx context.Context) (map[string]jose.JSONWebKey, error) {
	var data []byte
	var err error
	if s.cfg.JWKSFile != "" {
		data, err = os.ReadFile(s.cfg.JWKSFile)
	} else {
		data, err = s.get(ctx)
	}
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	keys := map[string]jose.JSONWebKey{}
	for _, k := range set.Keys {
		if k.Use == "enc" || !k.Valid() || !k.IsPublic() {
			continue
		}
		keys[k.KeyID] = k
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("JWKS holds no public signing keys")
	}
	return keys, nil
}

func (s *keySet) get(ctx context.Context) ([]byte, error) {
	// The fetch is not the caller's: a cancelled call must not leave the
	// server without keys.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", s.cfg.JWKSURL, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: JWKS larger than %d bytes", s.cfg.JWKSURL, maxJWKSBytes)
	}
	return data, nil
}
