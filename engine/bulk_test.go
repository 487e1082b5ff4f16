package engine_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestCheckBulkGroupsByContext: items with different caveat contexts are
// each answered with their own context, in the request's order, at one
// revision; every answer equals a single Check of the same item.
func TestCheckBulkGroupsByContext(t *testing.T) {
	f := newFixture(t, engine.Options{})
	z := f.touch(
		`document:1#conditional@user:anne[ip_allowed:{"allowed":["10.0.0.1"]}]`,
		`document:2#conditional@user:anne[ip_allowed:{"allowed":["10.0.0.2"]}]`,
		"document:3#viewer@user:anne",
	)
	anne := tuple.SubjectRef{Type: "user", ID: "anne"}
	item := func(doc, perm, ip string) engine.BulkCheckItem {
		it := engine.BulkCheckItem{CheckRequest: engine.CheckQuery{Resource: tuple.ObjectRef{Type: "document", ID: doc}, Permission: perm, Subject: anne}}
		if ip != "" {
			it.Context = map[string]any{"ip": ip}
		}
		return it
	}
	// Contexts interleave, so that groups and request order differ.
	items := []engine.BulkCheckItem{
		item("1", "conditional", "10.0.0.1"),
		item("1", "conditional", "10.0.0.2"),
		item("2", "conditional", "10.0.0.1"),
		item("2", "conditional", "10.0.0.2"),
		item("1", "conditional", ""),
		item("3", "view", "10.0.0.1"),
		item("3", "nosuch", "10.0.0.2"),
		item("3", "view", ""),
	}
	want := []engine.Permissionship{
		engine.HasPermission, engine.NoPermission,
		engine.NoPermission, engine.HasPermission,
		engine.ConditionalPermission,
		engine.HasPermission, 0, engine.HasPermission,
	}
	res, err := f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Consistency: engine.AtExactSnapshot(z), Items: items})
	if err != nil {
		t.Fatal(err)
	}
	if res.Zookie != z || len(res.Results) != len(items) {
		t.Fatalf("CheckBulk = %d results at %q, want %d at %q", len(res.Results), res.Zookie, len(items), z)
	}
	for i, it := range items {
		r := res.Results[i]
		single, serr := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z),
			CheckRequest: it.CheckRequest, Context: it.Context})
		switch {
		case it.Permission == "nosuch":
			if !errors.Is(r.Err, engine.ErrUnknownRelation) || !errors.Is(serr, engine.ErrUnknownRelation) {
				t.Errorf("item %d: bulk error %v, single error %v; want ErrUnknownRelation", i, r.Err, serr)
			}
		case r.Err != nil || serr != nil:
			t.Errorf("item %d: bulk error %v, single error %v", i, r.Err, serr)
		case r.Permissionship != want[i] || single.Permissionship != want[i]:
			t.Errorf("item %d (%v): bulk %v, single %v, want %v", i, it.Context, r.Permissionship, single.Permissionship, want[i])
		}
	}
}

// TestCheckBulkRefusals: the request as a whole fails for too many items,
// an oversized context or a bad consistency; an item whose context cannot
// be encoded fails alone; no items still resolve the revision.
func TestCheckBulkRefusals(t *testing.T) {
	f := newFixture(t, engine.Options{Limits: engine.Limits{MaxBulkCheckItems: 2, MaxContextBytes: 30}})
	z := f.touch("document:1#viewer@user:anne")
	it := engine.BulkCheckItem{CheckRequest: engine.CheckQuery{Resource: tuple.ObjectRef{Type: "document", ID: "1"}, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "anne"}}}
	big, nan := it, it
	big.Context = map[string]any{"ip": strings.Repeat("x", 40)}
	nan.Context = map[string]any{"n": math.NaN()}

	if _, err := f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Items: []engine.BulkCheckItem{it, it, it}}); !errors.Is(err, engine.ErrLimitExceeded) {
		t.Errorf("3 items over a limit of 2: %v, want ErrLimitExceeded", err)
	}
	if _, err := f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Items: []engine.BulkCheckItem{it, big}}); !errors.Is(err, engine.ErrLimitExceeded) {
		t.Errorf("a context over the limit: %v, want ErrLimitExceeded", err)
	}
	if _, err := f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Consistency: engine.AtExactSnapshot("garbage"), Items: []engine.BulkCheckItem{it}}); !errors.Is(err, engine.ErrInvalidZookie) {
		t.Errorf("a bad zookie: %v, want ErrInvalidZookie", err)
	}
	res, err := f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Consistency: engine.AtExactSnapshot(z), Items: []engine.BulkCheckItem{nan, it}})
	if err != nil || !errors.Is(res.Results[0].Err, engine.ErrInvalidRequest) || res.Results[1].Err != nil || res.Results[1].Permissionship != engine.HasPermission {
		t.Errorf("a NaN in one item's context: %+v, %v; want that item's ErrInvalidRequest and the other answered", res, err)
	}
	res, err = f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Consistency: engine.AtExactSnapshot(z)})
	if err != nil || res.Zookie != z || len(res.Results) != 0 {
		t.Errorf("no items: %+v, %v; want the zookie %q", res, err, z)
	}
}
