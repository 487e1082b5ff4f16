package authzed

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func TestCheckBulkPermissions(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	zt := f.touch("doc:1#viewer@user:anne", "doc:1#leveled@user:carl[min_level:{\"required\":3}]", "doc:2#owner@user:bob")
	ctx := func(level float64) *structpb.Struct {
		s, _ := structpb.NewStruct(map[string]any{"level": level})
		return s
	}
	item := func(res, perm, sub string, c *structpb.Struct) *v1.CheckBulkPermissionsRequestItem {
		return &v1.CheckBulkPermissionsRequestItem{Resource: obj(res), Permission: perm, Subject: subj(sub), Context: c}
	}
	items := []*v1.CheckBulkPermissionsRequestItem{
		item("doc:1", "view", "user:anne", nil),
		item("doc:1", "view", "user:bob", nil),
		item("doc:2", "edit", "user:bob", nil),
		item("doc:1", "view", "user:carl", nil),
		item("doc:1", "view", "user:carl", ctx(4)),
		item("doc:1", "view", "user:carl", ctx(2)),
		item("doc:1", "nosuch", "user:anne", nil), // unknown permission: an item error
		{Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "bad id"}, Permission: "view", Subject: subj("user:anne")}, // malformed
	}
	resp, err := f.az.CheckBulkPermissions(f.ctx, &v1.CheckBulkPermissionsRequest{Consistency: exact(zt), Items: items})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCheckedAt().GetToken() != zt.GetToken() || len(resp.GetPairs()) != len(items) {
		t.Fatalf("checked at %v, %d pairs", resp.GetCheckedAt(), len(resp.GetPairs()))
	}
	for i, p := range resp.GetPairs() {
		if p.GetRequest().GetResource().GetObjectId() != items[i].GetResource().GetObjectId() {
			t.Fatalf("pair %d answers another request", i)
		}
		// The engine's answer for the same item, alone.
		in, ierr := checkInput("", items[i].GetResource(), items[i].GetPermission(), items[i].GetSubject())
		var want engine.CheckResponse
		if ierr == nil {
			c, _ := caveatContext("", items[i].GetContext())
			want, ierr = f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(zt.GetToken()), CheckRequest: in, Context: c})
		}
		if ierr != nil {
			// SpiceDB's codes: an unknown permission is a failed
			// precondition, a malformed id an invalid argument.
			want := map[int]codes.Code{6: codes.FailedPrecondition, 7: codes.InvalidArgument}[i]
			if p.GetError() == nil || codes.Code(p.GetError().GetCode()) != want {
				t.Errorf("item %d: %v, want the error %v as %v", i, p.GetResponse(), ierr, want)
			}
			continue
		}
		if got := p.GetItem().GetPermissionship(); got != toCheckPermissionship(want.Permissionship) {
			t.Errorf("item %d: %v, engine %v", i, got, want.Permissionship)
		}
	}
	var kinds []string
	for _, p := range resp.GetPairs() {
		if p.GetError() != nil {
			kinds = append(kinds, "error")
			continue
		}
		kinds = append(kinds, strings.TrimPrefix(p.GetItem().GetPermissionship().String(), "PERMISSIONSHIP_"))
	}
	want := []string{"HAS_PERMISSION", "NO_PERMISSION", "HAS_PERMISSION", "CONDITIONAL_PERMISSION", "HAS_PERMISSION", "NO_PERMISSION", "error", "error"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("answers %v, want %v", kinds, want)
	}
}

func TestExpandPermissionTree(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	zt := f.touch("doc:1#viewer@user:anne", "doc:1#viewer@group:eng#member", "group:eng#member@user:erin", "doc:1#owner@user:bob", "doc:1#banned@user:mal")
	resp, err := f.az.ExpandPermissionTree(f.ctx, &v1.ExpandPermissionTreeRequest{Consistency: exact(zt), Resource: obj("doc:1"), Permission: "view"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetExpandedAt().GetToken() != zt.GetToken() {
		t.Fatalf("expanded at %v", resp.GetExpandedAt())
	}
	tree, _, err := f.eng.Expand(f.ctx, engine.ExpandRequest{Consistency: engine.AtExactSnapshot(zt.GetToken()), ExpandRequest: engine.ExpandQuery{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := renderTree(resp.GetTreeRoot()), renderEngineTree(tree); got != want {
		t.Fatalf("authzed tree\n%s\nengine tree\n%s", got, want)
	}
	// The root is the exclusion of the banned from the union.
	if op := resp.GetTreeRoot().GetIntermediate().GetOperation(); op != v1.AlgebraicSubjectSet_OPERATION_EXCLUSION {
		t.Fatalf("root %v, want exclusion", op)
	}
	if !strings.Contains(renderTree(resp.GetTreeRoot()), "user:erin") {
		t.Fatalf("erin (through group:eng#member) missing:\n%s", renderTree(resp.GetTreeRoot()))
	}
}

// renderTree renders an authzed tree as text for comparison.
func renderTree(t *v1.PermissionRelationshipTree) string {
	var b strings.Builder
	var walk func(t *v1.PermissionRelationshipTree, depth int)
	walk = func(t *v1.PermissionRelationshipTree, depth int) {
		fmt.Fprintf(&b, "%s%s:%s#%s", strings.Repeat("  ", depth), t.GetExpandedObject().GetObjectType(), t.GetExpandedObject().GetObjectId(), t.GetExpandedRelation())
		if l := t.GetLeaf(); l != nil {
			var subs []string
			for _, s := range l.GetSubjects() {
				sub := s.GetObject().GetObjectType() + ":" + s.GetObject().GetObjectId()
				if s.GetOptionalRelation() != "" {
					sub += "#" + s.GetOptionalRelation()
				}
				subs = append(subs, sub)
			}
			fmt.Fprintf(&b, " leaf %v\n", subs)
			return
		}
		fmt.Fprintf(&b, " %v\n", t.GetIntermediate().GetOperation())
		for _, c := range t.GetIntermediate().GetChildren() {
			walk(c, depth+1)
		}
	}
	walk(t, 0)
	return b.String()
}

// renderEngineTree renders the engine's tree the way renderTree renders
// the wire's: a leaf with expanded subject sets is the union of itself
// and them.
func renderEngineTree(t *engine.Tree) string {
	var b strings.Builder
	ops := map[engine.TreeKind]string{engine.Union: "OPERATION_UNION", engine.Intersection: "OPERATION_INTERSECTION", engine.Exclusion: "OPERATION_EXCLUSION"}
	var walk func(t *engine.Tree, depth int)
	walk = func(t *engine.Tree, depth int) {
		head := fmt.Sprintf("%s%s#%s", strings.Repeat("  ", depth), t.Object, t.Relation)
		var subs []string
		for _, s := range t.Subjects {
			subs = append(subs, s.Subject.String())
		}
		switch {
		case t.Kind == engine.Leaf && len(t.Children) == 0:
			fmt.Fprintf(&b, "%s leaf %v\n", head, subs)
		case t.Kind == engine.Leaf:
			fmt.Fprintf(&b, "%s OPERATION_UNION\n", head)
			fmt.Fprintf(&b, "%s%s#%s leaf %v\n", strings.Repeat("  ", depth+1), t.Object, t.Relation, subs)
			for _, c := range t.Children {
				walk(c, depth+1)
			}
		default:
			fmt.Fprintf(&b, "%s %s\n", head, ops[t.Kind])
			for _, c := range t.Children {
				walk(c, depth+1)
			}
		}
	}
	walk(t, 0)
	return b.String()
}

func TestLookupsWithCursorsAndLimits(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	var rels []string
	for i := range 17 {
		rels = append(rels, fmt.Sprintf("doc:d%02d#viewer@user:u%02d", i, i))
		rels = append(rels, fmt.Sprintf("doc:d%02d#viewer@group:eng#member", i))
	}
	for i := range 9 {
		rels = append(rels, fmt.Sprintf("group:eng#member@user:m%d", i))
	}
	rels = append(rels, "doc:d03#viewer@user:*", "doc:d03#banned@user:m1", "doc:d05#leveled@user:lev[min_level:{\"required\":3}]")
	zt := f.touch(rels...)
	at := engine.AtExactSnapshot(zt.GetToken())

	// Resources of m4 (through the group): every doc.
	wantRes := f.engineResources(at, "m4")
	if len(wantRes) != 17 {
		t.Fatalf("engine found %d resources", len(wantRes))
	}
	for _, limit := range []uint32{0, 1, 5, 17, 100} {
		t.Run(fmt.Sprintf("resources/limit=%d", limit), func(t *testing.T) {
			var got []string
			var cursor *v1.Cursor
			for calls := 0; ; calls++ {
				if calls > 40 {
					t.Fatal("paging does not end")
				}
				stream, err := f.az.LookupResources(f.ctx, &v1.LookupResourcesRequest{
					Consistency: exact(zt), ResourceObjectType: "doc", Permission: "view", Subject: subj("user:m4"),
					OptionalLimit: limit, OptionalCursor: cursor,
				})
				if err != nil {
					t.Fatal(err)
				}
				page := recvAll(t, stream.Recv)
				if limit > 0 && len(page) > int(limit) {
					t.Fatalf("%d over limit %d", len(page), limit)
				}
				for _, m := range page {
					if m.GetLookedUpAt().GetToken() != zt.GetToken() || m.GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
						t.Fatalf("result %v", m)
					}
					got = append(got, m.GetResourceObjectId())
				}
				if limit == 0 || len(page) < int(limit) {
					break
				}
				cursor = page[len(page)-1].GetAfterResultCursor()
			}
			if !slices.Equal(sorted(got), wantRes) {
				t.Fatalf("got %v\nwant %v", got, wantRes)
			}
		})
	}
	// A caveated resource is conditional without the context.
	stream, err := f.az.LookupResources(f.ctx, &v1.LookupResourcesRequest{Consistency: exact(zt), ResourceObjectType: "doc", Permission: "view", Subject: subj("user:lev")})
	if err != nil {
		t.Fatal(err)
	}
	// (d03 through the wildcard, d05 conditionally.)
	if res := recvAll(t, stream.Recv); len(res) != 2 || res[0].GetResourceObjectId() != "d03" || res[1].GetResourceObjectId() != "d05" ||
		res[0].GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION ||
		res[1].GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION ||
		!slices.Equal(res[1].GetPartialCaveatInfo().GetMissingRequiredContext(), []string{"level"}) {
		t.Fatalf("conditional lookup: %v", res)
	}

	// Subjects of d03: the wildcard minus m1, u03 and the members.
	wantSubs := f.engineSubjects(at, "d03")
	for _, wildcards := range []v1.LookupSubjectsRequest_WildcardOption{v1.LookupSubjectsRequest_WILDCARD_OPTION_INCLUDE_WILDCARDS, v1.LookupSubjectsRequest_WILDCARD_OPTION_EXCLUDE_WILDCARDS} {
		want := wantSubs
		if wildcards == v1.LookupSubjectsRequest_WILDCARD_OPTION_EXCLUDE_WILDCARDS {
			want = slices.DeleteFunc(slices.Clone(want), func(s string) bool { return strings.HasPrefix(s, "*") })
		}
		for _, limit := range []uint32{0, 1, 4, 100} {
			t.Run(fmt.Sprintf("subjects/%v/limit=%d", wildcards, limit), func(t *testing.T) {
				var got []string
				var cursor *v1.Cursor
				for calls := 0; ; calls++ {
					if calls > 40 {
						t.Fatal("paging does not end")
					}
					stream, err := f.az.LookupSubjects(f.ctx, &v1.LookupSubjectsRequest{
						Consistency: exact(zt), Resource: obj("doc:d03"), Permission: "view", SubjectObjectType: "user",
						OptionalConcreteLimit: limit, OptionalCursor: cursor, WildcardOption: wildcards,
					})
					if err != nil {
						t.Fatal(err)
					}
					page := recvAll(t, stream.Recv)
					for _, m := range page {
						s := m.GetSubject().GetSubjectObjectId()
						//lint:ignore SA1019 older clients read the deprecated field: it must agree
						if old := m.GetSubjectObjectId(); s != old {
							t.Fatalf("deprecated subject_object_id %q, subject %q", old, s)
						}
						for _, ex := range m.GetExcludedSubjects() {
							s += " -" + ex.GetSubjectObjectId()
						}
						got = append(got, s)
					}
					if limit == 0 || len(page) < int(limit) {
						break
					}
					cursor = page[len(page)-1].GetAfterResultCursor()
				}
				if !slices.Equal(sorted(got), want) {
					t.Fatalf("got %v\nwant %v", got, want)
				}
			})
		}
	}
}

func (f *fixture) engineResources(c engine.Consistency, user string) []string {
	f.t.Helper()
	seq, _, err := f.eng.LookupResources(f.ctx, engine.LookupResourcesRequest{Consistency: c, LookupResourcesRequest: engine.LookupResourcesQuery{
		ResourceType: "doc", Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: user},
	}})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for r, err := range seq {
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, r.ResourceID)
	}
	return sorted(out)
}

func (f *fixture) engineSubjects(c engine.Consistency, doc string) []string {
	f.t.Helper()
	seq, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{Consistency: c, LookupSubjectsRequest: engine.LookupSubjectsQuery{
		Resource: tuple.ObjectRef{Type: "doc", ID: doc}, Permission: "view", SubjectType: "user",
	}})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for r, err := range seq {
		if err != nil {
			f.t.Fatal(err)
		}
		s := r.SubjectID
		for _, ex := range r.ExcludedIDs {
			s += " -" + ex
		}
		out = append(out, s)
	}
	return sorted(out)
}

func TestImportExport(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	stream, err := f.az.ImportBulkRelationships(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	const n = 2345
	for start := 0; start < n; start += 500 {
		msg := &v1.ImportBulkRelationshipsRequest{}
		for i := start; i < min(start+500, n); i++ {
			s := fmt.Sprintf("doc:d%05d#viewer@user:u%d", i, i%13)
			if i%100 == 0 {
				s = fmt.Sprintf("doc:d%05d#leveled@user:u%d[min_level:{\"required\":%d}]", i, i%13, i%7)
			}
			want = append(want, s)
			msg.Relationships = append(msg.Relationships, mustRel(t, s))
		}
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetNumLoaded() != n {
		t.Fatalf("loaded %d, want %d", resp.GetNumLoaded(), n)
	}
	stored := f.engineRels(tuple.Filter{})
	if !slices.Equal(stored, sorted(want)) {
		t.Fatalf("stored %d relationships, want %d", len(stored), len(want))
	}

	// Export in batches of 700, resuming from a cursor halfway.
	export := func(cursor *v1.Cursor) ([]string, []*v1.Cursor) {
		es, err := f.az.ExportBulkRelationships(f.ctx, &v1.ExportBulkRelationshipsRequest{Consistency: fullyConsistent(), OptionalLimit: 700, OptionalCursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var cursors []*v1.Cursor
		for _, m := range recvAll(t, es.Recv) {
			if len(m.GetRelationships()) > 700 {
				t.Fatalf("batch of %d", len(m.GetRelationships()))
			}
			for _, r := range m.GetRelationships() {
				got = append(got, relText(t, r))
			}
			cursors = append(cursors, m.GetAfterResultCursor())
		}
		return got, cursors
	}
	got, cursors := export(nil)
	if !slices.Equal(got, stored) || len(cursors) != 4 {
		t.Fatalf("exported %d in %d batches, want %d in 4", len(got), len(cursors), len(stored))
	}
	rest, _ := export(cursors[1])
	if !slices.Equal(rest, stored[1400:]) {
		t.Fatalf("resumed export: %d relationships, want %d", len(rest), len(stored)-1400)
	}

	// Importing into another server round-trips (the zed backup restore path).
	g := newFixture(t)
	g.writeSchema(testSchema)
	in, err := g.az.ImportBulkRelationships(g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := &v1.ImportBulkRelationshipsRequest{}
	for _, s := range got {
		msg.Relationships = append(msg.Relationships, mustRel(t, s))
		if len(msg.Relationships) == 1000 {
			if err := in.Send(msg); err != nil {
				t.Fatal(err)
			}
			msg = &v1.ImportBulkRelationshipsRequest{}
		}
	}
	if err := in.Send(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := in.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	if copied := g.engineRels(tuple.Filter{}); !slices.Equal(copied, stored) {
		t.Fatalf("copy has %d relationships, want %d", len(copied), len(stored))
	}
}

func TestWatchResumesFromZedToken(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	z1 := f.touch("doc:1#viewer@user:a")
	z2 := f.touch("doc:2#viewer@user:b", "folder:f#viewer@user:b")
	// A write through pemba.v1: its zookie is a ZedToken too.
	own, err := f.perms.WriteRelationships(f.ctx, pembaTouch(t, "doc:3#owner@user:c"))
	if err != nil {
		t.Fatal(err)
	}
	z3 := &v1.ZedToken{Token: own.GetWrittenAt().GetToken()}
	z4 := f.update(v1.RelationshipUpdate_OPERATION_DELETE, "doc:1#viewer@user:a")

	type event struct {
		token   string
		updates []string
	}
	watch := func(req *v1.WatchRequest, n int) []event {
		t.Helper()
		ctx, cancel := context.WithCancel(f.ctx)
		defer cancel()
		stream, err := f.az.Watch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var out []event
		for len(out) < n {
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			ev := event{token: m.GetChangesThrough().GetToken()}
			for _, u := range m.GetUpdates() {
				ev.updates = append(ev.updates, strings.TrimPrefix(u.GetOperation().String(), "OPERATION_")+" "+relText(t, u.GetRelationship()))
			}
			out = append(out, ev)
		}
		return out
	}
	got := watch(&v1.WatchRequest{OptionalStartCursor: z1}, 3)
	want := []event{
		{z2.GetToken(), []string{"TOUCH doc:2#viewer@user:b", "TOUCH folder:f#viewer@user:b"}},
		{z3.GetToken(), []string{"TOUCH doc:3#owner@user:c"}},
		{z4.GetToken(), []string{"DELETE doc:1#viewer@user:a"}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("watch from z1:\n%v\nwant\n%v", got, want)
	}
	// Resumed from the ZedToken of the second event, filtered by type.
	got = watch(&v1.WatchRequest{OptionalStartCursor: z2, OptionalObjectTypes: []string{"doc"}}, 2)
	if fmt.Sprint(got) != fmt.Sprint(want[1:]) {
		t.Fatalf("watch from z2:\n%v\nwant\n%v", got, want[1:])
	}
	// Relationship filters, with checkpoints for the transactions they
	// filter out.
	got = watch(&v1.WatchRequest{
		OptionalStartCursor:         z1,
		OptionalRelationshipFilters: []*v1.RelationshipFilter{{ResourceType: "folder"}},
		OptionalUpdateKinds:         []v1.WatchKind{v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES, v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS},
	}, 3)
	want = []event{{z2.GetToken(), []string{"TOUCH folder:f#viewer@user:b"}}, {z3.GetToken(), nil}, {z4.GetToken(), nil}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("filtered watch:\n%v\nwant\n%v", got, want)
	}
	// A schema write is reported when asked for.
	zs := f.writeSchema(testSchema + "\ndefinition extra {}\n")
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	stream, err := f.az.Watch(ctx, &v1.WatchRequest{OptionalStartCursor: z4, OptionalUpdateKinds: []v1.WatchKind{v1.WatchKind_WATCH_KIND_INCLUDE_SCHEMA_UPDATES}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || !m.GetSchemaUpdated() || m.GetChangesThrough().GetToken() != zs.GetToken() {
		t.Fatalf("schema event %v, %v", m, err)
	}
}

// TestWatchSplitsBigTransactions: a transaction of more than
// server.MaxWatchUpdates updates arrives in parts; only the last carries
// its ZedToken, the others the previous transaction's, so a client that
// resumes from any part sees the whole transaction again.
func TestWatchSplitsBigTransactions(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	z0 := f.touch("folder:f#viewer@user:a")
	in, err := f.az.ImportBulkRelationships(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2500
	for start := 0; start < n; start += 500 {
		msg := &v1.ImportBulkRelationshipsRequest{}
		for i := start; i < start+500; i++ {
			msg.Relationships = append(msg.Relationships, mustRel(t, fmt.Sprintf("doc:d%05d#viewer@user:u", i)))
		}
		if err := in.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	head, err := f.eng.ReadRelationships(f.ctx, engine.FullyConsistent(), tuple.Filter{ResourceType: "folder"}, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	stream, err := f.az.Watch(ctx, &v1.WatchRequest{OptionalStartCursor: z0})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	var tokens []string
	for total := 0; total < n; {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(m.GetUpdates()))
		tokens = append(tokens, m.GetChangesThrough().GetToken())
		total += len(m.GetUpdates())
	}
	if !slices.Equal(sizes, []int{1000, 1000, 500}) {
		t.Fatalf("parts of %v updates", sizes)
	}
	if want := []string{z0.GetToken(), z0.GetToken(), head.Zookie}; !slices.Equal(tokens, want) {
		t.Fatalf("changes_through %v, want %v", tokens, want)
	}
}
