package server

import (
	"context"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestGoClient drives the real server through package client.
func TestGoClient(t *testing.T) {
	f := newFixture(t, Config{Keys: []Key{{Name: "crm", Secret: secretA}}})
	c, err := client.New(f.conn.Target(), client.Options{Key: secretA, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	var ups []client.Update
	for _, s := range []string{"doc:a#viewer@user:anne", "doc:b#viewer@group:eng#member", "group:eng#member@user:anne", `doc:c#leveled@user:anne[min_level:{"required":2}]`} {
		r, err := tuple.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, client.Touch(r))
	}
	zk, err := c.Write(ctx, ups...)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Check(ctx, client.AtLeastAsFresh(zk), "doc:c", "view", "user:anne", map[string]any{"level": 5})
	if err != nil || resp.GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("Check = %v, %v", resp, err)
	}
	var plain []string
	for r, err := range c.Read(ctx, client.AtLeastAsFresh(zk), tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "user", Relation: tuple.Ellipsis}}) {
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, r.String())
	}
	if want := []string{"doc:a#viewer@user:anne", `doc:c#leveled@user:anne[min_level:{"required":2}]`}; !slices.Equal(plain, want) {
		t.Errorf("Read = %q, want %q", plain, want)
	}
	var ids []string
	for r, err := range c.LookupResources(ctx, client.AtLeastAsFresh(zk), "doc", "view", "user:anne") {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.GetResourceObjectId())
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(ids, want) {
		t.Errorf("LookupResources = %q, want %q", ids, want)
	}
}
