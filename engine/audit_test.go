package engine_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// auditRevisions runs q and returns the revisions of its entries.
func auditRevisions(t *testing.T, eng *engine.Engine, q engine.AuditQuery) ([]engine.Revision, []engine.AuditResult) {
	t.Helper()
	seq, err := eng.QueryAudit(t.Context(), q)
	if err != nil {
		t.Fatalf("QueryAudit(%+v): %v", q, err)
	}
	var revs []engine.Revision
	var all []engine.AuditResult
	for r, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, r.Entry.Revision)
		all = append(all, r)
	}
	return revs, all
}

// TestAudit: every kind of write is recorded with the caller, the request
// id and reason of its context, its operation and its changes; queries
// filter and page; the chain verifies.
func TestAudit(t *testing.T) {
	f := newFixture(t, engine.Options{}) // revision 1: the schema, by "test"
	ctx := engine.WithAuditNote(f.ctx, "req-7", "grant for project x")
	f.clk.Advance(time.Minute)
	if _, err := f.eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "alice", Updates: []engine.Update{
		{Op: store.OpTouch, Relationship: mustParse(t, "document:d1#viewer@user:tom")},
		{Op: store.OpTouch, Relationship: mustParse(t, "group:g1#member@user:ann")},
	}}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	if _, err := f.eng.DeleteRelationships(engine.WithAuditNote(f.ctx, "req-8", "tom left"), engine.DeleteRequest{
		Caller: "bob", Filter: tuple.Filter{ResourceType: "document", Subject: &tuple.SubjectFilter{Type: "user", ID: "tom"}},
	}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	rels := func(yield func(tuple.Relationship, error) bool) {
		yield(mustParse(t, "document:d2#viewer@user:ann"), nil)
	}
	if _, _, err := f.eng.Import(engine.WithAuditNote(f.ctx, "req-9", "migration"), "loader", rels); err != nil {
		t.Fatal(err)
	}

	_, all := auditRevisions(t, f.eng, engine.AuditQuery{})
	want := []struct {
		caller, requestID, reason, op string
		changes                       []string
	}{
		{"test", "", "", engine.OpNameWriteSchema, nil},
		{"alice", "req-7", "grant for project x", engine.OpNameWriteRelationships, []string{"TOUCH document:d1#viewer@user:tom", "TOUCH group:g1#member@user:ann"}},
		{"bob", "req-8", "tom left", engine.OpNameDeleteRelationships, []string{"DELETE document:d1#viewer@user:tom"}},
		{"loader", "req-9", "migration", engine.OpNameImportRelationships, []string{"TOUCH document:d2#viewer@user:ann"}},
	}
	if len(all) != len(want) {
		t.Fatalf("%d entries, want %d", len(all), len(want))
	}
	for i, w := range want {
		e := all[i].Entry
		var changes []string
		for _, c := range e.Changes {
			changes = append(changes, c.Op.String()+" "+c.Relationship.String())
		}
		slices.Sort(changes)
		if e.Caller != w.caller || e.RequestID != w.requestID || e.Reason != w.reason || e.Operation != w.op || !slices.Equal(changes, w.changes) {
			t.Errorf("entry %d: %q %q %q %q %v, want %+v", e.Revision, e.Caller, e.RequestID, e.Reason, e.Operation, changes, w)
		}
		if !e.Time.Equal(newClock().Now().Add(time.Duration(i) * time.Minute)) {
			t.Errorf("entry %d: time %v", e.Revision, e.Time)
		}
		if i == 0 && (!e.SchemaChanged || !strings.Contains(e.Schema, "definition document")) {
			t.Errorf("schema entry: SchemaChanged %v, schema %q", e.SchemaChanged, e.Schema)
		}
	}
	t0 := newClock().Now()
	for _, tc := range []struct {
		name string
		q    engine.AuditQuery
		want []engine.Revision
	}{
		{"subject", engine.AuditQuery{Subject: &tuple.SubjectFilter{Type: "user", ID: "tom"}}, []engine.Revision{2, 3}},
		{"object", engine.AuditQuery{ResourceType: "document", ResourceID: "d2"}, []engine.Revision{4}},
		{"relation", engine.AuditQuery{Relation: "member"}, []engine.Revision{2}},
		{"caller", engine.AuditQuery{Caller: "bob"}, []engine.Revision{3}},
		{"time range", engine.AuditQuery{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []engine.Revision{2, 3}},
		{"limit", engine.AuditQuery{Limit: 1}, []engine.Revision{1}},
	} {
		if got, _ := auditRevisions(t, f.eng, tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: revisions %v, want %v", tc.name, got, tc.want)
		}
	}
	// Paging: the cursor of the last entry resumes after it.
	var paged []engine.Revision
	for cursor := ""; ; {
		revs, page := auditRevisions(t, f.eng, engine.AuditQuery{Cursor: cursor, Limit: 3})
		paged = append(paged, revs...)
		if len(page) < 3 {
			break
		}
		cursor = page[len(page)-1].Cursor
	}
	if !slices.Equal(paged, []engine.Revision{1, 2, 3, 4}) {
		t.Errorf("paging visited %v", paged)
	}
	rep, err := f.eng.VerifyAudit(t.Context())
	if err != nil || rep.Mismatch != nil || rep.Entries != 4 || rep.HeadHash != all[3].Entry.Hash {
		t.Errorf("VerifyAudit = %+v, %v", rep, err)
	}
	// Tampering is named by revision.
	enc := []byte("not an entry")
	if !f.st.TamperAudit(3, enc) {
		t.Fatal("no entry 3")
	}
	if rep, err := f.eng.VerifyAudit(t.Context()); err != nil || rep.Mismatch == nil || rep.Mismatch.Revision != 3 || rep.Entries != 2 {
		t.Errorf("after tampering with entry 3: %+v, %v", rep, err)
	}
}

// TestAuditBadRequests: malformed queries and reasons fail precisely, and
// a refused write leaves no entry.
func TestAuditBadRequests(t *testing.T) {
	f := newFixture(t, engine.Options{})
	for _, tc := range []struct {
		name string
		q    engine.AuditQuery
		want error
	}{
		{"negative limit", engine.AuditQuery{Limit: -1}, engine.ErrInvalidRequest},
		{"since after until", engine.AuditQuery{Since: time.Unix(10, 0), Until: time.Unix(5, 0)}, engine.ErrInvalidRequest},
		{"id without type", engine.AuditQuery{ResourceID: "d1"}, engine.ErrInvalidRequest},
		{"bad type", engine.AuditQuery{ResourceType: "Doc!"}, tuple.ErrInvalid},
		{"bad subject", engine.AuditQuery{Subject: &tuple.SubjectFilter{}}, tuple.ErrInvalid},
		{"bad cursor", engine.AuditQuery{Cursor: "garbage"}, engine.ErrInvalidCursor},
	} {
		if _, err := f.eng.QueryAudit(t.Context(), tc.q); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	up := []engine.Update{{Op: store.OpTouch, Relationship: mustParse(t, "document:d1#viewer@user:tom")}}
	for _, tc := range []struct {
		name, reason string
		want         error
	}{
		{"too long", strings.Repeat("x", engine.MaxReasonBytes+1), engine.ErrLimitExceeded},
		{"not UTF-8", "\xff", engine.ErrInvalidRequest},
	} {
		ctx := engine.WithAuditNote(f.ctx, "", tc.reason)
		if _, err := f.eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "x", Updates: up}); !errors.Is(err, tc.want) {
			t.Errorf("reason %s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := f.eng.WriteRelationships(engine.WithAuditNote(f.ctx, "", strings.Repeat("x", engine.MaxReasonBytes)), engine.WriteRequest{Caller: "x", Updates: up}); err != nil {
		t.Errorf("reason of exactly MaxReasonBytes: %v", err)
	}
	if revs, _ := auditRevisions(t, f.eng, engine.AuditQuery{}); !slices.Equal(revs, []engine.Revision{1, 2}) {
		t.Errorf("entries %v, want the schema and the one accepted write", revs)
	}
}

// TestAuditOnlyCommits: a write an invariant refuses (a write, a delete
// by filter, an import batch) and a schema write that changes nothing
// (by WriteSchema or UpdateSchema) commit nothing and leave no audit
// entry; the writes that commit have one each, with their callers.
func TestAuditOnlyCommits(t *testing.T) {
	f := newFixture(t, engine.Options{}) // revision 1: testSchema, by "test"
	if _, _, err := f.eng.WriteSchema(f.ctx, "admin", invSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Caller: "alice", Updates: parseUpdates(t, "+team:a#creator@user:c +team:a#member@user:x")}); err != nil {
		t.Fatal(err)
	}
	entries := func() []string {
		t.Helper()
		_, all := auditRevisions(t, f.eng, engine.AuditQuery{})
		var out []string
		for _, r := range all {
			out = append(out, fmt.Sprintf("%d %s %s", r.Entry.Revision, r.Entry.Caller, r.Entry.Operation))
		}
		return out
	}
	want := []string{"1 test WriteSchema", "2 admin WriteSchema", "3 alice WriteRelationships"}
	if got := entries(); !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	head, err := f.eng.Head(f.ctx)
	if err != nil {
		t.Fatal(err)
	}

	refused := []struct {
		name string
		run  func() error
	}{
		{"write breaking one_creator", func() error {
			_, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Caller: "mallory", Updates: parseUpdates(t, "+team:a#creator@user:d")})
			return err
		}},
		{"delete by filter breaking one_creator", func() error {
			_, err := f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{Caller: "mallory", Filter: tuple.Filter{ResourceType: "team", ResourceID: "a", Relation: "creator"}})
			return err
		}},
		{"import breaking one_creator", func() error {
			rels := func(yield func(tuple.Relationship, error) bool) {
				yield(mustParse(t, "team:b#member@user:y"), nil)
			}
			_, _, err := f.eng.Import(f.ctx, "mallory", rels)
			return err
		}},
	}
	for _, r := range refused {
		if err := r.run(); !errors.Is(err, engine.ErrInvariantViolated) {
			t.Errorf("%s: err = %v, want ErrInvariantViolated", r.name, err)
		}
	}
	// The schema in force, written again: no revision, no entry; the
	// zookie answered is the head's.
	zk, changes, err := f.eng.WriteSchema(f.ctx, "admin", invSchema)
	if err != nil || len(changes) != 0 {
		t.Fatalf("unchanged WriteSchema: %v changes, %v", changes, err)
	}
	if _, all := auditRevisions(t, f.eng, engine.AuditQuery{}); zk != all[len(all)-1].Zookie {
		t.Errorf("unchanged WriteSchema answered %s, want the head's zookie %s", zk, all[len(all)-1].Zookie)
	}
	if _, _, err := f.eng.UpdateSchema(f.ctx, "admin", func(cur string) (string, error) { return cur, nil }); err != nil {
		t.Fatalf("unchanged UpdateSchema: %v", err)
	}
	if got := entries(); !slices.Equal(got, want) {
		t.Errorf("after refused and unchanged writes: entries %q, want %q", got, want)
	}
	if h, _ := f.eng.Head(f.ctx); h != head {
		t.Errorf("head %d, want %d", h, head)
	}
	if rep, err := f.eng.VerifyAudit(f.ctx); err != nil || rep.Mismatch != nil || rep.Entries != 3 {
		t.Errorf("VerifyAudit = %+v, %v", rep, err)
	}
}
