package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// invSchema has one definition per kind of invariant.
const invSchema = `
use expiration
use invariants

definition user {}
definition num {}

definition doc {
	relation editor: user
	permission edit = editor
}

definition team {
	relation creator: user
	relation member: user
	invariant one_creator = count(creator) == 1
}

definition lic {
	relation seat: user | user with expiration
	relation seat_limit: num
	invariant seats = count(seat) <= value(seat_limit)
}

definition link {
	relation approved: user:* | user:* with expiration
	relation granted: user
	relation note: user
	invariant grants = granted requires approved
}

definition deleg {
	relation owner: user
	relation acct: doc
	relation flag: user:*
	permission can_edit = acct->edit
	invariant held = flag requires owner within can_edit
}
`

// parseUpdates turns "+rel" (touch) and "-rel" (delete) into updates.
func parseUpdates(t testing.TB, spec string) []engine.Update {
	t.Helper()
	var ups []engine.Update
	for _, f := range strings.Fields(spec) {
		op := store.OpTouch
		if f[0] == '-' {
			op = store.OpDelete
		}
		ups = append(ups, engine.Update{Op: op, Relationship: mustParse(t, f[1:])})
	}
	return ups
}

// dumpAll returns every relationship at the head, as strings, sorted.
func dumpAll(t testing.TB, eng *engine.Engine, types ...string) []string {
	t.Helper()
	var out []string
	for _, typ := range types {
		cursor := ""
		for {
			page, err := eng.ReadRelationships(t.Context(), engine.FullyConsistent(), tuple.Filter{ResourceType: typ}, 0, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Relationships {
				out = append(out, r.String())
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
	}
	slices.Sort(out)
	return out
}

func TestInvariantWrites(t *testing.T) {
	f := newFixture(t, engine.Options{})
	if _, _, err := f.eng.WriteSchema(f.ctx, "test", invSchema); err != nil {
		t.Fatal(err)
	}
	types := []string{"doc", "team", "lic", "link", "deleg"}
	for i, step := range []struct {
		write string
		// fails is the invariant that must refuse the write ("" : it
		// commits); detail is a part of the message.
		fails, detail string
	}{
		// Exactly one creator: an object comes into existence with its
		// creator, in the same write.
		{"+team:a#member@user:x", "team.one_creator", "update 0 (TOUCH team:a#member@user:x): team:a has 0 creator relationships, want == 1"},
		{"+team:a#creator@user:c +team:a#member@user:x", "", ""},
		{"+team:a#creator@user:d", "team.one_creator", "team:a has more than 1 creator relationships, want == 1"},
		{"-team:a#creator@user:c +team:a#creator@user:d", "", ""}, // a transfer, one write
		{"-team:a#creator@user:d", "team.one_creator", "update 0 (DELETE team:a#creator@user:d)"},
		{"-team:a#member@user:x", "", ""},
		{"-team:a#creator@user:d", "", ""}, // the last relationship: team:a no longer exists
		// At most value(seat_limit) seats; no limit means no seats.
		{"+lic:l#seat@user:x", "lic.seats", "lic:l has more than 0 seat relationships, want <= 0"},
		{"+lic:l#seat_limit@num:2 +lic:l#seat@user:x", "", ""},
		{"+lic:l#seat@user:y", "", ""},
		{"+lic:l#seat@user:z", "lic.seats", "lic:l has more than 2 seat relationships, want <= 2"},
		{"+lic:l#seat@user:z[expiration:2020-01-01T00:00:00Z]", "", ""}, // expired at the write: no seat
		{"-lic:l#seat@user:y +lic:l#seat@user:z", "", ""},               // the same write frees and takes a seat
		{"-lic:l#seat_limit@num:2 +lic:l#seat_limit@num:1", "lic.seats", "want <= 1"},
		{"+lic:l#seat_limit@num:1", "lic.seats", "want <= 1"}, // two limits: the smallest counts
		{"+lic:l#seat_limit@num:many", "lic.seats", `value(seat_limit) of lic:l is "many", not a number`},
		{"-lic:l#seat@user:x", "", ""}, // deleting seats never breaks it
		// Dependency: grants need an (unexpired) approval.
		{"+link:k#granted@user:x", "link.grants", "link:k has no approved relationship"},
		{"+link:k#approved@user:*[expiration:2020-01-01T00:00:00Z] +link:k#granted@user:x", "link.grants", "no approved"},
		{"+link:k#approved@user:* +link:k#granted@user:x", "", ""},
		{"+link:k#note@user:x", "", ""},
		{"-link:k#approved@user:*", "link.grants", "update 0 (DELETE link:k#approved@user:*)"},
		{"-link:k#approved@user:* -link:k#granted@user:x", "", ""},
		// Containment: every owner may edit the account, judged on the
		// state after the write (the editor written in the same write
		// counts).
		{"+deleg:d#owner@user:o +deleg:d#acct@doc:1 +deleg:d#flag@user:*", "deleg.held", "user:o does not have can_edit on deleg:d"},
		{"+doc:1#editor@user:o +deleg:d#owner@user:o +deleg:d#acct@doc:1 +deleg:d#flag@user:*", "", ""},
		{"+deleg:d#owner@user:p", "deleg.held", "user:p does not have can_edit"},
		{"+doc:1#editor@user:p +deleg:d#owner@user:p", "", ""},
		// Checked when the write changes what the invariant reads on the
		// delegation, not when the owner's right elsewhere changes.
		{"-doc:1#editor@user:p", "", ""},
		{"+deleg:d#owner@user:q", "deleg.held", "user:p does not have can_edit"},
		{"-deleg:d#flag@user:* +deleg:d#owner@user:q", "", ""}, // no flag: nothing is delegated
	} {
		before := dumpAll(t, f.eng, types...)
		_, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Caller: "test", Updates: parseUpdates(t, step.write)})
		if step.fails == "" {
			if err != nil {
				t.Fatalf("step %d %q: %v", i, step.write, err)
			}
			continue
		}
		var ie *engine.InvariantError
		if !errors.As(err, &ie) || !errors.Is(err, engine.ErrInvariantViolated) {
			t.Fatalf("step %d %q: got %v, want invariant %s violated", i, step.write, err, step.fails)
		}
		if ie.Invariant != step.fails || !strings.Contains(err.Error(), step.detail) {
			t.Fatalf("step %d %q: got %q, want invariant %s and %q", i, step.write, err, step.fails, step.detail)
		}
		if after := dumpAll(t, f.eng, types...); !slices.Equal(before, after) {
			t.Fatalf("step %d %q: a refused write changed the data:\nbefore %v\nafter  %v", i, step.write, before, after)
		}
	}
}

// TestInvariantDeleteAndImport: deletes by filter and imports are writes
// like the others.
func TestInvariantDeleteAndImport(t *testing.T) {
	f := newFixture(t, engine.Options{})
	if _, _, err := f.eng.WriteSchema(f.ctx, "test", invSchema); err != nil {
		t.Fatal(err)
	}
	f.touch("link:k#approved@user:*", "link:k#granted@user:x", "link:k#note@user:x")
	_, err := f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{Caller: "test", Filter: tuple.Filter{ResourceType: "link", Relation: "approved"}})
	var ie *engine.InvariantError
	if !errors.As(err, &ie) || ie.Index != -1 || !strings.Contains(err.Error(), "by deleting link:k#approved@user:*") {
		t.Fatalf("delete of the approval: got %v, want link.grants violated by deleting it", err)
	}
	// Deleting everything of the link at once leaves nothing to break.
	resp, err := f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{Caller: "test", Filter: tuple.Filter{ResourceType: "link", ResourceID: "k"}})
	if err != nil || resp.Deleted != 3 {
		t.Fatalf("delete the link: %+v %v", resp, err)
	}
	rels := func(ss ...string) func(func(tuple.Relationship, error) bool) {
		return func(yield func(tuple.Relationship, error) bool) {
			for _, s := range ss {
				if !yield(mustParse(t, s), nil) {
					return
				}
			}
		}
	}
	if _, _, err := f.eng.Import(f.ctx, "test", rels("link:m#granted@user:x")); !errors.Is(err, engine.ErrInvariantViolated) {
		t.Fatalf("import of a grant without approval: %v", err)
	}
	if _, n, err := f.eng.Import(f.ctx, "test", rels("link:m#granted@user:x", "link:m#approved@user:*")); err != nil || n != 2 {
		t.Fatalf("import of a grant with its approval: %d %v", n, err)
	}
}

// TestInvariantSeatRace races writers for the last seats of a licence:
// exactly the licensed number win, on every store that serialises writes.
func TestInvariantSeatRace(t *testing.T) {
	const limit, writers = 5, 24
	for _, kind := range []string{engine.StoreMemory, engine.StorePebble} {
		t.Run(kind, func(t *testing.T) {
			o := engine.StoreOptions{Kind: kind}
			if kind == engine.StorePebble {
				o.Dir = t.TempDir()
			}
			st, err := engine.OpenStore(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			eng, err := engine.Open(t.Context(), st, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if _, _, err := eng.WriteSchema(ctx, "test", invSchema); err != nil {
				t.Fatal(err)
			}
			// One seat is taken already; the others are raced for.
			if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Updates: parseUpdates(t, fmt.Sprintf("+lic:l#seat_limit@num:%d +lic:l#seat@user:first", limit))}); err != nil {
				t.Fatal(err)
			}
			start := make(chan struct{})
			errs := make([]error, writers)
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					<-start
					_, errs[i] = eng.WriteRelationships(ctx, engine.WriteRequest{Updates: parseUpdates(t, fmt.Sprintf("+lic:l#seat@user:u%d", i))})
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, engine.ErrInvariantViolated):
					t.Fatalf("writer %d: %v", i, err)
				}
			}
			if won != limit-1 {
				t.Fatalf("%d writers got a seat, want %d", won, limit-1)
			}
			if seats := dumpAll(t, eng, "lic"); len(seats) != limit+1 { // the seats and the limit
				t.Fatalf("stored: %v", seats)
			}
		})
	}
}

// enterpriseUniverse is the small world the random test writes in, over
// examples/enterprise/schema.zed. Subjects are direct employees, so a
// hand-written model can tell who may edit an account.
type enterpriseUniverse struct {
	rels []string // every relationship the test may write
}

func newEnterpriseUniverse() *enterpriseUniverse {
	var u enterpriseUniverse
	emps := []string{"employee:u0", "employee:u1", "employee:u2"}
	add := func(res, rel string, subs ...string) {
		for _, s := range subs {
			u.rels = append(u.rels, res+"#"+rel+"@"+s)
		}
	}
	for _, e := range []string{"enterprise:e0", "enterprise:e1"} {
		add(e, "creator", emps...)
		add(e, "member", emps...)
	}
	for _, l := range []string{"link:l0", "link:l1"} {
		add(l, "approved", "employee:*", "employee:*[expiration:2020-01-01T00:00:00Z]")
		add(l, "granted", emps...)
		add(l, "chat", emps[0])
	}
	for _, l := range []string{"license:s0", "license:s1"} {
		add(l, "seat", emps...)
		add(l, "seat", "employee:u3[expiration:2020-01-01T00:00:00Z]")
		add(l, "seat_limit", "seat_count:1", "seat_count:2", "seat_count:two")
		add(l, "enterprise", "enterprise:e0")
	}
	for _, c := range []string{"crm_customer:c0", "crm_customer:c1"} {
		add(c, "editor", emps[:2]...)
		add(c, "manager", emps[2])
		add(c, "sales_rep", emps[0])
	}
	for _, d := range []string{"delegation:d0", "delegation:d1"} {
		add(d, "owner", emps...)
		add(d, "account", "crm_customer:c0", "crm_customer:c1")
		add(d, "delegate", emps[1])
		add(d, "order_management", "employee:*")
		add(d, "payment_management", "employee:*")
	}
	return &u
}

// model is the brute-force reference: the set of stored relationships,
// and the invariants of the enterprise example evaluated by hand.
type model map[tuple.Key]tuple.Relationship

func (m model) clone() model {
	c := make(model, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// live returns the unexpired relationships of obj#rel ("" rel: any).
func (m model) live(obj tuple.ObjectRef, rel string, now time.Time) []tuple.Relationship {
	var out []tuple.Relationship
	for k, r := range m {
		if k.Resource == obj && (rel == "" || k.Relation == rel) && !r.ExpiredAt(now) {
			out = append(out, r)
		}
	}
	return out
}

// mayEdit: the account's editors, manager and sales rep (direct
// employees only in this universe).
func (m model) mayEdit(acct tuple.ObjectRef, sub tuple.SubjectRef, now time.Time) bool {
	for _, rel := range []string{"editor", "manager", "sales_rep"} {
		for _, r := range m.live(acct, rel, now) {
			if r.Subject == sub {
				return true
			}
		}
	}
	return false
}

// broken lists the invariants that do not hold on obj; withinToo adds the
// containment invariants of delegations.
func (m model) broken(obj tuple.ObjectRef, now time.Time, withinToo bool) []string {
	if len(m.live(obj, "", now)) == 0 {
		return nil
	}
	n := func(rel string) int { return len(m.live(obj, rel, now)) }
	var out []string
	switch obj.Type {
	case "enterprise":
		if n("creator") != 1 {
			out = append(out, "enterprise.one_creator")
		}
	case "link":
		if n("granted") > 0 && n("approved") == 0 {
			out = append(out, "link.grants_need_approval")
		}
	case "license":
		limit, ok := 0, true
		for i, r := range m.live(obj, "seat_limit", now) {
			v, err := strconv.Atoi(r.Subject.ID)
			if err != nil {
				ok = false
				break
			}
			if i == 0 || v < limit {
				limit = v
			}
		}
		if !ok || n("seat") > limit {
			out = append(out, "license.seats_within_limit")
		}
		if n("seat_limit") > 1 {
			out = append(out, "license.one_seat_limit")
		}
	case "delegation":
		if n("owner") != 1 {
			out = append(out, "delegation.one_owner")
		}
		if !withinToo {
			break
		}
		for _, flag := range []struct{ rel, inv string }{{"order_management", "delegation.orders_held"}, {"payment_management", "delegation.payments_held"}} {
			if n(flag.rel) == 0 {
				continue
			}
			for _, o := range m.live(obj, "owner", now) {
				held := false
				for _, a := range m.live(obj, "account", now) {
					held = held || m.mayEdit(a.Subject.Object(), o.Subject, now)
				}
				if !held {
					out = append(out, flag.inv)
					break
				}
			}
		}
	}
	return out
}

// TestInvariantRandomEnterprise writes random batches against the
// enterprise example's schema. Before each write, the model predicts
// whether the engine must refuse it (some invariant broken after it:
// every count and dependency on every object, containment on the
// delegations whose owners or flags the write touches); after every few
// writes a brute-force scan of the stored data finds no count or
// dependency invariant broken, and no delegation whose containment did
// not hold at the revision that last judged it.
func TestInvariantRandomEnterprise(t *testing.T) {
	src, err := os.ReadFile("../examples/enterprise/schema.zed")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	st := memstore.New(memstore.Options{Now: func() time.Time { return now }})
	defer st.Close()
	eng, err := engine.Open(t.Context(), st, engine.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, _, err := eng.WriteSchema(ctx, "test", string(src)); err != nil {
		t.Fatal(err)
	}
	u := newEnterpriseUniverse()
	rng := rand.New(rand.NewPCG(20, 2026))
	m := model{}
	judged := map[tuple.ObjectRef]string{} // delegation -> zookie of the write that last judged it
	accepted, refused := 0, 0
	types := []string{"enterprise", "link", "license", "crm_customer", "delegation"}
	for w := range 1500 {
		// 1 to 4 updates on distinct relationships, biased to one object
		// so that multi-update writes matter.
		var ups []engine.Update
		seen := map[tuple.Key]bool{}
		for range 1 + rng.IntN(4) {
			r := mustParse(t, u.rels[rng.IntN(len(u.rels))])
			if seen[r.Key()] {
				continue
			}
			seen[r.Key()] = true
			op := store.OpTouch
			if _, ok := m[r.Key()]; ok && rng.IntN(2) == 0 {
				op = store.OpDelete
			}
			ups = append(ups, engine.Update{Op: op, Relationship: r})
		}
		next := m.clone()
		touched := map[tuple.ObjectRef]bool{}
		judge := map[tuple.ObjectRef]bool{} // delegations whose containment the write re-judges
		for _, up := range ups {
			obj := up.Relationship.Resource
			touched[obj] = true
			if up.Op == store.OpDelete {
				delete(next, up.Relationship.Key())
			} else {
				next[up.Relationship.Key()] = up.Relationship
				switch up.Relationship.Relation {
				case "owner", "order_management", "payment_management":
					judge[obj] = true
				}
			}
		}
		var want []string
		for obj := range touched {
			want = append(want, next.broken(obj, now, judge[obj])...)
		}
		z, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "random", Updates: ups})
		var ie *engine.InvariantError
		switch {
		case err == nil && len(want) == 0:
			accepted++
			m = next
			for obj := range judge {
				judged[obj] = z
			}
		case errors.As(err, &ie) && slices.Contains(want, ie.Invariant):
			refused++
		default:
			t.Fatalf("write %d %v: engine says %v, the model expects the invariants broken: %v", w, ups, err, want)
		}
		if w%25 != 24 {
			continue
		}
		// The brute-force scan, over what the engine stored.
		stored := model{}
		for _, s := range dumpAll(t, eng, types...) {
			r := mustParse(t, s)
			stored[r.Key()] = r
		}
		for k := range stored {
			if b := stored.broken(k.Resource, now, false); len(b) > 0 {
				t.Fatalf("after write %d: %s breaks %v", w, k.Resource, b)
			}
		}
		for obj, z := range judged {
			// At the revision that last judged it, every owner of a
			// delegation that delegates anything may edit its account.
			page, err := eng.ReadRelationships(ctx, engine.AtExactSnapshot(z), tuple.Filter{ResourceType: obj.Type, ResourceID: obj.ID}, 0, "")
			if err != nil {
				t.Fatal(err)
			}
			flagged := false
			var owners []tuple.SubjectRef
			for _, r := range page.Relationships {
				switch r.Relation {
				case "order_management", "payment_management":
					flagged = true
				case "owner":
					owners = append(owners, r.Subject)
				}
			}
			for _, o := range owners {
				resp, err := eng.Check(ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z), CheckRequest: engine.CheckQuery{
					Resource: obj, Permission: "account_managed", Subject: o}})
				if err != nil {
					t.Fatal(err)
				}
				if flagged && resp.Permissionship != engine.HasPermission {
					t.Fatalf("after write %d: %s delegates at %s, but its owner %s may not edit the account", w, obj, z, o)
				}
			}
		}
	}
	if accepted < 200 || refused < 200 {
		t.Fatalf("%d writes accepted, %d refused: the test exercises too little", accepted, refused)
	}
	t.Logf("%d writes accepted, %d refused", accepted, refused)
}

// TestInvariantCheckedOnlyWhenRead: a write to relations no invariant
// reads never runs a check (it commits even where other objects of its
// type, written before the schema declared the invariant, break it).
func TestInvariantCheckedOnlyWhenRead(t *testing.T) {
	f := newFixture(t, engine.Options{})
	noInv := strings.Replace(invSchema, "invariant grants = granted requires approved", "", 1)
	if _, _, err := f.eng.WriteSchema(f.ctx, "test", noInv); err != nil {
		t.Fatal(err)
	}
	f.touch("link:k#granted@user:x")
	if _, _, err := f.eng.WriteSchema(f.ctx, "test", invSchema); err != nil {
		t.Fatal(err)
	}
	f.touch("link:k#note@user:y") // note is read by no invariant
	if _, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Updates: parseUpdates(t, "+link:k#granted@user:y")}); !errors.Is(err, engine.ErrInvariantViolated) {
		t.Fatalf("a grant on k: %v", err)
	}
}

// BenchmarkWriteInvariants measures one write of one relationship on an
// existing object, under a schema without invariants and under the same
// schema with them: the relation written is read by none (only the index
// lookup is paid), by a count of the object's relationships, by a
// dependency, or by a containment check.
func BenchmarkWriteInvariants(b *testing.B) {
	noInv := invSchema
	for _, line := range strings.Split(invSchema, "\n") {
		if strings.Contains(line, "invariant ") {
			noInv = strings.Replace(noInv, line, "", 1)
		}
	}
	for _, bc := range []struct {
		name, schema, setup, write string
	}{
		{"none/member", noInv, "+team:a#creator@user:c", "team:a#member@user:%d"},
		{"invariants/member(count)", invSchema, "+team:a#creator@user:c", "team:a#member@user:%d"},
		{"none/note", noInv, "+link:k#approved@user:*", "link:k#note@user:%d"},
		{"invariants/note(not read)", invSchema, "+link:k#approved@user:*", "link:k#note@user:%d"},
		{"invariants/granted(requires)", invSchema, "+link:k#approved@user:*", "link:k#granted@user:%d"},
		{"none/owner", noInv, "+doc:1#editor@user:o +deleg:d#acct@doc:1 +deleg:d#flag@user:* +deleg:d#owner@user:o", "doc:1#editor@user:o%[1]d deleg:e%[1]d#owner@user:o%[1]d"},
		{"invariants/owner(within)", invSchema, "+doc:1#editor@user:o +deleg:d#acct@doc:1 +deleg:d#flag@user:* +deleg:d#owner@user:o", "doc:1#editor@user:o%[1]d deleg:e%[1]d#owner@user:o%[1]d"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(b, engine.Options{})
			if _, _, err := f.eng.WriteSchema(f.ctx, "test", bc.schema); err != nil {
				b.Fatal(err)
			}
			if _, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Updates: parseUpdates(b, bc.setup)}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				var spec string
				for _, r := range strings.Fields(fmt.Sprintf(bc.write, i)) {
					spec += " +" + r
				}
				i++
				if _, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Updates: parseUpdates(b, spec)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
