package engine_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func TestSchemaChangeSafety(t *testing.T) {
	f := newFixture(t, engine.Options{})
	f.touch("document:1#viewer@user:*", "document:1#banned@user:a", "document:2#banned@user:b", "document:1#viewer@group:g#member")

	withoutWildcard := strings.Replace(testSchema, "user | user:* | group#member", "user | group#member", 1)
	withoutBanned := strings.Replace(strings.Replace(testSchema, "relation banned: user\n", "", 1), "viewer - banned", "viewer", 1)
	withoutBoth := strings.Replace(withoutBanned, "user | user:* | group#member", "user | group#member", 1)
	withoutConditional := strings.Replace(testSchema, "relation conditional: user with ip_allowed\n", "", 1)

	tests := []struct {
		name   string
		schema string
		uses   map[string]int // What -> Count; nil means the change is accepted
	}{
		{"remove a used wildcard", withoutWildcard, map[string]int{"subject type user:* on document#viewer": 1}},
		{"remove a used relation", withoutBanned, map[string]int{"relation document#banned": 2}},
		{"remove both", withoutBoth, map[string]int{"subject type user:* on document#viewer": 1, "relation document#banned": 2}},
		{"remove an unused relation", withoutConditional, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := f.st.HeadRevision(f.ctx)
			_, _, err := f.eng.WriteSchema(f.ctx, "test", tt.schema)
			if tt.uses == nil {
				if err != nil {
					t.Fatalf("WriteSchema: %v", err)
				}
				// Restore for the next case.
				if _, _, err := f.eng.WriteSchema(f.ctx, "test", testSchema); err != nil {
					t.Fatal(err)
				}
				return
			}
			var ue *engine.UnsafeSchemaChangeError
			if !errors.As(err, &ue) || !errors.Is(err, engine.ErrUnsafeSchemaChange) {
				t.Fatalf("got %v, want an UnsafeSchemaChangeError", err)
			}
			got := map[string]int{}
			for _, u := range ue.Uses {
				got[u.What] = u.Count
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.uses) {
				t.Errorf("uses = %v, want %v", got, tt.uses)
			}
			if after, _ := f.st.HeadRevision(f.ctx); after != before {
				t.Errorf("a refused schema committed revision %d", after)
			}
		})
	}

	// Once the relationships are gone, the change goes through.
	if _, err := f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{Filter: tuple.Filter{ResourceType: "document", Relation: "banned"}}); err != nil {
		t.Fatal(err)
	}
	z, changes, err := f.eng.WriteSchema(f.ctx, "test", withoutBanned)
	if err != nil {
		t.Fatalf("after deleting the users of banned: %v", err)
	}
	var kinds []string
	for _, c := range changes {
		kinds = append(kinds, c.String())
	}
	if !slices.ContainsFunc(kinds, func(s string) bool { return strings.HasPrefix(s, "relation removed: document#banned") }) {
		t.Errorf("changes %q do not report the removed relation", kinds)
	}
	rs, err := f.eng.ReadSchema(f.ctx, engine.AtLeastAsFresh(z))
	if err != nil || rs.Text != withoutBanned || rs.Zookie != z {
		t.Errorf("ReadSchema = %q at %q, %v", rs.Text, rs.Zookie, err)
	}
	// Relationships are validated against the new schema.
	_, err = f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Updates: []engine.Update{
		{Op: store.OpTouch, Relationship: mustParse(t, "document:1#banned@user:a")},
	}})
	if !errors.Is(err, engine.ErrUnknownRelation) {
		t.Errorf("write to a removed relation: %v", err)
	}
}

// Checks at an old revision use the schema in force at that revision.
func TestSchemaInForceAtRevision(t *testing.T) {
	f := newFixture(t, engine.Options{})
	z1 := f.touch("document:1#viewer@user:anne")
	renamed := strings.Replace(testSchema, "permission view = viewer - banned", "permission read = viewer - banned", 1)
	z2, _, err := f.eng.WriteSchema(f.ctx, "test", renamed)
	if err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, annView)
	ask := func(z, perm string) error {
		_, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: perm, Subject: r.Subject}})
		return err
	}
	if err := ask(z1, "view"); err != nil {
		t.Errorf("view at the old revision: %v", err)
	}
	if err := ask(z2, "view"); err == nil {
		t.Errorf("view at the new revision succeeded; the permission was renamed")
	}
	if err := ask(z2, "read"); err != nil {
		t.Errorf("read at the new revision: %v", err)
	}
	if err := ask(z1, "read"); err == nil {
		t.Errorf("read at the old revision succeeded; it did not exist yet")
	}
	if n := f.eng.Stats().CompiledSchemas; n != 2 {
		t.Errorf("compiled schemas cached = %d, want 2", n)
	}
}

func TestReadRelationshipsPaging(t *testing.T) {
	f := newFixture(t, engine.Options{})
	var want []string
	for i := 0; i < 5; i++ {
		s := fmt.Sprintf("document:%d#viewer@user:u%d", i, i)
		want = append(want, s)
		f.touch(s)
	}
	filter := tuple.Filter{ResourceType: "document"}
	page, err := f.eng.ReadRelationships(f.ctx, engine.FullyConsistent(), filter, 2, "")
	if err != nil || len(page.Relationships) != 2 || page.Next == "" {
		t.Fatalf("first page: %+v %v", page, err)
	}
	z := page.Zookie
	got := []string{page.Relationships[0].String(), page.Relationships[1].String()}
	// Next is the cursor after the page's last relationship.
	if page.Next != page.CursorAfter(1) {
		t.Errorf("Next %q differs from CursorAfter(1) %q", page.Next, page.CursorAfter(1))
	}
	// A write between pages does not show up: the scan stays at its revision.
	f.touch("document:3#viewer@user:late")
	// Resuming after the first relationship of a page re-reads the second.
	if p, err := f.eng.ReadRelationships(f.ctx, engine.FullyConsistent(), filter, 1, page.CursorAfter(0)); err != nil || len(p.Relationships) != 1 || p.Relationships[0].String() != want[1] {
		t.Errorf("resumed after the first: %+v, %v; want %s", p.Relationships, err, want[1])
	}
	for cursor := page.Next; cursor != ""; cursor = page.Next {
		page, err = f.eng.ReadRelationships(f.ctx, engine.FullyConsistent(), filter, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if page.Zookie != z {
			t.Errorf("continued page answered at another revision")
		}
		for _, r := range page.Relationships {
			got = append(got, r.String())
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("pages = %v, want %v", got, want)
	}

	first, _ := f.eng.ReadRelationships(f.ctx, engine.FullyConsistent(), filter, 1, "")
	c1 := first.Next
	tests := []struct {
		name   string
		filter tuple.Filter
		cursor string
		size   int
		want   error
	}{
		{"garbage cursor", filter, "garbage!", 1, engine.ErrInvalidCursor},
		{"tampered cursor", filter, c1[:len(c1)-2] + "AA", 1, engine.ErrInvalidCursor},
		{"other filter", tuple.Filter{ResourceType: "group"}, c1, 1, engine.ErrInvalidCursor},
		{"narrower filter", tuple.Filter{ResourceType: "document", Relation: "viewer"}, c1, 1, engine.ErrInvalidCursor},
		{"a zookie", filter, z, 1, engine.ErrInvalidCursor},
		{"cursor with a line break", filter, c1[:5] + "\n" + c1[5:], 1, engine.ErrInvalidCursor},
		{"cursor of another datastore", filter, otherStore(t).Next, 1, engine.ErrInvalidCursor},
		{"page too large", filter, "", engine.DefaultMaxReadPageSize + 1, engine.ErrLimitExceeded},
		{"negative page", filter, "", -1, engine.ErrInvalidRequest},
		{"bad filter", tuple.Filter{ResourceType: "Doc"}, "", 1, engine.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.eng.ReadRelationships(f.ctx, engine.FullyConsistent(), tt.filter, tt.size, tt.cursor)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWatchYieldsChangesWithZookies(t *testing.T) {
	f := newFixture(t, engine.Options{})
	z0 := f.touch("document:1#viewer@user:a")
	z1 := f.touch("document:1#viewer@user:b")
	z2 := f.remove("document:1#viewer@user:a")
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	var got []string
	for ev, err := range f.eng.Watch(ctx, z0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %s", ev.Caller, ev.Changes[0].Op, ev.Changes[0].Relationship))
		if ev.Zookie != []string{z1, z2}[len(got)-1] {
			t.Errorf("event %d has zookie of revision %d", len(got), revisionOf(t, f, ev.Zookie))
		}
		if len(got) == 2 {
			break
		}
	}
	want := "test TOUCH document:1#viewer@user:b|test DELETE document:1#viewer@user:a"
	if strings.Join(got, "|") != want {
		t.Errorf("events = %q, want %q", strings.Join(got, "|"), want)
	}
	for _, err := range f.eng.Watch(ctx, "bogus") {
		if !errors.Is(err, engine.ErrInvalidZookie) {
			t.Errorf("watch from a bogus zookie: %v", err)
		}
	}
}

func seqOf(rels ...tuple.Relationship) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for _, r := range rels {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// noBulk hides the memstore's BulkLoader so Import takes the batched path.
type noBulk struct{ store.Store }

func TestImportExport(t *testing.T) {
	for _, bulk := range []bool{true, false} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			f := newFixture(t, engine.Options{Limits: engine.Limits{MaxUpdatesPerWrite: 2}})
			eng := f.eng
			if !bulk {
				var err error
				if eng, err = engine.Open(f.ctx, noBulk{f.st}, engine.Options{Now: f.clk.Now, Limits: engine.Limits{MaxUpdatesPerWrite: 2}}); err != nil {
					t.Fatal(err)
				}
			}
			rels := []tuple.Relationship{
				mustParse(t, "document:1#viewer@user:a"), mustParse(t, "document:1#viewer@user:b"),
				mustParse(t, "document:2#viewer@user:c"), mustParse(t, "group:g#member@user:d"),
				mustParse(t, "document:3#viewer@user:*"),
			}
			z, n, err := eng.Import(f.ctx, "importer", seqOf(rels...))
			if err != nil || n != len(rels) {
				t.Fatalf("import: %d, %v", n, err)
			}
			var got []string
			zx, err := eng.Export(f.ctx, engine.AtLeastAsFresh(z), func(r tuple.Relationship) error {
				got = append(got, r.String())
				return nil
			})
			if err != nil || zx != z {
				t.Fatalf("export: %v (zookie %d, import %d)", err, revisionOf(t, f, zx), revisionOf(t, f, z))
			}
			if len(got) != len(rels) {
				t.Errorf("exported %v", got)
			}
			_, _, err = eng.Import(f.ctx, "importer", seqOf(mustParse(t, "document:4#viewer@user:e"), mustParse(t, "document:4#view@user:e")))
			var re *engine.RelationshipError
			if !errors.As(err, &re) || !errors.Is(err, engine.ErrWriteToPermission) || re.Index != 1 {
				t.Errorf("import of a permission: %v", err)
			}
			stop := errors.New("stop")
			if _, err := eng.Export(f.ctx, engine.FullyConsistent(), func(tuple.Relationship) error { return stop }); !errors.Is(err, stop) {
				t.Errorf("export callback error: %v", err)
			}
		})
	}
}

// More schema versions than the compiled-schema cache holds: old revisions
// are still answered with their own schema, compiled again on demand.
func TestSchemaCacheEviction(t *testing.T) {
	f := newFixture(t, engine.Options{})
	first := f.touch("document:1#viewer@user:anne")
	var zs []string
	for i := 0; i < 12; i++ {
		text := strings.Replace(testSchema, "relation banned: user", fmt.Sprintf("relation banned: user\n  relation extra%d: user", i), 1)
		z, _, err := f.eng.WriteSchema(f.ctx, "test", text)
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, z)
	}
	if n := f.eng.Stats().CompiledSchemas; n > 8 {
		t.Errorf("%d compiled schemas cached, want at most 8", n)
	}
	r := mustParse(t, "document:1#extra0@user:anne")
	ask := func(z string) error {
		_, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
		return err
	}
	if err := ask(first); err == nil {
		t.Errorf("extra0 exists at the first revision")
	}
	if err := ask(zs[0]); err != nil {
		t.Errorf("extra0 at the revision that added it: %v", err)
	}
	if err := ask(zs[11]); err == nil {
		t.Errorf("extra0 exists at the last revision")
	}
}

func TestSchemaChangeCountStopsAtTheScanLimit(t *testing.T) {
	f := newFixture(t, engine.Options{Limits: engine.Limits{SchemaScanLimit: 2}})
	f.touch("document:1#banned@user:a", "document:1#banned@user:b", "document:1#banned@user:c")
	noBanned := strings.Replace(strings.Replace(testSchema, "relation banned: user\n", "", 1), "viewer - banned", "viewer", 1)
	_, _, err := f.eng.WriteSchema(f.ctx, "test", noBanned)
	var ue *engine.UnsafeSchemaChangeError
	if !errors.As(err, &ue) || len(ue.Uses) != 1 || ue.Uses[0].Count != 2 || !ue.Uses[0].Truncated {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "2 or more relationships") {
		t.Errorf("message %q does not say the count is a lower bound", err)
	}
}

// otherStore returns the first page, of one relationship, of a scan of
// documents in a fresh datastore; its cursors carry another fingerprint.
func otherStore(t *testing.T) engine.ReadPage {
	t.Helper()
	g := newFixture(t, engine.Options{})
	g.touch("document:0#viewer@user:u0", "document:1#viewer@user:u1")
	page, err := g.eng.ReadRelationships(g.ctx, engine.FullyConsistent(), tuple.Filter{ResourceType: "document"}, 1, "")
	if err != nil || page.Next == "" {
		t.Fatalf("other store: %+v, %v", page, err)
	}
	return page
}
