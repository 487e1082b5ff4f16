package server

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestEveryMethodHasAScope: every method the server registers is in the
// scope table, so that a new RPC cannot be served without someone
// deciding which scope it needs and whether tenant keys may call it.
func TestEveryMethodHasAScope(t *testing.T) {
	f := newFixture(t, Config{Reflection: true})
	n := 0
	for svc, info := range f.srv.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			n++
			if _, _, known := MethodScope(full); !known {
				t.Errorf("%s is in no scope group: add it to methodRules (scope.go) and docs/operations.md", full)
			}
		}
	}
	if n < 15 {
		t.Errorf("found only %d methods", n)
	}
}

func TestParseScopes(t *testing.T) {
	s, err := ParseScopes([]string{"check", "watch"})
	if err != nil || s != ScopeCheck|ScopeWatch || s.String() != "check+watch" {
		t.Errorf("ParseScopes = %v (%s), %v", s, s, err)
	}
	if _, err := ParseScopes([]string{"check", "wrte_schema"}); err == nil || !strings.Contains(err.Error(), `"wrte_schema"`) || !strings.Contains(err.Error(), "write_schema") {
		t.Errorf("an unknown scope: %v", err)
	}
	if !ScopeAdmin.Has(ScopeWriteSchema|ScopeDispatch) || ScopeCheck.Has(ScopeWatch) || (ScopeCheck | ScopeWatch).Has(ScopeCheck|ScopeReadSchema) {
		t.Error("Has")
	}
}

// TestScopes: a key holding one scope can make exactly the calls of that
// scope's group; the others fail with PERMISSION_DENIED naming the scope
// missing. The groups are written out here, independently of the table.
func TestScopes(t *testing.T) {
	scopes := []Scope{ScopeCheck, ScopeReadRelationships, ScopeWriteRelationships, ScopeReadSchema, ScopeWriteSchema, ScopeWatch, ScopeReadAudit}
	keys := []Key{{Name: "admin", Secret: "admin-secret-0123456789"}}
	secret := func(s Scope) string { return "secret-of-" + s.String() + "-0123456789" }
	for _, s := range scopes {
		keys = append(keys, Key{Name: s.String() + "-key", Secret: secret(s), Scopes: s})
	}
	f := newFixture(t, Config{Keys: keys})
	admin := bearer("admin-secret-0123456789")
	if _, err := f.schema.WriteSchema(admin, &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	rel := &pb.Relationship{Resource: obj("doc", "1"), Relation: "viewer", Subject: sub("user", "a", "")}
	stream := func(recv func() error) error {
		for {
			if err := recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	calls := []struct {
		name  string
		scope Scope
		run   func(ctx context.Context) error
	}{
		{"CheckPermission", ScopeCheck, func(ctx context.Context) error {
			_, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "a", "")})
			return err
		}},
		{"CheckBulkPermissions", ScopeCheck, func(ctx context.Context) error {
			_, err := f.perms.CheckBulkPermissions(ctx, &pb.CheckBulkPermissionsRequest{Consistency: full()})
			return err
		}},
		{"ExpandPermissionTree", ScopeCheck, func(ctx context.Context) error {
			_, err := f.perms.ExpandPermissionTree(ctx, &pb.ExpandPermissionTreeRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: "view"})
			return err
		}},
		{"LookupResources", ScopeCheck, func(ctx context.Context) error {
			s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "a", "")})
			if err != nil {
				return err
			}
			return stream(func() error { _, err := s.Recv(); return err })
		}},
		{"LookupSubjects", ScopeCheck, func(ctx context.Context) error {
			s, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: "view", SubjectObjectType: "user"})
			if err != nil {
				return err
			}
			return stream(func() error { _, err := s.Recv(); return err })
		}},
		{"ReadRelationships", ScopeReadRelationships, func(ctx context.Context) error {
			s, err := f.perms.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: full(), RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}})
			if err != nil {
				return err
			}
			return stream(func() error { _, err := s.Recv(); return err })
		}},
		{"ExportRelationships", ScopeReadRelationships, func(ctx context.Context) error {
			s, err := f.perms.ExportRelationships(ctx, &pb.ExportRelationshipsRequest{Consistency: full()})
			if err != nil {
				return err
			}
			return stream(func() error { _, err := s.Recv(); return err })
		}},
		{"WriteRelationships", ScopeWriteRelationships, func(ctx context.Context) error {
			_, err := f.perms.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: rel}}})
			return err
		}},
		{"DeleteRelationships", ScopeWriteRelationships, func(ctx context.Context) error {
			_, err := f.perms.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "none"}})
			return err
		}},
		{"ImportRelationships", ScopeWriteRelationships, func(ctx context.Context) error {
			s, err := f.perms.ImportRelationships(ctx)
			if err != nil {
				return err
			}
			_ = s.Send(&pb.ImportRelationshipsRequest{Relationships: []*pb.Relationship{{Resource: obj("doc", "imported"), Relation: "viewer", Subject: sub("user", "a", "")}}})
			_, err = s.CloseAndRecv()
			return err
		}},
		{"ReadSchema", ScopeReadSchema, func(ctx context.Context) error {
			_, err := f.schema.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: full()})
			return err
		}},
		{"WriteSchema", ScopeWriteSchema, func(ctx context.Context) error {
			_, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: testSchema})
			return err
		}},
		{"Watch", ScopeWatch, func(ctx context.Context) error {
			// A watch that is let in streams until cancelled.
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			s, err := f.watch.Watch(ctx, &pb.WatchRequest{})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			if status.Code(err) == codes.DeadlineExceeded {
				return nil
			}
			return err
		}},
	}
	for _, s := range scopes {
		ctx := bearer(secret(s))
		for _, c := range calls {
			err := c.run(ctx)
			if c.scope == s {
				if err != nil {
					t.Errorf("%s key, %s: %v", s, c.name, err)
				}
				continue
			}
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `needs scope "`+c.scope.String()+`"`) || !strings.Contains(err.Error(), s.String()+"-key") {
				t.Errorf("%s key, %s: err = %v, want PERMISSION_DENIED naming scope %q and the caller", s, c.name, err, c.scope)
			}
		}
	}
	// The admin key (a plain "name secret" key) makes them all.
	for _, c := range calls {
		if err := c.run(admin); err != nil {
			t.Errorf("admin key, %s: %v", c.name, err)
		}
	}
}

// TestCallerMetrics: pemba_grpc_caller_requests_total counts each
// caller's calls by tenant and code, refusals by scope and tenant
// included.
func TestCallerMetrics(t *testing.T) {
	const secretT = "secret-of-tenant-acme-0123456789"
	f := newFixture(t, Config{Keys: []Key{
		{Name: "admin", Secret: secretA},
		{Name: "acme", Secret: secretT, Scopes: ScopeReadSchema | ScopeWriteSchema, Tenant: "acme/"},
	}})
	if _, err := f.schema.WriteSchema(bearer(secretA), &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.schema.WriteSchema(bearer(secretT), &pb.WriteSchemaRequest{Schema: "definition acme/user {}"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := f.schema.ReadSchema(bearer(secretT), &pb.ReadSchemaRequest{Consistency: full()}); err != nil {
			t.Fatal(err)
		}
	}
	// No check scope; a definition outside the tenant.
	if _, err := f.perms.CheckPermission(bearer(secretT), &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("acme/doc", "1"), Permission: "view", Subject: sub("acme/user", "a", "")}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("check without the scope: %v", err)
	}
	if _, err := f.schema.WriteSchema(bearer(secretT), &pb.WriteSchemaRequest{Schema: "definition globex/user {}"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a schema outside the tenant: %v", err)
	}
	for _, c := range []struct {
		caller, tenant, code string
		want                 float64
	}{
		{"admin", "", "OK", 1},
		{"acme", "acme/", "OK", 3},
		{"acme", "acme/", "PermissionDenied", 2},
		{"acme", "", "OK", 0},
	} {
		if got := counterValue(t, f.srv.metrics.callers, c.caller, c.tenant, c.code); got != c.want {
			t.Errorf("caller_requests_total{caller=%q,tenant=%q,code=%q} = %v, want %v", c.caller, c.tenant, c.code, got, c.want)
		}
	}
}
