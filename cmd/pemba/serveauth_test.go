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
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestServeReloadKeysOnSIGHUP: serve with a YAML keys file, rewrite the
// file, send SIGHUP: the new key works, the old one is refused; a file
// that does not parse is logged and leaves the keys in force.
func TestServeReloadKeysOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys.yaml")
	const oldSecret, newSecret = "old-secret-0123456789abcdef", "new-secret-0123456789abcdef"
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(keysFile, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("keys:\n  - name: old\n    secret: " + oldSecret + "\n    scopes: [admin]\n")
	addrs, log := startServeLog(t, "-datastore", "memory", "-keys-file", keysFile, "-access-log")
	sc := pb.NewSchemaServiceClient(dial(t, addrs.grpc))
	call := func(secret string) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
		_, err := sc.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition user {}"})
		return err
	}
	if err := call(oldSecret); err != nil {
		t.Fatalf("the old key before the reload: %v", err)
	}
	if f := log.waitFor(t, "call"); f["caller"] != "old" {
		t.Errorf("access log caller = %q, want old (%v)", f["caller"], f)
	}
	if err := call(newSecret); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the new key before the reload: %v", err)
	}

	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// The new key may check but not write the schema.
	write("keys:\n  - name: new\n    secret: " + newSecret + "\n    scopes: [check, read_schema]\n")
	hup()
	if f := log.waitFor(t, "keys reloaded"); f["keys"] != "1" {
		t.Errorf("reload logged %v", f)
	}
	if err := call(oldSecret); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the old key after the reload: %v", err)
	}
	err := call(newSecret)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "write_schema") {
		t.Errorf("the new key writing the schema: %v; want PERMISSION_DENIED naming write_schema", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+newSecret)
	if _, err := sc.ReadSchema(ctx, &pb.ReadSchemaRequest{}); err != nil {
		t.Errorf("the new key reading the schema: %v", err)
	}

	// A broken file: logged, and the new key stays in force.
	write("keys:\n  - name: broken\n    secret: " + oldSecret + "\n    scopes: [no_such_scope]\n")
	hup()
	f := log.waitFor(t, "SIGHUP: keys not reloaded; the previous keys stay in force")
	if !strings.Contains(f["err"], "no_such_scope") || strings.Contains(f["err"], oldSecret) {
		t.Errorf("the error logged: %q; want it to name the scope and not the secret", f["err"])
	}
	if _, err := sc.ReadSchema(ctx, &pb.ReadSchemaRequest{}); err != nil {
		t.Errorf("the new key after a refused reload: %v", err)
	}
}

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
