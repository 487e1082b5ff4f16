package authzed

import (
	"fmt"
	"slices"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// These tests drive a running server with authzed-go, the client most
// SpiceDB users call from Go, and compare each answer with Pemba's own
// API (the engine, or pemba.v1 over the same listener) on the same data.

func TestSchemaWriteRead(t *testing.T) {
	f := newFixture(t)
	_, err := f.az.ReadSchema(f.ctx, &v1.ReadSchemaRequest{})
	wantCode(t, err, codes.NotFound)

	zt := f.writeSchema(testSchema)
	got, err := f.az.ReadSchema(f.ctx, &v1.ReadSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	own, err := f.schema.ReadSchema(f.ctx, &pb.ReadSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSchemaText() != own.GetSchemaText() || got.GetSchemaText() == "" {
		t.Fatalf("authzed ReadSchema %q, pemba.v1 %q", got.GetSchemaText(), own.GetSchemaText())
	}
	if got.GetReadAt().GetToken() != zt.GetToken() || own.GetReadAt().GetToken() != zt.GetToken() {
		t.Fatalf("read at %v / %v, want the write's %v", got.GetReadAt(), own.GetReadAt(), zt)
	}

	// An unsafe change (removing a relation in use) is refused as in
	// SpiceDB, and the schema stays.
	f.touch("doc:1#banned@user:a")
	_, err = f.az.WriteSchema(f.ctx, &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc {\n  relation owner: user\n}"})
	wantCode(t, err, codes.FailedPrecondition)
	again, err := f.az.ReadSchema(f.ctx, &v1.ReadSchemaRequest{})
	if err != nil || again.GetSchemaText() != got.GetSchemaText() {
		t.Fatalf("schema changed by a refused write: %v", err)
	}
	_, err = f.az.WriteSchema(f.ctx, &v1.WriteSchemaRequest{Schema: "definition user {\n  relation x: nothing\n}"})
	wantCode(t, err, codes.InvalidArgument)
}

func TestWriteRelationshipsPreconditions(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	f.update(v1.RelationshipUpdate_OPERATION_CREATE, "doc:1#viewer@user:anne", "doc:1#owner@user:bob")

	// CREATE of an existing relationship: AlreadyExists; TOUCH: fine.
	_, err := f.az.WriteRelationships(f.ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
		{Operation: v1.RelationshipUpdate_OPERATION_CREATE, Relationship: mustRel(t, "doc:1#viewer@user:anne")},
	}})
	wantCode(t, err, codes.AlreadyExists)
	f.touch("doc:1#viewer@user:anne", "doc:2#viewer@group:eng#member")

	mustMatch := func(filter *v1.RelationshipFilter) *v1.Precondition {
		return &v1.Precondition{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: filter}
	}
	mustNot := func(filter *v1.RelationshipFilter) *v1.Precondition {
		return &v1.Precondition{Operation: v1.Precondition_OPERATION_MUST_NOT_MATCH, Filter: filter}
	}
	carl := &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: mustRel(t, "doc:1#viewer@user:carl")}
	for _, tc := range []struct {
		name string
		pre  *v1.Precondition
		want codes.Code
	}{
		{"must match, matches", mustMatch(&v1.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "1", OptionalRelation: "owner"}), codes.OK},
		{"must match, none", mustMatch(&v1.RelationshipFilter{ResourceType: "doc", OptionalRelation: "banned"}), codes.FailedPrecondition},
		{"must not match, none", mustNot(&v1.RelationshipFilter{ResourceType: "doc", OptionalRelation: "banned"}), codes.OK},
		{"must not match, matches subject filter", mustNot(&v1.RelationshipFilter{ResourceType: "doc",
			OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "group", OptionalRelation: &v1.SubjectFilter_RelationFilter{Relation: "member"}}}), codes.FailedPrecondition},
		{"must not match, plain subjects only", mustNot(&v1.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "2",
			OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "group", OptionalRelation: &v1.SubjectFilter_RelationFilter{}}}), codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.update(v1.RelationshipUpdate_OPERATION_DELETE, "doc:1#viewer@user:carl")
			before := f.engineRels(tuple.Filter{})
			_, err := f.az.WriteRelationships(f.ctx, &v1.WriteRelationshipsRequest{
				Updates: []*v1.RelationshipUpdate{carl}, OptionalPreconditions: []*v1.Precondition{tc.pre},
			})
			wantCode(t, err, tc.want)
			after := f.engineRels(tuple.Filter{})
			if has := slices.Contains(after, "doc:1#viewer@user:carl"); has != (tc.want == codes.OK) {
				t.Fatalf("carl written: %v, want %v", has, tc.want == codes.OK)
			}
			if tc.want != codes.OK && !slices.Equal(before, after) {
				t.Fatalf("a failed write changed the data:\n%v\n%v", before, after)
			}
		})
	}

	// DELETE removes; what authzed-go reads equals the engine's view.
	f.update(v1.RelationshipUpdate_OPERATION_DELETE, "doc:1#owner@user:bob")
	stream, err := f.az.ReadRelationships(f.ctx, &v1.ReadRelationshipsRequest{
		Consistency: fullyConsistent(), RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range recvAll(t, stream.Recv) {
		got = append(got, relText(t, m.GetRelationship()))
	}
	want := f.engineRels(tuple.Filter{ResourceType: "doc"})
	if !slices.Equal(got, want) || slices.Contains(got, "doc:1#owner@user:bob") {
		t.Fatalf("read %v, engine %v", got, want)
	}
}

func TestReadRelationshipsCursorsAndLimits(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	var rels []string
	for i := range 23 {
		rels = append(rels, fmt.Sprintf("doc:d%02d#viewer@user:u%d", i, i%5))
	}
	rels = append(rels, "folder:f#viewer@user:u1")
	zt := f.touch(rels...)
	filters := map[string]*v1.RelationshipFilter{
		"type":            {ResourceType: "doc"},
		"subject":         {ResourceType: "doc", OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: "u1"}},
		"subject no type": {OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: "u1"}},
		"relation":        {ResourceType: "folder", OptionalRelation: "viewer"},
		"none":            nil,
	}
	for name, filter := range filters {
		tf, err := filterOf(filter)
		if err != nil {
			t.Fatal(err)
		}
		want := f.engineRels(tf)
		for _, limit := range []uint32{0, 1, 4, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", name, limit), func(t *testing.T) {
				var got []string
				var cursor *v1.Cursor
				for calls := 0; ; calls++ {
					if calls > 30 {
						t.Fatal("paging does not end")
					}
					stream, err := f.az.ReadRelationships(f.ctx, &v1.ReadRelationshipsRequest{
						Consistency: exact(zt), RelationshipFilter: filter, OptionalLimit: limit, OptionalCursor: cursor,
					})
					if err != nil {
						t.Fatal(err)
					}
					page := recvAll(t, stream.Recv)
					for _, m := range page {
						if m.GetReadAt().GetToken() != zt.GetToken() {
							t.Fatalf("read at %v, want %v", m.GetReadAt(), zt)
						}
						got = append(got, relText(t, m.GetRelationship()))
					}
					if limit == 0 || len(page) < int(limit) {
						break
					}
					if len(page) > int(limit) {
						t.Fatalf("%d results over limit %d", len(page), limit)
					}
					cursor = page[len(page)-1].GetAfterResultCursor()
				}
				if !slices.Equal(got, want) {
					t.Fatalf("got %v\nwant %v", got, want)
				}
			})
		}
	}
}

// filterOf converts a wire filter as the server does.
func filterOf(f *v1.RelationshipFilter) (tuple.Filter, error) { return filter("f", f, false) }

func TestDeleteRelationships(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	var rels []string
	for i := range 7 {
		rels = append(rels, fmt.Sprintf("doc:d%d#viewer@user:u%d", i, i))
	}
	f.touch(append(rels, "doc:d0#owner@user:u0", "folder:f#viewer@user:u0")...)
	viewers := &v1.RelationshipFilter{ResourceType: "doc", OptionalRelation: "viewer"}

	// More matches than the limit, without partial deletions: refused,
	// nothing deleted.
	before := f.engineRels(tuple.Filter{})
	_, err := f.az.DeleteRelationships(f.ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: viewers, OptionalLimit: 3})
	wantCode(t, err, codes.FailedPrecondition)
	if after := f.engineRels(tuple.Filter{}); !slices.Equal(before, after) {
		t.Fatal("a refused delete deleted")
	}
	// With partial deletions: 3, 3, then the last one.
	var progress []v1.DeleteRelationshipsResponse_DeletionProgress
	var counts []uint64
	for range 3 {
		resp, err := f.az.DeleteRelationships(f.ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: viewers, OptionalLimit: 3, OptionalAllowPartialDeletions: true})
		if err != nil {
			t.Fatal(err)
		}
		progress = append(progress, resp.GetDeletionProgress())
		counts = append(counts, resp.GetRelationshipsDeletedCount())
	}
	P, C := v1.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL, v1.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE
	if !slices.Equal(progress, []v1.DeleteRelationshipsResponse_DeletionProgress{P, P, C}) || !slices.Equal(counts, []uint64{3, 3, 1}) {
		t.Fatalf("progress %v counts %v", progress, counts)
	}
	if got, want := f.engineRels(tuple.Filter{}), []string{"doc:d0#owner@user:u0", "folder:f#viewer@user:u0"}; !slices.Equal(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	// A precondition that fails deletes nothing.
	_, err = f.az.DeleteRelationships(f.ctx, &v1.DeleteRelationshipsRequest{
		RelationshipFilter:    &v1.RelationshipFilter{ResourceType: "folder"},
		OptionalPreconditions: []*v1.Precondition{{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: viewers}},
	})
	wantCode(t, err, codes.FailedPrecondition)
	// A subject filter.
	resp, err := f.az.DeleteRelationships(f.ctx, &v1.DeleteRelationshipsRequest{
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "folder", OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: "u0"}},
	})
	if err != nil || resp.GetRelationshipsDeletedCount() != 1 || resp.GetDeletionProgress() != C {
		t.Fatalf("delete by subject: %v %v", resp, err)
	}
	if got := f.engineRels(tuple.Filter{}); !slices.Equal(got, []string{"doc:d0#owner@user:u0"}) {
		t.Fatalf("left %v", got)
	}
}

func TestCheckEveryConsistencyCaveatsExpiration(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	exp := f.clock.Now().Add(time.Hour).Format(time.RFC3339)
	z1 := f.touch(
		"doc:1#viewer@user:anne",
		"doc:1#leveled@user:carl[min_level:{\"required\":3}]",
		"doc:1#temp@user:dana[expiration:"+exp+"]",
		"doc:1#viewer@group:eng#member",
		"group:eng#member@user:erin",
	)
	z2 := f.update(v1.RelationshipUpdate_OPERATION_DELETE, "doc:1#viewer@user:anne")

	has := v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	no := v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
	cond := v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	level := func(n float64) *structpb.Struct {
		s, _ := structpb.NewStruct(map[string]any{"level": n})
		return s
	}
	cases := []struct {
		subject string
		ctx     *structpb.Struct
		at      *v1.ZedToken
		want    map[string]v1.CheckPermissionResponse_Permissionship // by consistency
	}{
		// anne was deleted at z2: at exactly z1 she still views.
		{"user:anne", nil, z1, map[string]v1.CheckPermissionResponse_Permissionship{"at_exact_snapshot": has}},
		{"user:anne", nil, z2, map[string]v1.CheckPermissionResponse_Permissionship{"at_exact_snapshot": no, "fully_consistent": no, "at_least_as_fresh": no}},
		{"user:erin", nil, z2, map[string]v1.CheckPermissionResponse_Permissionship{"at_exact_snapshot": has, "fully_consistent": has, "at_least_as_fresh": has}},
		{"user:carl", nil, z2, map[string]v1.CheckPermissionResponse_Permissionship{"fully_consistent": cond}},
		{"user:carl", level(5), z2, map[string]v1.CheckPermissionResponse_Permissionship{"fully_consistent": has, "at_exact_snapshot": has}},
		{"user:carl", level(1), z2, map[string]v1.CheckPermissionResponse_Permissionship{"fully_consistent": no}},
		{"user:dana", nil, z2, map[string]v1.CheckPermissionResponse_Permissionship{"fully_consistent": has}},
	}
	check := func(name string, c *v1.Consistency, subject string, ctx *structpb.Struct) *v1.CheckPermissionResponse {
		t.Helper()
		resp, err := f.az.CheckPermission(f.ctx, &v1.CheckPermissionRequest{
			Consistency: c, Resource: obj("doc:1"), Permission: "view", Subject: subj(subject), Context: ctx,
		})
		if err != nil {
			t.Fatalf("%s %s: %v", name, subject, err)
		}
		// pemba.v1 on the same data, same consistency and token.
		own, err := f.perms.CheckPermission(f.ctx, &pb.CheckPermissionRequest{
			Consistency: pembaConsistency(name, tokenOf(c)), Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "1"},
			Permission: "view", Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: subj(subject).GetObject().GetObjectType(), ObjectId: subj(subject).GetObject().GetObjectId()}},
			Context: ctx,
		})
		if err != nil {
			t.Fatalf("pemba.v1 %s %s: %v", name, subject, err)
		}
		if int32(own.GetPermissionship()) != int32(resp.GetPermissionship()) || own.GetCheckedAt().GetToken() != resp.GetCheckedAt().GetToken() {
			t.Fatalf("%s %s: authzed %v at %v, pemba.v1 %v at %v", name, subject, resp.GetPermissionship(), resp.GetCheckedAt(), own.GetPermissionship(), own.GetCheckedAt())
		}
		return resp
	}
	for _, tc := range cases {
		for name, c := range consistencies(tc.at) {
			want, ok := tc.want[name]
			resp := check(name, c, tc.subject, tc.ctx)
			if ok && resp.GetPermissionship() != want {
				t.Errorf("%s %s ctx=%v: %v, want %v", name, tc.subject, tc.ctx, resp.GetPermissionship(), want)
			}
			if resp.GetCheckedAt().GetToken() == "" {
				t.Errorf("%s: no checked_at", name)
			}
			if name == "at_exact_snapshot" && resp.GetCheckedAt().GetToken() != tc.at.GetToken() {
				t.Errorf("at_exact_snapshot answered at %v, want %v", resp.GetCheckedAt(), tc.at)
			}
			if resp.GetPermissionship() == cond && !slices.Equal(resp.GetPartialCaveatInfo().GetMissingRequiredContext(), []string{"level"}) {
				t.Errorf("missing context %v, want [level]", resp.GetPartialCaveatInfo())
			}
		}
	}
	// Expiration follows the engine's clock.
	f.clock.Advance(2 * time.Hour)
	if got := check("fully_consistent", fullyConsistent(), "user:dana", nil).GetPermissionship(); got != no {
		t.Fatalf("dana after expiry: %v", got)
	}
}

// tokenOf returns the ZedToken of a token consistency, else nil.
func tokenOf(c *v1.Consistency) *v1.ZedToken {
	if z := c.GetAtLeastAsFresh(); z != nil {
		return z
	}
	return c.GetAtExactSnapshot()
}
