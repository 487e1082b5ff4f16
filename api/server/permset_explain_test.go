package server

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestCheckPermissionSetExplain: a set with explain carries in every cell
// the explanation CheckPermission with explain gives for that cell at
// the set's checked_at (context and contextual relationships included);
// without explain no cell has one; a cell past the depth limit keeps its
// error and carries the explanation of the paths that went too deep.
func TestCheckPermissionSetExplain(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	f.writeSchema()
	rels := []string{"doc:d1#viewer@group:eng#member", "group:eng#member@user:ann", "group:eng#member@user:bob", "doc:d1#banned@user:bob",
		`doc:d2#leveled@user:ann[min_level:{"required":3}]`, "folder:f0#viewer@user:ann"}
	for i := 1; i <= 60; i++ {
		rels = append(rels, fmt.Sprintf("folder:f%d#parent@folder:f%d", i, i-1))
	}
	cons := fresh(f.write(rels...))
	contextual := []*pb.Relationship{mustRel(t, "doc:d2#owner@user:bob")}
	for _, tc := range []struct {
		name      string
		resources []*pb.ObjectReference
		who       string
		context   map[string]any
		failed    int // cells past the depth limit
	}{
		{"docs", []*pb.ObjectReference{obj("doc", "d1"), obj("doc", "d2")}, "ann", nil, 0},
		{"docs with context", []*pb.ObjectReference{obj("doc", "d1"), obj("doc", "d2")}, "ann", map[string]any{"level": 1}, 0},
		{"an exclusion and a contextual owner", []*pb.ObjectReference{obj("doc", "d1"), obj("doc", "d2")}, "bob", nil, 0},
		{"folders", []*pb.ObjectReference{obj("folder", "f1"), obj("folder", "f60")}, "ann", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &pb.CheckPermissionSetRequest{Consistency: cons, Resources: tc.resources, IncludeRelations: true, Subject: sub("user", tc.who, ""),
				ContextualRelationships: contextual}
			if tc.context != nil {
				req.Context = mustStruct(t, tc.context)
			}
			plain, err := f.perms.CheckPermissionSet(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range plain.GetRows() {
				for _, c := range row.GetCells() {
					if c.GetExplanation() != nil {
						t.Fatalf("%s#%s: an explanation without explain", row.GetResource().GetObjectId(), c.GetPermission())
					}
				}
			}
			req.Explain = true
			set, err := f.perms.CheckPermissionSet(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			at := &pb.Consistency{Requirement: &pb.Consistency_AtExactSnapshot{AtExactSnapshot: set.GetCheckedAt()}}
			explained, failed := 0, 0
			for _, row := range set.GetRows() {
				for _, c := range row.GetCells() {
					where := row.GetResource().GetObjectId() + "#" + c.GetPermission()
					one, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: at, Resource: row.GetResource(), Permission: c.GetPermission(),
						Subject: req.GetSubject(), Context: req.GetContext(), ContextualRelationships: contextual, Explain: true})
					if e := c.GetError(); e != nil {
						// The depth limit: the error and the paths.
						if status.Code(err) != codes.ResourceExhausted || c.GetExplanation().GetError() == "" ||
							findReason(c.GetExplanation().GetRoot(), pb.ExplainNode_REASON_DEPTH_LIMIT) == nil ||
							!proto.Equal(c.GetExplanation().GetRoot(), explanationOf(t, err).GetRoot()) {
							t.Fatalf("%s: cell error %v with explanation %v; CheckPermission says %v", where, e, c.GetExplanation(), err)
						}
						explained++
						failed++
						continue
					}
					if err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					if c.GetAnswer().GetPermissionship() != one.GetPermissionship() || !proto.Equal(c.GetExplanation(), one.GetExplanation()) || c.GetExplanation() == nil {
						t.Fatalf("%s: the set explains %v, CheckPermission %v", where, c.GetExplanation(), one.GetExplanation())
					}
					if c.GetAnswer().GetPermissionship() == pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION && len(c.GetExplanation().GetWitness()) == 0 {
						t.Fatalf("%s: a grant without its witness", where)
					}
					explained++
				}
			}
			if explained != len(set.GetRows())*len(set.GetPermissions()) || explained == 0 || failed != tc.failed {
				t.Fatalf("explained %d cells (%d past the depth limit, want %d) of %d rows and %d columns", explained, failed, tc.failed, len(set.GetRows()), len(set.GetPermissions()))
			}
		})
	}
}

// explanationOf returns the explanation a failed check carries as a
// status detail.
func explanationOf(t *testing.T, err error) *pb.CheckExplanation {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if x, ok := d.(*pb.CheckExplanation); ok {
			return x
		}
	}
	t.Fatalf("no explanation in the status of %v", err)
	return nil
}

// TestCheckPermissionSetExplainTenant: explain changes nothing in what a
// tenant may ask: its own types are answered and explained, another
// tenant's resource, subject or contextual relationship is refused.
func TestCheckPermissionSetExplainTenant(t *testing.T) {
	const secretT = "secret-of-tenant-acme-0123456789"
	f := newFixture(t, Config{Keys: []Key{
		{Name: "admin", Secret: secretA},
		{Name: "acme", Secret: secretT, Scopes: ScopeCheck, Tenant: "acme/"},
	}})
	schema := "definition acme/user {}\ndefinition acme/doc {\n  relation viewer: acme/user\n  permission view = viewer\n}\n" +
		"definition globex/user {}\ndefinition globex/doc {\n  relation viewer: globex/user\n  permission view = viewer\n}\n"
	if _, err := f.schema.WriteSchema(bearer(secretA), &pb.WriteSchemaRequest{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	w, err := f.perms.WriteRelationships(bearer(secretA), &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{
		{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "acme/doc:d#viewer@acme/user:a")},
		{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "globex/doc:d#viewer@globex/user:g")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(res *pb.ObjectReference, who *pb.SubjectReference, contextual ...string) (*pb.CheckPermissionSetResponse, error) {
		req := &pb.CheckPermissionSetRequest{Consistency: fresh(w.GetWrittenAt()), Resources: []*pb.ObjectReference{res}, Subject: who, Explain: true}
		for _, r := range contextual {
			req.ContextualRelationships = append(req.ContextualRelationships, mustRel(t, r))
		}
		return f.perms.CheckPermissionSet(bearer(secretT), req)
	}
	got, err := ask(obj("acme/doc", "d"), sub("acme/user", "a", ""))
	if err != nil {
		t.Fatal(err)
	}
	if c := got.GetRows()[0].GetCells()[0]; c.GetAnswer().GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION || len(c.GetExplanation().GetWitness()) != 1 {
		t.Fatalf("own type: %v", c)
	}
	for _, tc := range []struct {
		name       string
		res        *pb.ObjectReference
		who        *pb.SubjectReference
		contextual []string
	}{
		{"another tenant's resource", obj("globex/doc", "d"), sub("acme/user", "a", ""), nil},
		{"another tenant's subject", obj("acme/doc", "d"), sub("globex/user", "g", ""), nil},
		{"another tenant's contextual relationship", obj("acme/doc", "d"), sub("acme/user", "a", ""), []string{"globex/doc:d#viewer@globex/user:a"}},
	} {
		if _, err := ask(tc.res, tc.who, tc.contextual...); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PERMISSION_DENIED", tc.name, err)
		}
	}
}

// TestHTTPCheckSetExplain: POST /v1/permissions/checkset takes "explain"
// and answers each cell's explanation as POST /v1/permissions/check with
// "explain" does.
func TestHTTPCheckSetExplain(t *testing.T) {
	h := startHTTP(t, Config{Keys: []Key{{Name: "alice", Secret: httpTestKey}}}, RunConfig{})
	const fc = `"consistency":{"fullyConsistent":true}`
	post := func(path, body string) map[string]any {
		t.Helper()
		r := h.post(t, path, body)
		if r.code != 200 {
			t.Fatalf("POST %s = %d %s", path, r.code, r.body)
		}
		return r.object(t)
	}
	post("/v1/schema/write", schemaJSON(httpSchema))
	post("/v1/relationships/write", writeJSON(t, "OPERATION_CREATE", "doc:1#viewer@group:eng#member", "group:eng#member@user:tom"))
	tom := `"subject":{"object":{"objectType":"user","objectId":"tom"}}`
	set := post("/v1/permissions/checkset", `{`+fc+`,"resources":[{"objectType":"doc","objectId":"1"}],"includeRelations":true,`+tom+`,"explain":true}`)
	if got := fmt.Sprint(field(set, "permissions")); got != "[owner viewer view]" {
		t.Fatalf("columns %s", got)
	}
	for j, perm := range []string{"owner", "viewer", "view"} {
		cell := field(set, fmt.Sprintf("rows.0.cells.%d", j))
		one := post("/v1/permissions/check", `{`+fc+`,"resource":{"objectType":"doc","objectId":"1"},"permission":"`+perm+`",`+tom+`,"explain":true}`)
		x, want := field(cell, "explanation"), field(one, "explanation")
		if x == nil || !reflect.DeepEqual(x, want) {
			a, _ := json.Marshal(x)
			b, _ := json.Marshal(want)
			t.Errorf("%s: the set explains %s, check %s", perm, a, b)
		}
	}
	if w := fmt.Sprint(field(set, "rows.0.cells.2.explanation.witness.1.subject.object.objectId")); w != "tom" {
		t.Errorf("view's witness does not end with tom: %v", field(set, "rows.0.cells.2.explanation.witness"))
	}
	plain := post("/v1/permissions/checkset", `{`+fc+`,"resources":[{"objectType":"doc","objectId":"1"}],`+tom+`}`)
	if x := field(plain, "rows.0.cells.0.explanation"); x != nil {
		t.Errorf("an explanation without explain: %v", x)
	}
}
