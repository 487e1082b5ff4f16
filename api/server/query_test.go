package server

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// queryFixture is a server with testSchema and a few relationships.
func queryFixture(t testing.TB) (*fixture, *pb.Zookie) {
	f := newFixture(t, Config{})
	f.writeSchema()
	zk := f.write(
		"group:eng#member@user:anne",
		"group:eng#member@group:backend#member",
		"group:backend#member@user:bob",
		"doc:readme#viewer@group:eng#member",
		"doc:readme#owner@user:carl",
		"doc:readme#banned@user:bob",
		"doc:public#viewer@user:*",
		"doc:public#banned@user:mallory",
		`doc:secret#leveled@user:dana[min_level:{"required":3}]`,
		"doc:old#temp@user:erin[expiration:2000-01-01T00:00:00Z]",
		"doc:new#temp@user:erin[expiration:2099-01-01T00:00:00Z]",
	)
	return f, zk
}

func TestCheckPermission(t *testing.T) {
	f, zk := queryFixture(t)
	ctx := context.Background()
	level := func(n float64) *structpb.Struct {
		return mustStruct(t, map[string]any{"level": n})
	}
	const (
		no   = pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION
		yes  = pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION
		cond = pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	)
	tests := []struct {
		name, resource, perm, subject string
		ctx                           *structpb.Struct
		want                          pb.Permissionship
		missing                       []string
	}{
		{"direct member of viewer group", "readme", "view", "anne", nil, yes, nil},
		{"owner", "readme", "view", "carl", nil, yes, nil},
		{"banned nested member", "readme", "view", "bob", nil, no, nil},
		{"stranger", "readme", "view", "zoe", nil, no, nil},
		{"edit is owner only", "readme", "edit", "anne", nil, no, nil},
		{"wildcard", "public", "view", "zoe", nil, yes, nil},
		{"wildcard minus banned", "public", "view", "mallory", nil, no, nil},
		{"caveat without context", "secret", "view", "dana", nil, cond, []string{"level"}},
		{"caveat satisfied", "secret", "view", "dana", level(5), yes, nil},
		{"caveat not satisfied", "secret", "view", "dana", level(1), no, nil},
		{"expired", "old", "view", "erin", nil, no, nil},
		{"not yet expired", "new", "view", "erin", nil, yes, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{
				Consistency: fresh(zk),
				Resource:    obj("doc", tt.resource),
				Permission:  tt.perm,
				Subject:     sub("user", tt.subject, ""),
				Context:     tt.ctx,
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetPermissionship() != tt.want {
				t.Errorf("permissionship = %v, want %v", resp.GetPermissionship(), tt.want)
			}
			if got := resp.GetPartialCaveatInfo().GetMissingRequiredContext(); !slices.Equal(got, tt.missing) {
				t.Errorf("missing context = %q, want %q", got, tt.missing)
			}
			if resp.GetCheckedAt().GetToken() == "" {
				t.Error("no checked_at zookie")
			}
		})
	}
}

// TestConsistency: a write is visible at its own zookie, and an exact
// snapshot taken before it does not see it. MinimizeLatency reads share
// the head revision fetched by the first read of a quantum, by the
// engine's clock, so they see a write only once the quantum has passed.
func TestConsistency(t *testing.T) {
	f, before := queryFixture(t)
	ctx := context.Background()
	after := f.write("doc:readme#viewer@user:zoe")
	checkUser := func(c *pb.Consistency, user string) pb.Permissionship {
		t.Helper()
		resp, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{
			Consistency: c, Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", user, ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetPermissionship()
	}
	check := func(c *pb.Consistency) pb.Permissionship { t.Helper(); return checkUser(c, "zoe") }
	if got := check(fresh(after)); got != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
		t.Errorf("at_least_as_fresh(after) = %v", got)
	}
	if got := check(full()); got != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
		t.Errorf("fully_consistent = %v", got)
	}
	if got := check(exact(before)); got != pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION {
		t.Errorf("at_exact_snapshot(before) = %v", got)
	}

	minimize := &pb.Consistency{Requirement: &pb.Consistency_MinimizeLatency{MinimizeLatency: true}}
	if got := check(minimize); got != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
		t.Errorf("minimize_latency after the write = %v", got)
	}
	f.write("doc:readme#viewer@user:yan")
	for _, step := range []struct {
		advance time.Duration
		want    pb.Permissionship
	}{
		{0, pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION},
		{engine.DefaultQuantum - time.Nanosecond, pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION},
		{time.Nanosecond, pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION},
	} {
		f.clock.Advance(step.advance)
		if got := checkUser(minimize, "yan"); got != step.want {
			t.Errorf("minimize_latency %v after the quantum began: yan's view = %v, want %v", f.clock.Now().Sub(newFixtureClock().Now()), got, step.want)
		}
	}
}

func TestCheckBulkPermissions(t *testing.T) {
	f, zk := queryFixture(t)
	item := func(res, perm, subj string, ctx *structpb.Struct) *pb.CheckBulkPermissionsRequestItem {
		return &pb.CheckBulkPermissionsRequestItem{Resource: obj("doc", res), Permission: perm, Subject: sub("user", subj, ""), Context: ctx}
	}
	resp, err := f.perms.CheckBulkPermissions(context.Background(), &pb.CheckBulkPermissionsRequest{
		Consistency: fresh(zk),
		Items: []*pb.CheckBulkPermissionsRequestItem{
			item("readme", "view", "anne", nil),
			item("readme", "view", "bob", nil),
			item("readme", "nosuch", "anne", nil),                                     // unknown permission: item error
			item("readme", "view", "", nil),                                           // malformed: item error
			item("secret", "view", "dana", mustStruct(t, map[string]any{"level": 9})), // second context group
			item("secret", "view", "dana", nil),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		perm pb.Permissionship
		code int32
	}{
		{perm: pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION},
		{perm: pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION},
		{code: 3}, // InvalidArgument
		{code: 3},
		{perm: pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION},
		{perm: pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION},
	}
	pairs := resp.GetPairs()
	if len(pairs) != len(want) {
		t.Fatalf("%d pairs, want %d", len(pairs), len(want))
	}
	for i, w := range want {
		p := pairs[i]
		if p.GetRequest() == nil {
			t.Errorf("pair %d has no request", i)
		}
		if w.code != 0 {
			if p.GetError().GetCode() != w.code || p.GetError().GetMessage() == "" {
				t.Errorf("pair %d: error = %v, want code %d", i, p.GetError(), w.code)
			}
			continue
		}
		if p.GetItem().GetPermissionship() != w.perm {
			t.Errorf("pair %d: %v, want %v (error %v)", i, p.GetItem().GetPermissionship(), w.perm, p.GetError())
		}
	}
	if resp.GetCheckedAt().GetToken() == "" {
		t.Error("no checked_at")
	}
}

func TestExpandPermissionTree(t *testing.T) {
	f, zk := queryFixture(t)
	resp, err := f.perms.ExpandPermissionTree(context.Background(), &pb.ExpandPermissionTreeRequest{
		Consistency: fresh(zk), Resource: obj("doc", "readme"), Permission: "view",
	})
	if err != nil {
		t.Fatal(err)
	}
	root := resp.GetTreeRoot()
	if root.GetExpandedObject().GetObjectId() != "readme" || root.GetExpandedRelation() != "view" {
		t.Errorf("root names %v#%s", root.GetExpandedObject(), root.GetExpandedRelation())
	}
	if op := root.GetIntermediate().GetOperation(); op != pb.AlgebraicSubjectSet_OPERATION_EXCLUSION {
		t.Fatalf("root operation = %v, want EXCLUSION", op)
	}
	// Somewhere below, the viewer leaf lists group:eng#member and expands
	// it down to anne and bob.
	var leafSubjects []string
	var walk func(n *pb.PermissionRelationshipTree)
	walk = func(n *pb.PermissionRelationshipTree) {
		if l := n.GetLeaf(); l != nil {
			for _, s := range l.GetSubjects() {
				leafSubjects = append(leafSubjects, n.GetExpandedRelation()+">"+s.GetObject().GetObjectType()+":"+s.GetObject().GetObjectId()+"#"+s.GetOptionalRelation())
			}
			for _, c := range l.GetSubjectSetExpansions() {
				walk(c)
			}
		}
		for _, c := range n.GetIntermediate().GetChildren() {
			walk(c)
		}
	}
	walk(root)
	for _, want := range []string{"viewer>group:eng#member", "member>user:anne#", "member>user:bob#", "owner>user:carl#", "banned>user:bob#"} {
		if !slices.Contains(leafSubjects, want) {
			t.Errorf("expansion lacks %s; has %q", want, leafSubjects)
		}
	}
}

func TestLookupResources(t *testing.T) {
	f, zk := queryFixture(t)
	ctx := context.Background()
	lookup := func(req *pb.LookupResourcesRequest) []*pb.LookupResourcesResponse {
		t.Helper()
		stream, err := f.perms.LookupResources(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := collect(t, stream.Recv)
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	ids := func(msgs []*pb.LookupResourcesResponse) []string {
		var out []string
		for _, m := range msgs {
			out = append(out, m.GetResourceObjectId())
		}
		return out
	}
	req := &pb.LookupResourcesRequest{Consistency: fresh(zk), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "anne", "")}
	all := ids(lookup(req))
	if want := []string{"public", "readme"}; !slices.Equal(all, want) {
		t.Fatalf("lookup = %q, want %q", all, want)
	}
	// Page by one with cursors.
	var paged []string
	req.OptionalLimit = 1
	for range 5 {
		msgs := lookup(req)
		if len(msgs) == 0 {
			break
		}
		paged = append(paged, ids(msgs)...)
		req.OptionalCursor = msgs[len(msgs)-1].GetAfterResultCursor()
	}
	if !slices.Equal(paged, all) {
		t.Errorf("paged lookup = %q, want %q", paged, all)
	}
	// Conditional results carry the missing context.
	msgs := lookup(&pb.LookupResourcesRequest{Consistency: fresh(zk), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "dana", "")})
	var secret *pb.LookupResourcesResponse
	for _, m := range msgs {
		if m.GetResourceObjectId() == "secret" {
			secret = m
		}
	}
	if secret.GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION ||
		!slices.Equal(secret.GetPartialCaveatInfo().GetMissingRequiredContext(), []string{"level"}) {
		t.Errorf("dana's secret result = %v", secret)
	}
}

func TestLookupSubjects(t *testing.T) {
	f, zk := queryFixture(t)
	ctx := context.Background()
	lookup := func(res string) []*pb.LookupSubjectsResponse {
		t.Helper()
		stream, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{
			Consistency: fresh(zk), Resource: obj("doc", res), Permission: "view", SubjectObjectType: "user",
		})
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := collect(t, stream.Recv)
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	var got []string
	for _, m := range lookup("readme") {
		got = append(got, m.GetSubject().GetSubjectObjectId())
	}
	if want := []string{"anne", "carl"}; !slices.Equal(got, want) {
		t.Errorf("readme viewers = %q, want %q", got, want)
	}
	pub := lookup("public")
	if len(pub) != 1 || pub[0].GetSubject().GetSubjectObjectId() != "*" {
		t.Fatalf("public viewers = %v, want the wildcard", pub)
	}
	ex := pub[0].GetExcludedSubjects()
	if len(ex) != 1 || ex[0].GetSubjectObjectId() != "mallory" {
		t.Errorf("wildcard exclusions = %v, want mallory", ex)
	}

	// One at a time with cursors, across a write the cursor must not see.
	var paged []string
	var cur *pb.Cursor
	for i := range 4 {
		if i == 1 {
			f.write("doc:readme#owner@user:zed") // would appear last if the revision moved
		}
		stream, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{
			Consistency: fresh(zk), Resource: obj("doc", "readme"), Permission: "view", SubjectObjectType: "user",
			OptionalLimit: 1, OptionalCursor: cur,
		})
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := collect(t, stream.Recv)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		if len(msgs) != 1 {
			t.Fatalf("limit 1 gave %d subjects", len(msgs))
		}
		paged = append(paged, msgs[0].GetSubject().GetSubjectObjectId())
		cur = msgs[0].GetAfterResultCursor()
	}
	if want := []string{"anne", "carl"}; !slices.Equal(paged, want) {
		t.Errorf("paged subjects = %q, want %q", paged, want)
	}
}

// An arrow's edge keeps the caveat and expiry of the relationship it
// followed, so that a client sees why a branch does not count.
func TestTreeToProtoEdgeConditions(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tree := &engine.Tree{
		Kind: engine.Intersection, Object: tuple.ObjectRef{Type: "doc", ID: "1"}, Relation: "view",
		Children: []*engine.Tree{
			{Kind: engine.Leaf, Object: tuple.ObjectRef{Type: "team", ID: "t1"}, Relation: "member",
				Caveat: &tuple.Caveat{Name: "teamcaveat", Context: map[string]any{"ok": false}}},
			{Kind: engine.Leaf, Object: tuple.ObjectRef{Type: "team", ID: "t2"}, Relation: "member", Expiration: exp},
			{Kind: engine.Leaf, Object: tuple.ObjectRef{Type: "team", ID: "t3"}, Relation: "member"},
		},
	}
	pt, err := treeToProto(tree)
	if err != nil {
		t.Fatal(err)
	}
	if pt.GetOptionalCaveat() != nil || pt.GetOptionalExpiresAt() != nil {
		t.Errorf("root has edge conditions %v %v", pt.GetOptionalCaveat(), pt.GetOptionalExpiresAt())
	}
	ch := pt.GetIntermediate().GetChildren()
	if len(ch) != 3 {
		t.Fatalf("%d children", len(ch))
	}
	if c := ch[0].GetOptionalCaveat(); c.GetCaveatName() != "teamcaveat" || c.GetContext().AsMap()["ok"] != false || ch[0].GetOptionalExpiresAt() != nil {
		t.Errorf("t1 edge = %v %v", c, ch[0].GetOptionalExpiresAt())
	}
	if ch[1].GetOptionalCaveat() != nil || !ch[1].GetOptionalExpiresAt().AsTime().Equal(exp) {
		t.Errorf("t2 edge = %v %v", ch[1].GetOptionalCaveat(), ch[1].GetOptionalExpiresAt())
	}
	if ch[2].GetOptionalCaveat() != nil || ch[2].GetOptionalExpiresAt() != nil {
		t.Errorf("t3 edge = %v %v", ch[2].GetOptionalCaveat(), ch[2].GetOptionalExpiresAt())
	}
}

// TestCheckBulkPastDeadline: a bulk check whose deadline passes while its
// items are evaluated fails as a whole with DEADLINE_EXCEEDED, never OK
// with items carrying it. The deadline is simulated by a context whose Err
// turns to DeadlineExceeded after its k-th call, for every k up to past the
// whole evaluation, so that it passes at every point of the handler's work
// (deterministically: the same calls each run).
func TestCheckBulkPastDeadline(t *testing.T) {
	f, zk := queryFixture(t)
	req := &pb.CheckBulkPermissionsRequest{Consistency: fresh(zk)}
	for _, res := range []string{"readme", "secret"} {
		for _, subj := range []string{"anne", "bob", "carl", "dana"} {
			req.Items = append(req.Items, &pb.CheckBulkPermissionsRequestItem{Resource: obj("doc", res), Permission: "view", Subject: sub("user", subj, "")})
		}
	}
	failed := 0
	for k := int64(0); k < 400; k++ {
		ctx := &expiringContext{Context: context.Background(), after: k, done: make(chan struct{})}
		resp, err := (&permissions{s: f.srv}).CheckBulkPermissions(ctx, req)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("k=%d: %v, want a deadline error", k, err)
			}
			if st := statusOf(ctx, slog.New(slog.DiscardHandler), "/pemba.v1.PermissionsService/CheckBulkPermissions", err); st.Code() != codes.DeadlineExceeded {
				t.Fatalf("k=%d: status %v, want DeadlineExceeded", k, st.Code())
			}
			failed++
			continue
		}
		for i, p := range resp.GetPairs() {
			if p.GetError() != nil {
				t.Fatalf("k=%d: OK with item %d failing: %v", k, i, p.GetError())
			}
		}
	}
	if failed == 0 || failed == 400 {
		t.Errorf("%d of 400 calls failed: the deadline never passed mid-call, or always before it", failed)
	}
}

// expiringContext reports DeadlineExceeded from its after-th call to Err
// on (and closes Done then).
type expiringContext struct {
	context.Context
	after int64
	calls atomic.Int64
	once  sync.Once
	done  chan struct{}
}

func (c *expiringContext) Err() error {
	if c.calls.Add(1) > c.after {
		c.once.Do(func() { close(c.done) })
		return context.DeadlineExceeded
	}
	return nil
}

func (c *expiringContext) Done() <-chan struct{} { return c.done }
