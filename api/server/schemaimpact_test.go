package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestWriteSchemaDryRun: a dry run reports the changes and the flips,
// writes nothing, and fails as the write would.
func TestWriteSchemaDryRun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	const v1 = `definition user {}
definition doc {
	relation viewer: user
	relation editor: user
	permission view = viewer + editor
}`
	if _, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: v1}); err != nil {
		t.Fatal(err)
	}
	f.write("doc:1#editor@user:anne", "doc:2#viewer@user:bob")
	v2 := strings.Replace(v1, "permission view = viewer + editor", "permission view = viewer", 1)
	resp, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: v2, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	im := resp.GetImpact()
	if resp.GetWrittenAt() != nil || len(resp.GetChanges()) != 1 || im.GetEvaluatedAt().GetToken() == "" {
		t.Fatalf("response %v", resp)
	}
	if len(im.GetPermissions()) != 1 || im.GetPermissions()[0].GetRevoked() != 1 || im.GetPermissions()[0].GetResources() != 2 {
		t.Errorf("permissions %v", im.GetPermissions())
	}
	if s := im.GetSamples(); len(s) != 1 || s[0].GetResource().GetObjectId() != "1" || s[0].GetSubject().GetObject().GetObjectId() != "anne" ||
		s[0].GetBefore() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION || s[0].GetAfter() != pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION {
		t.Errorf("samples %v", s)
	}
	read, err := f.schema.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: full()})
	if err != nil || read.GetSchemaText() != v1 {
		t.Errorf("after a dry run the schema is %q (%v)", read.GetSchemaText(), err)
	}
	_, err = f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition user {}", DryRun: true})
	wantCode(t, err, codes.FailedPrecondition, ReasonUnsafeSchemaChange)
	_, err = f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition doc { relation v: nope }", DryRun: true})
	wantCode(t, err, codes.InvalidArgument, ReasonInvalidSchema)
}

// TestHTTPWriteSchemaDryRun: the HTTP route takes dryRun and answers
// with the impact in JSON, writing nothing.
func TestHTTPWriteSchemaDryRun(t *testing.T) {
	h := startHTTP(t, Config{}, RunConfig{})
	if r := h.post(t, "/v1/schema/write", schemaJSON(httpSchema)); r.code != http.StatusOK {
		t.Fatalf("WriteSchema = %d %s", r.code, r.body)
	}
	if r := h.post(t, "/v1/relationships/write", writeJSON(t, "OPERATION_TOUCH", "doc:1#owner@user:anne", "doc:2#viewer@user:bob")); r.code != http.StatusOK {
		t.Fatalf("WriteRelationships = %d %s", r.code, r.body)
	}
	v2 := strings.Replace(httpSchema, "permission view = viewer + owner", "permission view = viewer", 1)
	body, err := json.Marshal(map[string]any{"schema": v2, "dryRun": true})
	if err != nil {
		t.Fatal(err)
	}
	r := h.post(t, "/v1/schema/write", string(body))
	if r.code != http.StatusOK {
		t.Fatalf("dry run = %d %s", r.code, r.body)
	}
	m := r.object(t)
	for path, want := range map[string]any{
		"writtenAt":      nil,
		"changes.0.kind": "KIND_PERMISSION_CHANGED",
		"impact.permissions.0.resourceObjectType":  "doc",
		"impact.permissions.0.permission":          "view",
		"impact.permissions.0.revoked":             "1",
		"impact.permissions.0.resources":           "2",
		"impact.samples.0.resource.objectId":       "1",
		"impact.samples.0.subject.object.objectId": "anne",
		"impact.samples.0.before":                  "PERMISSIONSHIP_HAS_PERMISSION",
		"impact.samples.0.after":                   "PERMISSIONSHIP_NO_PERMISSION",
		"impact.resourcesEvaluated":                "2",
	} {
		if got := field(m, path); got != want {
			t.Errorf("%s = %v, want %v in %s", path, got, want, r.body)
		}
	}
	if tok, _ := field(m, "impact.evaluatedAt.token").(string); tok == "" {
		t.Errorf("no impact.evaluatedAt in %s", r.body)
	}
	read := h.post(t, "/v1/schema/read", `{"consistency":{"fullyConsistent":true}}`)
	if got := field(read.object(t), "schemaText"); got != httpSchema {
		t.Errorf("after the dry run the schema is %q", got)
	}
	body, _ = json.Marshal(map[string]any{"schema": "definition user {}", "dryRun": true})
	if r := h.post(t, "/v1/schema/write", string(body)); r.code != http.StatusBadRequest || field(r.object(t), "details.0.reason") != ReasonUnsafeSchemaChange {
		t.Errorf("unsafe dry run = %d %s, want 400 %s", r.code, r.body, ReasonUnsafeSchemaChange)
	}
}
