package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

const deprecatedSchema = `definition user {}
definition doc {
	@deprecated("use owner")
	relation admin: user
	relation owner: user
	permission view = admin + owner
}`

// TestDeprecationOverGRPC: with the warn policy, a check or a lookup
// stream naming a deprecated relation is answered with the notice in the
// pemba-warning header, and a request naming nothing deprecated has none;
// with the refuse policy, the same check fails with FAILED_PRECONDITION
// and reason DEPRECATED.
func TestDeprecationOverGRPC(t *testing.T) {
	ctx := context.Background()
	const notice = "relation doc#admin is deprecated: use owner"
	for _, policy := range []engine.DeprecationPolicy{engine.DeprecationWarn, engine.DeprecationRefuse} {
		clock := newFixtureClock()
		f := serveFixture(t, memstore.New(memstore.Options{Now: clock.Now}), clock, engine.Options{Deprecation: policy, Warn: Warn}, Config{})
		if _, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: deprecatedSchema}); err != nil {
			t.Fatal(err)
		}
		f.write("doc:1#owner@user:anne")
		for _, tc := range []struct {
			perm string
			want []string
		}{{"admin", []string{notice}}, {"view", nil}} {
			var header metadata.MD
			_, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: tc.perm, Subject: sub("user", "anne", "")}, grpc.Header(&header))
			switch {
			case policy == engine.DeprecationRefuse && tc.want != nil:
				wantCode(t, err, codes.FailedPrecondition, ReasonDeprecated)
			case err != nil:
				t.Fatalf("check %s: %v", tc.perm, err)
			case !slices.Equal(header.Get(WarningHeader), tc.want):
				t.Errorf("check %s: %s header %q, want %q", tc.perm, WarningHeader, header.Get(WarningHeader), tc.want)
			}
		}
		if policy == engine.DeprecationWarn {
			s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "doc", Permission: "admin", Subject: sub("user", "anne", "")})
			if err != nil {
				t.Fatal(err)
			}
			header, err := s.Header()
			if err != nil {
				t.Fatal(err)
			}
			if got := header.Get(WarningHeader); !slices.Equal(got, []string{notice}) {
				t.Errorf("lookup stream: header %q, want %q", got, notice)
			}
		}
	}
	Warn(ctx, "outside a call: ignored") // must not panic
}

// TestDeprecationOverHTTP: an HTTP/JSON call naming a deprecated relation
// is answered with the notice in the Pemba-Warning header, unary or
// streamed; one naming nothing deprecated has none, and no other gRPC
// metadata leaks into the HTTP headers.
func TestDeprecationOverHTTP(t *testing.T) {
	h := startHTTP(t, Config{}, RunConfig{})
	if r := h.post(t, "/v1/schema/write", schemaJSON(deprecatedSchema)); r.code != http.StatusOK {
		t.Fatalf("WriteSchema = %d %s", r.code, r.body)
	}
	const notice = "relation doc#admin is deprecated: use owner"
	if r := h.post(t, "/v1/relationships/write", writeJSON(t, "OPERATION_TOUCH", "doc:1#owner@user:anne")); r.code != http.StatusOK || r.header.Get(HTTPWarningHeader) != "" {
		t.Fatalf("WriteRelationships = %d %s, warning %q", r.code, r.body, r.header.Get(HTTPWarningHeader))
	}
	for _, tc := range []struct {
		path, body string
		want       []string
	}{
		{"/v1/permissions/check", `{"consistency":{"fullyConsistent":true},"resource":{"objectType":"doc","objectId":"1"},"permission":"admin","subject":{"object":{"objectType":"user","objectId":"anne"}}}`, []string{notice}},
		{"/v1/permissions/check", `{"consistency":{"fullyConsistent":true},"resource":{"objectType":"doc","objectId":"1"},"permission":"view","subject":{"object":{"objectType":"user","objectId":"anne"}}}`, nil},
		{"/v1/permissions/resources", `{"consistency":{"fullyConsistent":true},"resourceObjectType":"doc","permission":"admin","subject":{"object":{"objectType":"user","objectId":"anne"}}}`, []string{notice}},
		{"/v1/relationships/write", writeJSON(t, "OPERATION_TOUCH", "doc:2#admin@user:bob"), []string{notice}},
	} {
		r := h.post(t, tc.path, tc.body)
		if r.code != http.StatusOK {
			t.Fatalf("POST %s = %d %s", tc.path, r.code, r.body)
		}
		if got := r.header.Values(HTTPWarningHeader); !slices.Equal(got, tc.want) {
			t.Errorf("POST %s: %s %q, want %q", tc.path, HTTPWarningHeader, got, tc.want)
		}
		for k := range r.header {
			if strings.HasPrefix(strings.ToLower(k), "grpc-") {
				t.Errorf("POST %s: gRPC header %s reached the HTTP caller", tc.path, k)
			}
		}
	}
}
