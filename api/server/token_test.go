package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// issuer is a local OpenID issuer: signing keys, and an httptest TLS
// server on loopback that serves their JWKS (counting the fetches).
type issuer struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]any // kid -> private key
	served  []string       // kids published
	fetches atomic.Int32
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{t: t, keys: map[string]any{}}
	is.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(is.jwks())
	}))
	t.Cleanup(is.srv.Close)
	return is
}

// addKey makes an RSA (or, with ec, ECDSA) key and publishes it.
func (is *issuer) addKey(kid string, ec bool) {
	is.t.Helper()
	var k any
	var err error
	if ec {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		is.t.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys[kid] = k
	is.served = append(is.served, kid)
}

// publish sets which keys the JWKS holds (key rotation).
func (is *issuer) publish(kids ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.served = kids
}

func (is *issuer) jwks() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, kid := range is.served {
		var pub any
		switch k := is.keys[kid].(type) {
		case *rsa.PrivateKey:
			pub = &k.PublicKey
		case *ecdsa.PrivateKey:
			pub = &k.PublicKey
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: kid, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		is.t.Fatal(err)
	}
	return b
}

// sign makes a token with kid's key.
func (is *issuer) sign(kid string, claims jwt.MapClaims) string {
	is.t.Helper()
	is.mu.Lock()
	k := is.keys[kid]
	is.mu.Unlock()
	method := jwt.SigningMethod(jwt.SigningMethodRS256)
	if _, ok := k.(*ecdsa.PrivateKey); ok {
		method = jwt.SigningMethodES256
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		is.t.Fatal(err)
	}
	return s
}

var tokenEpoch = time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)

// claims are valid claims at tokenEpoch for the test audience.
func (is *issuer) claims(extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": is.srv.URL, "aud": "pemba", "sub": "svc-1",
		"iat": tokenEpoch.Add(-time.Minute).Unix(), "exp": tokenEpoch.Add(time.Hour).Unix(),
		"scope": "openid pemba:check pemba:read_schema", "tenant": "acme/",
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// clock is a settable test clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (is *issuer) verifier(t *testing.T, clk *testClock) *TokenVerifier {
	t.Helper()
	v, err := NewTokenVerifier(TokenConfig{
		Issuer: is.srv.URL, Audience: "pemba", JWKSURL: is.srv.URL + "/jwks.json", HTTPClient: is.srv.Client(),
		ScopePrefix: "pemba:", TenantClaim: "tenant", Clock: clk.Now, Leeway: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTokenVerify(t *testing.T) {
	is := newIssuer(t)
	is.addKey("k1", false)
	is.addKey("k2", true)
	is.publish("k1", "k2")
	other := newIssuer(t) // another issuer, whose keys sign forgeries
	other.addKey("k1", false)

	tests := []struct {
		name    string
		token   func() string
		advance time.Duration // of the clock before verifying
		wantErr string        // "" for valid
		want    *Principal
	}{
		{name: "valid RSA", token: func() string { return is.sign("k1", is.claims(nil)) },
			want: &Principal{Name: "jwt:svc-1", Scopes: ScopeCheck | ScopeReadSchema, Tenant: "acme/"}},
		{name: "valid ECDSA, scopes as an array", token: func() string {
			return is.sign("k2", is.claims(map[string]any{"scope": []any{"pemba:write_relationships", "pemba:nonsense", "write_schema"}}))
		}, want: &Principal{Name: "jwt:svc-1", Scopes: ScopeWriteRelationships, Tenant: "acme/"}},
		{name: "expired", token: func() string { return is.sign("k1", is.claims(nil)) }, advance: time.Hour + time.Second, wantErr: "expired"},
		{name: "not yet valid", token: func() string {
			return is.sign("k1", is.claims(map[string]any{"nbf": tokenEpoch.Add(time.Minute).Unix()}))
		}, wantErr: "not valid yet"},
		{name: "no exp", token: func() string { return is.sign("k1", is.claims(map[string]any{"exp": nil})) }, wantErr: "exp"},
		{name: "wrong audience", token: func() string { return is.sign("k1", is.claims(map[string]any{"aud": "someone-else"})) }, wantErr: "audience"},
		{name: "wrong issuer", token: func() string { return is.sign("k1", is.claims(map[string]any{"iss": "https://evil.example"})) }, wantErr: "issuer"},
		{name: "wrong signature", token: func() string { return other.sign("k1", is.claims(nil)) }, wantErr: "signature"},
		{name: "tampered payload", token: func() string {
			tok := is.sign("k1", is.claims(nil))
			parts := strings.Split(tok, ".")
			forged := other.sign("k1", is.claims(map[string]any{"scope": "pemba:admin"}))
			return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
		}, wantErr: "signature"},
		{name: "unknown key id", token: func() string {
			other.addKey("k9", false)
			return other.sign("k9", is.claims(nil))
		}, wantErr: `unknown key id "k9"`},
		{name: "no tenant claim", token: func() string { return is.sign("k1", is.claims(map[string]any{"tenant": nil})) }, wantErr: `no "tenant" claim`},
		{name: "bad tenant claim", token: func() string { return is.sign("k1", is.claims(map[string]any{"tenant": "acme"})) }, wantErr: "must end with"},
		{name: "no subject", token: func() string { return is.sign("k1", is.claims(map[string]any{"sub": nil})) }, wantErr: `no "sub" claim`},
		{name: "alg none", token: func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, is.claims(nil))
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}, wantErr: "signing method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &testClock{t: tokenEpoch}
			v := is.verifier(t, clk)
			tok := tt.token()
			clk.Add(tt.advance)
			p, err := v.Verify(context.Background(), tok)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrUnauthenticated saying %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), tok) {
					t.Errorf("the error repeats the token")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tt.want.Name || p.Scopes != tt.want.Scopes || p.Tenant != tt.want.Tenant || p.metricsLabel() != "jwt" {
				t.Errorf("principal = %s %v %q, want %s %v %q", p.Name, p.Scopes, p.Tenant, tt.want.Name, tt.want.Scopes, tt.want.Tenant)
			}
		})
	}
}

// TestTokenKeyRotation: a token signed by a newly published key verifies
// (an unknown kid fetches the key set again), a token of a key the issuer
// withdrew stops verifying once the set is fetched again, unknown kids do
// not make the verifier fetch more than once per MinRefetch, and the
// periodic refresh fetches again.
func TestTokenKeyRotation(t *testing.T) {
	is := newIssuer(t)
	is.addKey("old", false)
	clk := &testClock{t: tokenEpoch}
	v := is.verifier(t, clk)
	ctx := context.Background()
	verify := func(kid string) error {
		_, err := v.Verify(ctx, is.sign(kid, is.claims(map[string]any{"exp": clk.Now().Add(time.Hour).Unix(), "iat": clk.Now().Unix()})))
		return err
	}
	if err := verify("old"); err != nil {
		t.Fatal(err)
	}
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after the first token, want 1", n)
	}
	// Rotation: the issuer publishes "new" and withdraws "old".
	is.addKey("new", false)
	is.publish("new")
	clk.Add(DefaultTokenMinRefetch)
	if err := verify("new"); err != nil {
		t.Fatalf("the rotated key: %v", err)
	}
	if n := is.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the new kid, want 2", n)
	}
	if err := verify("old"); err == nil || !strings.Contains(err.Error(), `unknown key id "old"`) {
		t.Fatalf("the withdrawn key: err = %v, want unknown key id", err)
	}
	// Unknown kids within MinRefetch of the last fetch fetch nothing.
	for range 3 {
		if err := verify("old"); err == nil {
			t.Fatal("the withdrawn key verified")
		}
	}
	if n := is.fetches.Load(); n != 2 {
		t.Errorf("%d fetches after repeated unknown kids, want 2", n)
	}
	// The periodic refresh.
	clk.Add(DefaultTokenRefresh)
	if err := verify("new"); err != nil {
		t.Fatal(err)
	}
	if n := is.fetches.Load(); n != 3 {
		t.Errorf("%d fetches after the refresh period, want 3", n)
	}
}

// TestTokenJWKSFile: keys from a file, read again after the refresh
// period.
func TestTokenJWKSFile(t *testing.T) {
	is := newIssuer(t)
	is.addKey("a", false)
	is.addKey("b", false)
	is.publish("a")
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, is.jwks(), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := &testClock{t: tokenEpoch}
	v, err := NewTokenVerifier(TokenConfig{Issuer: is.srv.URL, Audience: "pemba", JWKSFile: path, ScopePrefix: "pemba:", Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, is.sign("a", is.claims(nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, is.sign("b", is.claims(nil))); err == nil {
		t.Fatal("an unpublished key verified")
	}
	is.publish("b")
	if err := os.WriteFile(path, is.jwks(), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Add(DefaultTokenMinRefetch)
	if _, err := v.Verify(ctx, is.sign("b", is.claims(nil))); err != nil {
		t.Fatalf("the key added to the file: %v", err)
	}
}

func TestNewTokenVerifierRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  TokenConfig
		want string
	}{
		{"no issuer", TokenConfig{Audience: "a", JWKSFile: "f"}, "no issuer"},
		{"no audience", TokenConfig{Issuer: "i", JWKSFile: "f"}, "no audience"},
		{"no keys", TokenConfig{Issuer: "i", Audience: "a"}, "exactly one"},
		{"both keys", TokenConfig{Issuer: "i", Audience: "a", JWKSFile: "f", JWKSURL: "https://x/"}, "exactly one"},
		{"plain http", TokenConfig{Issuer: "i", Audience: "a", JWKSURL: "http://x/jwks"}, "https"},
	}
	for _, tt := range tests {
		if _, err := NewTokenVerifier(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestTokenCalls: a server with keys and tokens authenticates both; a
// token's scopes and tenant decide its calls like a key's.
func TestTokenCalls(t *testing.T) {
	is := newIssuer(t)
	is.addKey("k1", false)
	clk := &testClock{t: tokenEpoch}
	f := newFixture(t, Config{Keys: []Key{{Name: "admin", Secret: secretA}}, Tokens: is.verifier(t, clk)})
	if _, err := f.schema.WriteSchema(bearer(secretA), &pb.WriteSchemaRequest{Schema: "definition acme/user {}\ndefinition acme/doc { relation viewer: acme/user\npermission view = viewer }\ndefinition user {}"}); err != nil {
		t.Fatal(err)
	}
	tok := is.sign("k1", is.claims(nil)) // check + read_schema, tenant acme/
	check := func(typ string) error {
		_, err := f.perms.CheckPermission(bearer(tok), &pb.CheckPermissionRequest{Consistency: full(), Resource: obj(typ, "1"), Permission: "view", Subject: sub("acme/user", "a", "")})
		return err
	}
	if err := check("acme/doc"); err != nil {
		t.Fatalf("a check in the token's tenant: %v", err)
	}
	if err := check("doc"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a check outside the tenant: %v, want PERMISSION_DENIED", err)
	}
	_, err := f.perms.WriteRelationships(bearer(tok), &pb.WriteRelationshipsRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `scope "write_relationships"`) || !strings.Contains(err.Error(), "jwt:svc-1") {
		t.Errorf("a write without the scope: %v", err)
	}
	clk.Add(2 * time.Hour)
	if err := check("acme/doc"); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Errorf("an expired token: %v", err)
	}
}
