package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Tamper edits the stored audit entry of rev behind the store's back (in
// its database, not through its API), for RunAuditTamper. edit gets the
// entry's stored canonical encoding and returns the bytes to store.
type Tamper func(t testing.TB, st store.Store, rev store.Revision, edit func(enc []byte) []byte)

// testAudit checks the audit log (store.AuditLog): one entry per committed
// revision, written with it, holding its WriteMeta and exactly its change
// set; queries by time, caller and change; paging; a chain that verifies
// and survives GC; pruning that keeps it verifiable.
func (s *suite) testAudit(t *testing.T) {
	t.Run("entries", s.testAuditEntries)
	t.Run("query", s.testAuditQuery)
	t.Run("gc", s.testAuditGC)
	t.Run("prune", s.testAuditPrune)
}

// auditLog returns st's audit log or fails: every backend must keep one.
func auditLog(t testing.TB, st store.Store) store.AuditLog {
	t.Helper()
	a, ok := st.(store.AuditLog)
	if !ok {
		t.Fatalf("%s store does not implement store.AuditLog", st.Kind())
	}
	return a
}

// auditEntries collects the entries matching f.
func auditEntries(t testing.TB, a store.AuditLog, f store.AuditFilter) []store.AuditEntry {
	t.Helper()
	var out []store.AuditEntry
	for e, err := range a.AuditEntries(context.Background(), f) {
		if err != nil {
			t.Fatalf("AuditEntries(%+v): %v", f, err)
		}
		out = append(out, e)
	}
	return out
}

// verifyAudit runs store.VerifyAudit and fails on an error.
func verifyAudit(t testing.TB, a store.AuditLog) store.AuditReport {
	t.Helper()
	rep, err := store.VerifyAudit(context.Background(), a)
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	return rep
}

// auditFixture writes a varied history, one tick of the clock apart, and
// returns the metadata of each revision (index rev-1).
func auditFixture(t *testing.T, st store.Store, clock *Clock) []store.WriteMeta {
	t.Helper()
	ctx := context.Background()
	rels := MustParse(t, "doc:1#viewer@user:a", "doc:1#editor@user:b", "doc:2#viewer@group:eng#member", "folder:1#viewer@user:a")
	a, b, c, d := rels[0], rels[1], rels[2], rels[3]
	c.Caveat = &tuple.Caveat{Name: "weekday", Context: map[string]any{"tz": "UTC", "n": json.Number("3.5")}}
	c.Expiration = startTime().Add(time.Hour)
	steps := []struct {
		meta store.WriteMeta
		fn   func(ctx context.Context, tx store.Tx) error
	}{
		{store.WriteMeta{Caller: "admin", RequestID: "req-1", Reason: "bootstrap", Operation: "WriteSchema"},
			func(ctx context.Context, tx store.Tx) error { return tx.WriteSchema(ctx, "definition user {}") }},
		{store.WriteMeta{Caller: "alice", RequestID: "req-2", Reason: "onboarding", Operation: "WriteRelationships"},
			func(ctx context.Context, tx store.Tx) error {
				for _, r := range []tuple.Relationship{a, b, c} {
					if err := tx.Touch(ctx, r); err != nil {
						return err
					}
				}
				return tx.Create(ctx, d)
			}},
		{store.WriteMeta{Caller: "bob", RequestID: "req-3", Operation: "WriteRelationships"},
			// The absent key's delete changes nothing and is not listed.
			func(ctx context.Context, tx store.Tx) error {
				if err := tx.Delete(ctx, b.Key()); err != nil {
					return err
				}
				return tx.Delete(ctx, MustParse(t, "doc:9#viewer@user:z")[0].Key())
			}},
		{store.WriteMeta{Caller: "alice", RequestID: "req-4", Reason: "offboarding a", Operation: "DeleteRelationships"},
			func(ctx context.Context, tx store.Tx) error {
				_, err := tx.DeleteMatching(ctx, tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "user", ID: "a"}}, 0)
				return err
			}},
		{store.WriteMeta{Caller: "carol", Operation: "WriteRelationships"},
			func(ctx context.Context, tx store.Tx) error { return nil }},
	}
	var metas []store.WriteMeta
	for i, step := range steps {
		clock.Advance(time.Minute)
		rev, err := st.Update(ctx, step.meta, step.fn)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if rev != store.Revision(i+1) {
			t.Fatalf("step %d committed revision %d", i, rev)
		}
		metas = append(metas, step.meta)
	}
	if bl, ok := st.(store.BulkLoader); ok {
		clock.Advance(time.Minute)
		meta := store.WriteMeta{Caller: "loader", RequestID: "req-6", Reason: "migration", Operation: "ImportRelationships"}
		imported := MustParse(t, "doc:3#viewer@user:x", "doc:4#viewer@user:y")
		seq := func(yield func(tuple.Relationship, error) bool) {
			for _, r := range imported {
				if !yield(r, nil) {
					return
				}
			}
		}
		if _, _, err := bl.Import(ctx, meta, seq); err != nil {
			t.Fatalf("Import: %v", err)
		}
		metas = append(metas, meta)
	}
	return metas
}

func (s *suite) testAuditEntries(t *testing.T) {
	st, clock := s.open(t, Config{})
	a := auditLog(t, st)
	if rep := verifyAudit(t, a); rep.Mismatch != nil || rep.Entries != 0 || rep.Head != 0 {
		t.Errorf("empty store: report %+v, want an empty chain", rep)
	}
	metas := auditFixture(t, st, clock)
	head := MustHead(t, st)
	got := auditEntries(t, a, store.AuditFilter{})
	if len(got) != int(head) {
		t.Fatalf("%d entries, want one per revision (%d)", len(got), head)
	}
	sets := watchN(t, st, 0, int(head))
	var prev store.AuditHash
	for i, e := range got {
		meta, cs := metas[i], sets[i]
		what := fmt.Sprintf("entry %d", i+1)
		if e.Revision != store.Revision(i+1) {
			t.Errorf("%s: revision %d", what, e.Revision)
		}
		if e.Caller != meta.Caller || e.RequestID != meta.RequestID || e.Reason != meta.Reason || e.Operation != meta.Operation {
			t.Errorf("%s: meta %q %q %q %q, want %+v", what, e.Caller, e.RequestID, e.Reason, e.Operation, meta)
		}
		if !e.Time.Equal(cs.Time) || e.Time.Location() != time.UTC {
			t.Errorf("%s: time %v, want the change set's %v in UTC", what, e.Time, cs.Time)
		}
		// Exactly the change set: the same comparison Watch gets.
		checkChangeSet(t, store.ChangeSet{Revision: e.Revision, Caller: e.Caller, Time: e.Time, Changes: e.Changes, SchemaChanged: e.SchemaChanged}, cs)
		if e.SchemaChanged && e.Schema != "definition user {}" {
			t.Errorf("%s: schema %q", what, e.Schema)
		}
		// The stored hash is the chain hash of the canonical encoding.
		if want := store.ChainAuditHash(prev, store.AppendAuditEncoding(nil, &e)); e.Hash != want {
			t.Errorf("%s: hash %s, want %s", what, e.Hash, want)
		}
		prev = e.Hash
	}
	rep := verifyAudit(t, a)
	if rep.Mismatch != nil || rep.Entries != int(head) || rep.Head != head || rep.HeadHash != prev {
		t.Errorf("VerifyAudit = %+v (mismatch %+v), want %d entries up to head %d", rep, rep.Mismatch, head, head)
	}
	// A failed write leaves no entry.
	if _, err := st.Update(context.Background(), store.WriteMeta{Caller: "x"}, func(context.Context, store.Tx) error { return errAbort }); err == nil {
		t.Fatal("failing update committed")
	}
	if n := len(auditEntries(t, a, store.AuditFilter{})); n != int(head) {
		t.Errorf("after a failed write: %d entries, want %d", n, head)
	}
}

func (s *suite) testAuditQuery(t *testing.T) {
	st, clock := s.open(t, Config{})
	a := auditLog(t, st)
	auditFixture(t, st, clock)
	head := MustHead(t, st)
	at := func(rev int) time.Time { return startTime().Add(time.Duration(rev) * time.Minute) }
	all := make([]store.Revision, head)
	for i := range all {
		all[i] = store.Revision(i + 1)
	}
	upTo := func(revs ...store.Revision) []store.Revision {
		var out []store.Revision
		for _, r := range revs {
			if r <= head {
				out = append(out, r)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    store.AuditFilter
		want []store.Revision
	}{
		{"all", store.AuditFilter{}, all},
		{"since", store.AuditFilter{Since: at(3)}, all[2:]},
		{"since between commits", store.AuditFilter{Since: at(3).Add(-time.Second)}, all[2:]},
		{"until excludes its instant", store.AuditFilter{Until: at(3)}, []store.Revision{1, 2}},
		{"time range", store.AuditFilter{Since: at(2), Until: at(4).Add(1)}, []store.Revision{2, 3, 4}},
		{"since after everything", store.AuditFilter{Since: at(100)}, nil},
		{"caller", store.AuditFilter{Caller: "alice"}, []store.Revision{2, 4}},
		{"caller and time", store.AuditFilter{Caller: "alice", Since: at(3)}, []store.Revision{4}},
		{"unknown caller", store.AuditFilter{Caller: "mallory"}, nil},
		{"object type", store.AuditFilter{Changes: &tuple.Filter{ResourceType: "folder"}}, []store.Revision{2}},
		{"object", store.AuditFilter{Changes: &tuple.Filter{ResourceType: "doc", ResourceID: "1"}}, []store.Revision{2, 3, 4}},
		{"object and relation", store.AuditFilter{Changes: &tuple.Filter{ResourceType: "doc", ResourceID: "1", Relation: "editor"}}, []store.Revision{2, 3}},
		{"relation alone", store.AuditFilter{Changes: &tuple.Filter{Relation: "editor"}}, []store.Revision{2, 3}},
		{"subject", store.AuditFilter{Changes: &tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", ID: "a"}}}, []store.Revision{2, 4}},
		{"subject set", store.AuditFilter{Changes: &tuple.Filter{Subject: &tuple.SubjectFilter{Type: "group", ID: "eng", Relation: "member"}}}, []store.Revision{2}},
		{"imported subject", store.AuditFilter{Changes: &tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", ID: "y"}}}, upTo(6)},
		{"absent delete is not a change", store.AuditFilter{Changes: &tuple.Filter{ResourceType: "doc", ResourceID: "9"}}, nil},
		{"after", store.AuditFilter{After: 4}, all[4:]},
		{"limit", store.AuditFilter{Limit: 2}, []store.Revision{1, 2}},
		{"after and limit", store.AuditFilter{After: 1, Limit: 2}, []store.Revision{2, 3}},
		{"limit counts matches", store.AuditFilter{Caller: "alice", Limit: 1, After: 2}, []store.Revision{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []store.Revision
			for _, e := range auditEntries(t, a, tc.f) {
				got = append(got, e.Revision)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("revisions %v, want %v", got, tc.want)
			}
		})
	}
	// Paging with the last revision as the cursor visits every entry once.
	var paged []store.Revision
	for cursor := store.Revision(0); ; {
		page := auditEntries(t, a, store.AuditFilter{After: cursor, Limit: 2})
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			paged = append(paged, e.Revision)
		}
		cursor = page[len(page)-1].Revision
	}
	if !slices.Equal(paged, all) {
		t.Errorf("paging visited %v, want %v", paged, all)
	}
	_ = clock
}

// testAuditGC: GC removes the changelog but no audit entry.
func (s *suite) testAuditGC(t *testing.T) {
	const window = time.Hour
	st, clock := s.open(t, Config{GCWindow: window})
	gc, ok := st.(store.GarbageCollector)
	if !ok {
		t.Skipf("%s store does not implement store.GarbageCollector", st.Kind())
	}
	a := auditLog(t, st)
	auditFixture(t, st, clock)
	before := auditEntries(t, a, store.AuditFilter{})
	clock.Advance(10 * window)
	last := MustTouch(t, st, MustParse(t, "doc:5#viewer@user:q")[0])
	stats, err := gc.GC(context.Background(), clock.Now().Add(window))
	if err != nil {
		t.Fatal(err)
	}
	if stats.Horizon != last || stats.AuditPruned != 0 {
		t.Fatalf("GC stats %+v, want horizon %d and nothing pruned", stats, last)
	}
	after := auditEntries(t, a, store.AuditFilter{})
	if len(after) != len(before)+1 {
		t.Fatalf("after GC: %d entries, want %d", len(after), len(before)+1)
	}
	for i := range before {
		if before[i].Hash != after[i].Hash || before[i].Revision != after[i].Revision {
			t.Errorf("entry %d changed by GC", before[i].Revision)
		}
	}
	if rep := verifyAudit(t, a); rep.Mismatch != nil || rep.Head != last {
		t.Errorf("after GC: VerifyAudit = %+v (mismatch %+v)", rep, rep.Mismatch)
	}
}

// testAuditPrune: pruning keeps the newest entry and an anchor from which
// the rest verifies; GC prunes by the store's audit retention.
func (s *suite) testAuditPrune(t *testing.T) {
	ctx := context.Background()
	st, clock := s.open(t, Config{AuditRetention: 3 * time.Minute})
	a := auditLog(t, st)
	auditFixture(t, st, clock)
	head := MustHead(t, st)
	all := auditEntries(t, a, store.AuditFilter{})
	at := func(rev int) time.Time { return startTime().Add(time.Duration(rev) * time.Minute) }

	n, err := a.PruneAudit(ctx, at(3))
	if err != nil || n != 2 {
		t.Fatalf("PruneAudit(before revision 3) = %d, %v; want 2", n, err)
	}
	rep := verifyAudit(t, a)
	if rep.Mismatch != nil || rep.Anchor != (store.AuditAnchor{Revision: 2, Hash: all[1].Hash}) || rep.Entries != int(head)-2 {
		t.Errorf("after pruning: VerifyAudit = %+v (mismatch %+v), want anchor at revision 2", rep, rep.Mismatch)
	}
	if got := auditEntries(t, a, store.AuditFilter{}); len(got) != int(head)-2 || got[0].Revision != 3 {
		t.Errorf("after pruning: %d entries from revision %d", len(got), got[0].Revision)
	}
	if n, err := a.PruneAudit(ctx, at(3)); err != nil || n != 0 {
		t.Errorf("pruning again = %d, %v; want 0", n, err)
	}
	// A cutoff after everything keeps the newest entry.
	if n, err := a.PruneAudit(ctx, at(1000)); err != nil || n != int(head)-3 {
		t.Errorf("PruneAudit(after everything) = %d, %v; want %d", n, err, head-3)
	}
	if got := auditEntries(t, a, store.AuditFilter{}); len(got) != 1 || got[0].Revision != head {
		t.Errorf("after pruning everything: %d entries, want only the newest", len(got))
	}
	// Writing on extends the pruned chain, and it still verifies.
	clock.Advance(time.Minute)
	next := MustTouch(t, st, MustParse(t, "doc:7#viewer@user:q")[0])
	if rep := verifyAudit(t, a); rep.Mismatch != nil || rep.Head != next || rep.Entries != 2 {
		t.Errorf("after a write on a pruned log: VerifyAudit = %+v (mismatch %+v)", rep, rep.Mismatch)
	}
	// GC prunes by the retention (3 minutes), independent of the window.
	gc, ok := st.(store.GarbageCollector)
	if !ok {
		return
	}
	clock.Advance(time.Minute)
	newest := MustTouch(t, st, MustParse(t, "doc:8#viewer@user:q")[0])
	stats, err := gc.GC(ctx, clock.Now().Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if stats.AuditPruned != 2 {
		t.Errorf("GC with retention pruned %d, want 2 (the newest stays)", stats.AuditPruned)
	}
	if rep := verifyAudit(t, a); rep.Mismatch != nil || rep.Head != newest || rep.Entries != 1 || rep.Anchor.Revision != newest-1 {
		t.Errorf("after GC with retention: VerifyAudit = %+v (mismatch %+v)", rep, rep.Mismatch)
	}
}

// RunAuditTamper checks that store.VerifyAudit names exactly the entry
// that tamper edited behind the store's back, for several kinds of edit,
// and that an untouched chain verifies.
func RunAuditTamper(t *testing.T, newStore Factory, tamper Tamper) {
	s := &suite{newStore: newStore}
	for _, tc := range []struct {
		name   string
		edit   func(enc []byte) []byte
		reason string
	}{
		{"flip a byte of the reason", func(enc []byte) []byte {
			e, _ := store.DecodeAuditEntry(enc)
			e.Reason = "nothing to see"
			return store.AppendAuditEncoding(nil, &e)
		}, "hash mismatch"},
		{"drop a change", func(enc []byte) []byte {
			e, _ := store.DecodeAuditEntry(enc)
			e.Changes = e.Changes[1:]
			return store.AppendAuditEncoding(nil, &e)
		}, "hash mismatch"},
		{"truncate", func(enc []byte) []byte { return enc[:len(enc)/2] }, "corrupt"},
		{"unchanged", func(enc []byte) []byte { return enc }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, clock := s.open(t, Config{})
			a := auditLog(t, st)
			auditFixture(t, st, clock)
			head := MustHead(t, st)
			const victim = 2
			tamper(t, st, victim, tc.edit)
			rep := verifyAudit(t, a)
			if tc.reason == "" {
				if rep.Mismatch != nil || rep.Head != head {
					t.Errorf("untouched: VerifyAudit = %+v (mismatch %+v)", rep, rep.Mismatch)
				}
				return
			}
			if rep.Mismatch == nil {
				t.Fatalf("VerifyAudit found nothing after the edit")
			}
			if rep.Mismatch.Revision != victim || rep.Entries != victim-1 {
				t.Errorf("VerifyAudit names revision %d after %d good entries (%s), want %d after %d",
					rep.Mismatch.Revision, rep.Entries, rep.Mismatch.Reason, victim, victim-1)
			}
			if !strings.Contains(rep.Mismatch.Reason, tc.reason) {
				t.Errorf("mismatch reason %q, want it to say %q", rep.Mismatch.Reason, tc.reason)
			}
		})
	}
}
