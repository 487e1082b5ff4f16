package server

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// findReason returns the first node of n's tree with reason r, or nil.
func findReason(n *pb.ExplainNode, r pb.ExplainNode_Reason) *pb.ExplainNode {
	if n.GetReason() == r {
		return n
	}
	for _, c := range n.GetChildren() {
		if f := findReason(c, r); f != nil {
			return f
		}
	}
	return nil
}

// TestCheckExplain: explain is off by default; with it a grant comes with
// its witness, and a denial with its reasons (an exclusion with the
// excluding path, a missing relationship with the one that would grant).
func TestCheckExplain(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	f.writeSchema()
	zk := f.write("doc:d1#viewer@group:eng#member", "group:eng#member@user:ann", "group:eng#member@user:bob", "doc:d1#banned@user:bob")
	cons := fresh(zk)
	check := func(who string, explain bool) *pb.CheckPermissionResponse {
		t.Helper()
		resp, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: cons, Resource: obj("doc", "d1"),
			Permission: "view", Subject: sub("user", who, ""), Explain: explain})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if x := check("ann", false).GetExplanation(); x != nil {
		t.Errorf("explanation without explain: %v", x)
	}
	ann := check("ann", true)
	if ann.GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION || ann.GetCheckedAt().GetToken() == "" {
		t.Fatalf("ann: %v", ann)
	}
	var witness []string
	for _, r := range ann.GetExplanation().GetWitness() {
		witness = append(witness, fmt.Sprintf("%s:%s#%s@%s:%s#%s", r.GetResource().GetObjectType(), r.GetResource().GetObjectId(), r.GetRelation(),
			r.GetSubject().GetObject().GetObjectType(), r.GetSubject().GetObject().GetObjectId(), r.GetSubject().GetOptionalRelation()))
	}
	if want := []string{"doc:d1#viewer@group:eng#member", "group:eng#member@user:ann#"}; fmt.Sprint(witness) != fmt.Sprint(want) {
		t.Errorf("ann's witness = %v, want %v", witness, want)
	}
	bob := check("bob", true).GetExplanation()
	ex := findReason(bob.GetRoot(), pb.ExplainNode_REASON_EXCLUDED)
	if ex == nil || len(ex.GetChildren()) != 2 || ex.GetChildren()[1].GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
		t.Errorf("bob: no exclusion with its excluding path in %v", bob)
	}
	if len(bob.GetWitness()) != 0 {
		t.Errorf("a denial with a witness: %v", bob.GetWitness())
	}
	cy := check("cy", true).GetExplanation()
	m := findReason(cy.GetRoot(), pb.ExplainNode_REASON_MISSING_RELATIONSHIP)
	if m == nil || m.GetWanted().GetRelation() == "" || m.GetWanted().GetSubject().GetObject().GetObjectId() != "cy" {
		t.Errorf("cy: no missing relationship naming the one that would grant in %v", cy)
	}
	if n := cy.GetNearest(); n.GetRelation() != "viewer" || n.GetSubject().GetObject().GetObjectId() != "cy" {
		t.Errorf("cy: nearest grant %v, want doc:d1#viewer@user:cy", n)
	}
	if n := bob.GetNearest(); n != nil {
		t.Errorf("bob: nearest grant %v, but nothing written grants past the ban", n)
	}
}

// TestCheckExplainDepth: a check past the depth limit fails with explain
// as without it (RESOURCE_EXHAUSTED), and the status carries the
// explanation, whose depth-limit step names the path.
func TestCheckExplainDepth(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	f.writeSchema()
	rels := []string{"folder:f0#viewer@user:deep"}
	for i := 1; i <= 60; i++ {
		rels = append(rels, fmt.Sprintf("folder:f%d#parent@folder:f%d", i, i-1))
	}
	cons := fresh(f.write(rels...))
	_, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: cons, Resource: obj("folder", "f60"),
		Permission: "view", Subject: sub("user", "deep", ""), Explain: true})
	wantCode(t, err, codes.ResourceExhausted, ReasonMaxDepth)
	var x *pb.CheckExplanation
	for _, d := range status.Convert(err).Details() {
		if e, ok := d.(*pb.CheckExplanation); ok {
			x = e
		}
	}
	if x == nil || x.GetError() == "" {
		t.Fatalf("no explanation in the status of %v", err)
	}
	d := findReason(x.GetRoot(), pb.ExplainNode_REASON_DEPTH_LIMIT)
	if d == nil || len(d.GetPath()) != 51 || d.GetPath()[0] != "folder:f60#view" || d.GetError() == "" {
		t.Errorf("depth-limit step = %v", d)
	}
}
