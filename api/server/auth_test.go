package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

const (
	secretA = "secret-of-service-a-0123456789"
	secretB = "secret-of-service-b-0123456789"
	secretC = "secret-of-service-c-0123456789"
)

func bearer(secret string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
}

func TestAuth(t *testing.T) {
	f := newFixture(t, Config{
		Keys:              []Key{{Name: "svc-a", Secret: secretA}, {Name: "svc-b", Secret: secretB}},
		HealthWithoutAuth: true,
		Reflection:        true,
	})
	if _, err := f.schema.WriteSchema(bearer(secretA), &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	checkReq := &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "a", "")}
	unary := func(ctx context.Context) error {
		_, err := f.perms.CheckPermission(ctx, checkReq)
		return err
	}
	stream := func(ctx context.Context) error {
		s, err := f.perms.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}})
		if err != nil {
			return err
		}
		_, err = collect(t, s.Recv)
		return err
	}
	tests := []struct {
		name string
		ctx  context.Context
		ok   bool
	}{
		{"no metadata", context.Background(), false},
		{"wrong key", bearer("secret-of-nobody-0123456789"), false},
		{"key prefix", bearer(secretA[:len(secretA)-1]), false},
		{"empty bearer", metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "), false},
		{"basic scheme", metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic "+secretA), false},
		{"two values", metadata.AppendToOutgoingContext(bearer(secretA), "authorization", "Bearer "+secretB), false},
		{"key a", bearer(secretA), true},
		{"key b, lowercase scheme", metadata.AppendToOutgoingContext(context.Background(), "authorization", "bearer "+secretB), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for kind, call := range map[string]func(context.Context) error{"unary": unary, "stream": stream} {
				err := call(tt.ctx)
				if tt.ok {
					if err != nil {
						t.Errorf("%s: %v", kind, err)
					}
					continue
				}
				wantCode(t, err, codes.Unauthenticated, ReasonUnauthenticated)
				if strings.Contains(err.Error(), "secret-of") {
					t.Errorf("%s: the error repeats the key: %v", kind, err)
				}
			}
		})
	}

	// Health is exempt; reflection is not (ReflectionWithoutAuth unset).
	hc := healthpb.NewHealthClient(f.conn)
	resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: pb.PermissionsService_ServiceDesc.ServiceName})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health without a key = %v, %v", resp, err)
	}
}

func TestAuthHealthNotExempt(t *testing.T) {
	f := newFixture(t, Config{Keys: []Key{{Name: "svc-a", Secret: secretA}}})
	hc := healthpb.NewHealthClient(f.conn)
	_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
	wantCode(t, err, codes.Unauthenticated, ReasonUnauthenticated)
	if _, err := hc.Check(bearer(secretA), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health with a key: %v", err)
	}
}

func TestNewAuthenticatorRejects(t *testing.T) {
	tests := []struct {
		name string
		keys []Key
	}{
		{"no name", []Key{{Secret: secretA}}},
		{"short secret", []Key{{Name: "a", Secret: "short"}}},
		{"repeated secret", []Key{{Name: "a", Secret: secretA}, {Name: "b", Secret: secretA}}},
		{"repeated name", []Key{{Name: "a", Secret: secretA}, {Name: "a", Secret: secretB}}},
		{"tenant without slash", []Key{{Name: "a", Secret: secretA, Tenant: "acme"}}},
		{"tenant not a prefix", []Key{{Name: "a", Secret: secretA, Tenant: "ac me/"}}},
		{"negative rate", []Key{{Name: "a", Secret: secretA, Limits: KeyLimits{RequestsPerSecond: -1}}}},
		{"burst without rate", []Key{{Name: "a", Secret: secretA, Limits: KeyLimits{Burst: 3}}}},
		{"negative lookup limit", []Key{{Name: "a", Secret: secretA, Limits: KeyLimits{MaxLookupLimit: -1}}}},
		{"unknown scope bits", []Key{{Name: "a", Secret: secretA, Scopes: 1 << 15}}},
	}
	for _, tt := range tests {
		_, err := newAuthenticator(tt.keys, nil, nil, nil)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if strings.Contains(err.Error(), secretA) {
			t.Errorf("%s: the error repeats the key: %v", tt.name, err)
		}
	}
}

// TestAuthFailuresLogged: a failed authentication is logged with the
// method and the peer's address, at most authLogBurst lines a minute (by
// the injected clock); the next window first says how many were left out.
func TestAuthFailuresLogged(t *testing.T) {
	var buf syncBuffer
	clock := newFixtureClock()
	f := newFixture(t, Config{Keys: []Key{{Name: "hr-service", Secret: secretA}}, Logger: slog.New(slog.NewTextHandler(&buf, nil)), Clock: clock.Now})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer wrong-key-0123456789abcdef")
	for range authLogBurst + 2 {
		if _, err := f.schema.ReadSchema(ctx, &pb.ReadSchemaRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("wrong key: %v", err)
		}
	}
	log := buf.String()
	if n := strings.Count(log, `msg="authentication failed"`); n != authLogBurst {
		t.Errorf("%d lines logged, want %d:\n%s", n, authLogBurst, log)
	}
	if !strings.Contains(log, "method=/pemba.v1.SchemaService/ReadSchema peer=127.0.0.1:") || strings.Contains(log, "wrong-key") {
		t.Errorf("a line lacks the method or the peer, or shows the key:\n%s", log)
	}
	clock.Advance(authLogEvery)
	f.schema.ReadSchema(ctx, &pb.ReadSchemaRequest{})
	log = buf.String()
	if !strings.Contains(log, `msg="authentication failures not logged" count=2`) || strings.Count(log, `msg="authentication failed"`) != authLogBurst+1 {
		t.Errorf("after a minute:\n%s", log)
	}
}
