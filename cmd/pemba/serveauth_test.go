package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestServeIdentityTokens: -token-issuer with a JWKS file accepts the
// issuer's tokens with the scopes and tenant of their claims, and refuses
// tokens for another audience or signed by another key.
func TestServeIdentityTokens(t *testing.T) {
	dir := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, set, 0o600); err != nil {
		t.Fatal(err)
	}
	const iss, aud = "https://issuer.example", "pemba"
	addrs := startServeAll(t, "-datastore", "memory", "-token-issuer", iss, "-token-audience", aud,
		"-token-jwks-file", jwksFile, "-token-scope-prefix", "pemba:", "-token-tenant-claim", "tenant")
	conn := dial(t, addrs.grpc)
	sc, pc := pb.NewSchemaServiceClient(conn), pb.NewPermissionsServiceClient(conn)
	token := func(key *ecdsa.PrivateKey, audience, tenant, scope string) context.Context {
		t.Helper()
		now := time.Now()
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"iss": iss, "aud": audience, "sub": "svc-1", "tenant": tenant, "scope": scope,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+s)
	}
	admin := token(priv, aud, "acme/", "openid pemba:write_schema pemba:read_schema pemba:write_relationships")
	if _, err := sc.WriteSchema(admin, &pb.WriteSchemaRequest{Schema: "definition acme/user {}\ndefinition acme/doc { relation viewer: acme/user }"}); err != nil {
		t.Fatalf("a token with write_schema: %v", err)
	}
	if _, err := sc.WriteSchema(admin, &pb.WriteSchemaRequest{Schema: "definition globex/user {}"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a tenant token writing another tenant's definition: %v", err)
	}
	checker := token(priv, aud, "acme/", "pemba:check")
	req := &pb.CheckPermissionRequest{
		Consistency: &pb.Consistency{Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    &pb.ObjectReference{ObjectType: "acme/doc", ObjectId: "1"}, Permission: "viewer",
		Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "acme/user", ObjectId: "a"}},
	}
	if _, err := pc.CheckPermission(checker, req); err != nil {
		t.Errorf("a check token checking: %v", err)
	}
	if _, err := sc.ReadSchema(checker, &pb.ReadSchemaRequest{}); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "read_schema") {
		t.Errorf("a check token reading the schema: %v; want PERMISSION_DENIED naming read_schema", err)
	}
	for name, ctx := range map[string]context.Context{
		"another audience":   token(priv, "someone-else", "acme/", "pemba:check"),
		"another key":        token(other, aud, "acme/", "pemba:check"),
		"no tenant claim":    token(priv, aud, "", "pemba:check"),
		"not a token at all": metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer not-a-token-0123456789"),
	} {
		if _, err := pc.CheckPermission(ctx, req); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v; want UNAUTHENTICATED", name, err)
		}
	}
}

// TestServeTokenUsage: the token flags other than -token-issuer need it,
// and -token-issuer needs an audience and a key set.
func TestServeTokenUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-token-audience", "pemba"},
		{"-token-jwks-file", "jwks.json"},
		{"-token-issuer", "https://issuer.example", "-token-jwks-file", "jwks.json"},
		{"-token-issuer", "https://issuer.example", "-token-audience", "pemba"},
		{"-token-issuer", "https://issuer.example", "-token-audience", "pemba", "-token-jwks-url", "http://plain.example/jwks"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"serve", "-datastore", "memory"}, args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "-token-") {
			t.Errorf("serve %q: exit %d, stderr %q; want 2 and a message naming the flags", args, code, stderr.String())
		}
	}
}
