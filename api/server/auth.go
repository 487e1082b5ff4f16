package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"

	"google.golang.org/grpc/metadata"
)

// Key is a preshared key and the name of its holder. The name is recorded
// as the caller of every write made with the key (the audit trail that
// Watch streams); the secret is never logged.
type Key struct {
	Name   string
	Secret string
	// Admin lets the key call the admin services (BackupService) as
	// well as the others.
	Admin bool
}

// AnonymousCaller is the caller recorded when authentication is off.
const AnonymousCaller = "anonymous"

// authenticator checks bearer tokens against the configured keys.
type authenticator struct {
	// Digests of the secrets: comparing fixed-length digests keeps the
	// comparison constant-time in the secret's length too.
	digests [][sha256.Size]byte
	names   []string
	admins  map[string]bool // names of admin keys
}

func newAuthenticator(keys []Key) (*authenticator, error) {
	a := &authenticator{admins: map[string]bool{}}
	seen := map[string]bool{}
	adminOf := map[string]bool{}
	for i, k := range keys {
		if k.Name == "" {
			return nil, fmt.Errorf("server: key %d has no name", i)
		}
		if len(k.Secret) < 16 {
			return nil, fmt.Errorf("server: key %q is shorter than 16 characters", k.Name)
		}
		if seen[k.Secret] {
			return nil, fmt.Errorf("server: key %q repeats another key's secret", k.Name)
		}
		seen[k.Secret] = true
		if admin, ok := adminOf[k.Name]; ok && admin != k.Admin {
			return nil, fmt.Errorf("server: key name %q is both an admin key and not: give the admin key its own name", k.Name)
		}
		adminOf[k.Name] = k.Admin
		a.digests = append(a.digests, sha256.Sum256([]byte(k.Secret)))
		a.names = append(a.names, k.Name)
		if k.Admin {
			a.admins[k.Name] = true
		}
	}
	return a, nil
}

func (a *authenticator) enabled() bool { return len(a.digests) > 0 }

// authenticate returns the name of the key presented in the request's
// "authorization: Bearer <key>" metadata.
func (a *authenticator) authenticate(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", fmt.Errorf("%w: missing \"authorization: Bearer <key>\" metadata", ErrUnauthenticated)
	}
	if len(vals) > 1 {
		return "", fmt.Errorf("%w: more than one authorization value", ErrUnauthenticated)
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", fmt.Errorf("%w: authorization metadata is not \"Bearer <key>\"", ErrUnauthenticated)
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
		return "", fmt.Errorf("%w: the key is not valid", ErrUnauthenticated)
	}
	return a.names[match], nil
}

type callerKey struct{}

// withCaller records the authenticated caller for the handlers.
func withCaller(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, callerKey{}, name)
}

// callerOf returns the authenticated caller, or AnonymousCaller.
func callerOf(ctx context.Context) string {
	if s, ok := ctx.Value(callerKey{}).(string); ok {
		return s
	}
	return AnonymousCaller
}

// requireAdmin lets an admin call through: with authentication off
// anyone may make it (as anyone may write), with it on only the holder
// of an admin key.
func (a *authenticator) requireAdmin(ctx context.Context, what string) error {
	if !a.enabled() {
		return nil
	}
	if name := callerOf(ctx); !a.admins[name] {
		return fmt.Errorf("%w: %s needs an admin key (a keys-file line \"name secret admin\"); key %q is not one", ErrPermissionDenied, what, name)
	}
	return nil
}
