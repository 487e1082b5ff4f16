package engine_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// enterpriseData is the showcase domain of /work/shared/domain.md written
// against examples/enterprise/schema.zed. The clock of the test is fixed at
// 2026-01-01: grants ending in 2020 have expired, 2099 ones have not.
const enterpriseData = `
platform:p#reviewer@employee:ada

enterprise:acme#platform@platform:p
enterprise:acme#creator@employee:chen
enterprise:acme#super_admin@employee:liu
enterprise:acme#verified@employee:*
enterprise:acme#member@employee:chen
enterprise:acme#member@employee:liu
enterprise:acme#member@employee:tom
enterprise:acme#member@department:sales#member
enterprise:acme#member@department:hr#member
enterprise:acme#member@department:fin#member
employee:li#enterprise@enterprise:acme
employee:zhao#enterprise@enterprise:acme
employee:tom#enterprise@enterprise:acme

department:sales#enterprise@enterprise:acme
department:sales#parent@enterprise:acme
department:sales#scoped_admin@employee:qin
department:sales#member@employee:li
department:sales#member@employee:qin
department:sales#member@department:sales_east#member
department:sales#member@department:sales_west#member
department:sales#manager@employee:qin
department:sales_east#enterprise@enterprise:acme
department:sales_east#parent@department:sales
department:sales_east#scoped_admin@employee:he
department:sales_east#member@employee:zhao
department:sales_east#member@employee:he
department:sales_east#member@employee:pan
department:sales_east#manager@employee:pan
department:sales_west#enterprise@enterprise:acme
department:sales_west#parent@department:sales
department:sales_west#member@employee:yang
department:sales_west#manager@employee:yang
department:hr#enterprise@enterprise:acme
department:hr#parent@enterprise:acme
department:hr#scoped_admin@employee:sun
department:hr#member@employee:sun
department:hr#member@department:hr_team#member
department:hr_team#enterprise@enterprise:acme
department:hr_team#parent@department:hr
department:hr_team#member@employee:qian
department:fin#enterprise@enterprise:acme
department:fin#parent@enterprise:acme
department:fin#scoped_admin@employee:wu
department:fin#member@employee:wu
department:fin#member@employee:deng
module:crm#enterprise@enterprise:acme
module:crm#module_admin@employee:feng

enterprise:globex#platform@platform:p
enterprise:globex#creator@employee:gao
enterprise:globex#verified@employee:*
enterprise:globex#member@employee:gao
enterprise:globex#member@employee:wang
enterprise:globex#member@employee:ma
employee:wang#enterprise@enterprise:globex
employee:ma#enterprise@enterprise:globex

enterprise:initech#creator@employee:peter
enterprise:initech#member@employee:bill
employee:bill#enterprise@enterprise:initech

enterprise:hooli#creator@employee:hui
enterprise:hooli#verified@employee:*
enterprise:hooli#member@employee:gavin
employee:gavin#enterprise@enterprise:hooli

link:ag#platform@platform:p
link:ag#from_enterprise@enterprise:acme
link:ag#to_enterprise@enterprise:globex
link:ag#approved_by_from@employee:*
link:ag#approved_by_to@employee:*
link:ag#approved@employee:*
link:ag#granted@employee:li[expiration:2099-01-01T00:00:00Z]
employee:li#link@link:ag[expiration:2099-01-01T00:00:00Z]
link:ag#granted@employee:wang
employee:wang#link@link:ag
link:ag#granted@employee:zhao[expiration:2020-01-01T00:00:00Z]
employee:zhao#link@link:ag[expiration:2020-01-01T00:00:00Z]
link:ag#granted@employee:tom
employee:tom#link@link:ag
link:ag#granted@employee:bill
link:ag#chat@employee:li
link:ag#chat@employee:wang
link:ag#chat@employee:zhao
link:ag#video_meeting@employee:wang[expiration:2020-06-30T00:00:00Z]
link:ag#file_transfer@employee:li[file_size_limit:{"max_bytes":1000}]
link:ag#video_meeting@employee:li[within_hours:{"tz":"+08:00","from_hour":9,"to_hour":18}]
link:ag#granted@employee:deng
employee:deng#link@link:ag
link:ag#chat@employee:deng
link:ag#file_transfer@employee:deng
link:ag#file_transfer_withheld@department:fin#member
link:ag#chat_withheld@employee:wang

link:project#platform@platform:p
link:project#from_enterprise@enterprise:acme
link:project#to_enterprise@enterprise:globex
link:project#approved_by_from@employee:*[expiration:2026-03-01T00:00:00Z]
link:project#approved_by_to@employee:*[expiration:2026-03-01T00:00:00Z]
link:project#approved@employee:*[expiration:2026-03-01T00:00:00Z]
link:project#granted@employee:zhao
employee:zhao#link@link:project
link:project#granted@employee:ma
employee:ma#link@link:project

link:ai#from_enterprise@enterprise:acme
link:ai#to_enterprise@enterprise:initech
link:ai#approved_by_from@employee:*
link:ai#approved_by_to@employee:*
link:ai#approved@employee:*
link:ai#granted@employee:li
employee:li#link@link:ai
link:ai#granted@employee:bill
employee:bill#link@link:ai

link:ah#from_enterprise@enterprise:acme
link:ah#to_enterprise@enterprise:hooli
link:ah#approved_by_from@employee:*
link:ah#approved_by_to@employee:*

region:north#viewer@employee:zhang
crm_customer:c42#enterprise@enterprise:acme
crm_customer:c42#region@region:north
crm_customer:c42#owner_department@department:sales_east
crm_customer:c42#sales_rep@employee:zhao
crm_customer:c42#viewer@employee:xu
crm_customer:c42#viewer@employee:deng
crm_customer:c42#viewer@department:hr_team#member
crm_customer:c42#editor@employee:lin
crm_customer:c42#manager@employee:guo
crm_customer:c42#finance_only@employee:deng
crm_customer:c42#finance_only@department:fin#member
crm_customer:c7#enterprise@enterprise:acme
crm_customer:c7#editor@employee:zhao
crm_customer:c7#owner_department@department:sales_west
crm_customer:c8#enterprise@enterprise:acme
crm_customer:c8#owner_department@department:sales
crm_customer:g1#enterprise@enterprise:globex
crm_customer:g1#sales_rep@employee:wang

crm_customer:c9#enterprise@enterprise:acme
crm_customer:c9#sales_rep@employee:li

delegation:d1#owner@employee:li
delegation:d1#account@crm_customer:c9
delegation:d1#delegate@employee:zhao
delegation:d1#order_management@employee:*
delegation:d2#owner@employee:li
delegation:d2#account@crm_customer:c9
delegation:d2#delegate@enterprise:globex#member
delegation:d2#payment_management@employee:*

license:l1#enterprise@enterprise:acme
license:l1#module@module:crm
license:l1#term@employee:*[license_valid:{"expires_at":"2099-01-01T00:00:00Z"}]
license:l1#seat_limit@seat_count:2
license:l1#seat@employee:li
license:l1#seat@employee:zhao[expiration:2020-01-01T00:00:00Z]
license:l1#seat@employee:wang
license:l2#enterprise@enterprise:acme
license:l2#term@employee:*[license_valid:{"expires_at":"2020-06-30T00:00:00Z"}]
license:l2#seat_limit@seat_count:1
license:l2#seat@employee:li
`

type domainCase struct {
	q    string // resource#permission@subject
	ctx  string // caveat context as JSON, or ""
	want eval.Permissionship
}

const (
	yes  = eval.HasPermission
	no   = eval.NoPermission
	cond = eval.ConditionalPermission
)

var enterpriseCases = []domainCase{
	// Enterprise roles: creator > super_admin > member.
	{q: "enterprise:acme#manage_admins@employee:chen", want: yes},
	{q: "enterprise:acme#manage_admins@employee:liu", want: no},
	{q: "enterprise:acme#administer@employee:chen", want: yes},
	{q: "enterprise:acme#administer@employee:liu", want: yes},
	{q: "enterprise:acme#administer@employee:qin", want: no},
	{q: "enterprise:acme#message_internal@employee:zhao", want: yes},
	{q: "enterprise:acme#message_internal@employee:wang", want: no},
	{q: "enterprise:acme#verify@employee:ada", want: yes},
	{q: "enterprise:acme#verify@employee:chen", want: no},
	// Nested departments: members include sub-departments' members.
	{q: "department:sales#member@employee:zhao", want: yes},
	{q: "enterprise:acme#member@employee:zhao", want: yes},
	{q: "enterprise:acme#member@employee:qian", want: yes},
	{q: "department:hr#member@employee:zhao", want: no},
	{q: "department:sales_east#member@employee:li", want: no},
	// Scoped admins: their department and below, never beside or above.
	{q: "department:hr#manage@employee:sun", want: yes},
	{q: "department:hr_team#manage@employee:sun", want: yes},
	{q: "department:fin#manage@employee:sun", want: no},
	{q: "department:sales#manage@employee:sun", want: no},
	{q: "department:sales_east#manage@employee:qin", want: yes},
	{q: "department:sales#manage@employee:he", want: no},
	{q: "department:hr_team#manage@employee:wu", want: no},
	{q: "department:fin#manage@employee:liu", want: yes},
	{q: "department:hr_team#manage@employee:chen", want: yes},
	// Modules.
	{q: "module:crm#configure@employee:feng", want: yes},
	{q: "module:crm#configure@employee:liu", want: yes},
	{q: "module:crm#configure@employee:sun", want: no},
	// Cross-enterprise messaging over the approved acme<->globex link.
	{q: "link:ag#usable_by@employee:li", want: yes},
	{q: "link:ag#usable_by@employee:wang", want: yes},
	{q: "employee:wang#can_message@employee:li", want: yes},
	{q: "employee:li#can_message@employee:wang", want: yes},
	{q: "employee:li#can_message@employee:zhao", want: yes}, // colleagues
	{q: "employee:wang#can_message@employee:ma", want: yes}, // colleagues
	// Unexpired vs expired grants.
	{q: "link:ag#usable_by@employee:zhao", want: no},
	{q: "employee:wang#can_message@employee:zhao", want: no},
	{q: "employee:zhao#can_message@employee:wang", want: no},
	// Not granted, or granted but outside both enterprises.
	{q: "employee:li#can_message@employee:ma", want: no},
	{q: "link:ag#usable_by@employee:bill", want: no},
	// Unverified enterprise (initech) and unapproved link (hooli).
	{q: "link:ai#usable_by@employee:li", want: no},
	{q: "employee:bill#can_message@employee:li", want: no},
	{q: "employee:li#can_message@employee:bill", want: no},
	{q: "link:ah#usable_by@employee:li", want: no},
	{q: "employee:gavin#can_message@employee:li", want: no},
	{q: "employee:li#can_message@employee:gavin", want: no},
	// Capabilities.
	{q: "link:ag#use_chat@employee:li", want: yes},
	{q: "link:ag#use_chat@employee:zhao", want: no},
	{q: "link:ag#use_chat@employee:ma", want: no},
	{q: "link:ag#use_video_meeting@employee:wang", want: no},
	// Video within hours (9:00-18:00 at UTC+8), decided by the caller's now.
	{q: "link:ag#use_video_meeting@employee:li", want: cond},
	{q: "link:ag#use_video_meeting@employee:li", ctx: `{"now": "2026-01-01T01:00:00Z"}`, want: yes},
	{q: "link:ag#use_video_meeting@employee:li", ctx: `{"now": "2026-01-01T10:00:00Z"}`, want: no},
	// Each enterprise narrows its own people: acme withheld file transfer
	// from finance, globex chat from wang.
	{q: "link:ag#use_chat@employee:deng", want: yes},
	{q: "link:ag#use_file_transfer@employee:deng", want: no},
	{q: "link:ag#use_chat@employee:wang", want: no},
	{q: "link:ag#usable_by@employee:wang", want: yes},
	{q: "link:ag#use_screen_share@employee:li", want: no},
	{q: "link:ag#use_file_transfer@employee:li", want: cond},
	{q: "link:ag#use_file_transfer@employee:li", ctx: `{"size": 10}`, want: yes},
	{q: "link:ag#use_file_transfer@employee:li", ctx: `{"size": 5000}`, want: no},
	{q: "link:ag#manage_grants@employee:gao", want: yes},
	{q: "link:ag#manage_grants@employee:li", want: no},
	{q: "link:ag#approve@employee:ada", want: yes},
	// The link lifecycle: who may apply and approve each side.
	{q: "enterprise:acme#apply_for_link@employee:zhao", want: yes},
	{q: "enterprise:initech#apply_for_link@employee:bill", want: no},
	{q: "link:ag#approve_as_from@employee:liu", want: yes},
	{q: "link:ag#approve_as_from@employee:gao", want: no},
	{q: "link:ag#approve_as_to@employee:gao", want: yes},
	{q: "link:ag#approve_as_to@employee:ada", want: no},
	{q: "link:ag#approve@employee:liu", want: no},
	{q: "link:ag#active@employee:li", want: yes},
	// ah: both enterprises approved, the platform not yet.
	{q: "link:ah#active@employee:li", want: no},
	// project: a link for a project that ends on 2026-03-01 (the clock is
	// at 2026-01-01): usable until then.
	{q: "link:project#usable_by@employee:zhao", want: yes},
	{q: "employee:ma#can_message@employee:zhao", want: yes},
	{q: "employee:zhao#can_message@employee:ma", want: yes},
	// CRM: manager > editor > viewer; region arrows; admins; finance exclusion.
	{q: "crm_customer:c42#view@employee:guo", want: yes},
	{q: "crm_customer:c42#edit@employee:guo", want: yes},
	{q: "crm_customer:c42#delete@employee:guo", want: yes},
	{q: "crm_customer:c42#view@employee:lin", want: yes},
	{q: "crm_customer:c42#edit@employee:lin", want: yes},
	{q: "crm_customer:c42#delete@employee:lin", want: no},
	{q: "crm_customer:c42#view@employee:xu", want: yes},
	{q: "crm_customer:c42#edit@employee:xu", want: no},
	{q: "crm_customer:c42#edit@employee:zhao", want: yes}, // sales rep
	{q: "crm_customer:c42#view@employee:zhao", want: yes},
	{q: "crm_customer:c42#delete@employee:zhao", want: no},
	{q: "crm_customer:c42#view@employee:zhang", want: yes}, // region->viewer
	{q: "crm_customer:c42#edit@employee:zhang", want: no},
	{q: "crm_customer:c7#view@employee:zhang", want: no},
	{q: "crm_customer:c42#view@employee:qian", want: yes}, // department userset
	{q: "crm_customer:c42#view@employee:liu", want: yes},  // enterprise->administer
	{q: "crm_customer:c42#set_permissions@employee:liu", want: yes},
	{q: "crm_customer:c42#delete@employee:liu", want: no},
	{q: "crm_customer:g1#view@employee:liu", want: no},
	{q: "crm_customer:g1#view@employee:gao", want: yes},
	{q: "crm_customer:c42#view_contact@employee:xu", want: yes},
	{q: "crm_customer:c42#view@employee:deng", want: yes},
	{q: "crm_customer:c42#view_contact@employee:deng", want: no},
	{q: "crm_customer:c42#finance_view@employee:deng", want: yes},
	{q: "crm_customer:c42#finance_view@employee:wu", want: yes},
	{q: "crm_customer:c42#view@employee:wu", want: no},
	{q: "crm_customer:c42#finance_view@employee:guo", want: no},
	// Department data scope: a manager sees the records of their department
	// and below, never a sibling's or those above.
	{q: "crm_customer:c42#view@employee:pan", want: yes},
	{q: "crm_customer:c42#view@employee:qin", want: yes},
	{q: "crm_customer:c7#view@employee:qin", want: yes},
	{q: "crm_customer:c8#view@employee:qin", want: yes},
	{q: "crm_customer:c7#view@employee:yang", want: yes},
	{q: "crm_customer:c42#view@employee:yang", want: no},
	{q: "crm_customer:c7#view@employee:pan", want: no},
	{q: "crm_customer:c8#view@employee:pan", want: no},
	{q: "crm_customer:c8#view@employee:he", want: no}, // a scoped admin manages, does not see records
	{q: "crm_customer:c42#edit@employee:pan", want: no},
	// Delegation: only the chosen kinds.
	{q: "delegation:d1#manage_orders@employee:zhao", want: yes},
	{q: "delegation:d1#manage_payments@employee:zhao", want: no},
	{q: "delegation:d1#manage_orders@employee:li", want: yes},
	{q: "delegation:d1#revoke@employee:zhao", want: no},
	{q: "delegation:d2#manage_payments@employee:ma", want: yes},
	{q: "delegation:d2#manage_orders@employee:ma", want: no},
	{q: "delegation:d2#manage_payments@employee:bill", want: no},
	// Licences: seat & member & unexpired term.
	{q: "license:l1#can_use@employee:li", ctx: `{"now": "2030-01-01T00:00:00Z"}`, want: yes},
	{q: "license:l1#can_use@employee:li", want: cond},
	{q: "license:l1#can_use@employee:zhao", ctx: `{"now": "2030-01-01T00:00:00Z"}`, want: no},
	{q: "license:l1#can_use@employee:wang", ctx: `{"now": "2030-01-01T00:00:00Z"}`, want: no},
	{q: "license:l2#can_use@employee:li", ctx: `{"now": "2030-01-01T00:00:00Z"}`, want: no},
	{q: "license:l1#assign_seats@employee:feng", want: yes},
	{q: "license:l1#assign_seats@employee:li", want: no},
	// tom has not left yet.
	{q: "employee:li#can_message@employee:tom", want: yes},
	{q: "link:ag#usable_by@employee:tom", want: yes},
}

// tomLeaves is the write that removes an employee who leaves acme: every
// membership and grant, in one transaction.
var tomLeaves = []string{
	"enterprise:acme#member@employee:tom",
	"employee:tom#enterprise@enterprise:acme",
	"link:ag#granted@employee:tom",
	"employee:tom#link@link:ag",
}

var afterTomLeft = []domainCase{
	{q: "employee:li#can_message@employee:tom", want: no},
	{q: "employee:tom#can_message@employee:li", want: no},
	{q: "employee:wang#can_message@employee:tom", want: no},
	{q: "link:ag#usable_by@employee:tom", want: no},
	{q: "enterprise:acme#message_internal@employee:tom", want: no},
	{q: "enterprise:acme#member@employee:tom", want: no},
}

// backend opens a fresh store for the domain test.
type backend struct {
	name string
	open func(t *testing.T, now func() time.Time) store.Store
}

// enterpriseFixture opens an engine over a fresh store of b, on the
// fixture's clock with a long quantum, and writes schemaText.
func (b backend) enterpriseFixture(t *testing.T, schemaText []byte) *fixture {
	t.Helper()
	clk := newClock()
	eng, err := engine.Open(t.Context(), b.open(t, clk.Now), engine.Options{Now: clk.Now, Quantum: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	f := &fixture{t: t, ctx: t.Context(), eng: eng, clk: clk}
	if _, _, err := eng.WriteSchema(f.ctx, "admin", string(schemaText)); err != nil {
		t.Fatal(err)
	}
	return f
}

func backends() []backend {
	return []backend{
		{"memstore", func(t *testing.T, now func() time.Time) store.Store {
			st := memstore.New(memstore.Options{Now: now})
			t.Cleanup(func() { st.Close() })
			return st
		}},
		pebbleBackend(),
	}
}

func TestEnterpriseDomain(t *testing.T) {
	schemaText, err := os.ReadFile("../examples/enterprise/schema.zed")
	if err != nil {
		t.Fatal(err)
	}
	if len(enterpriseCases) < 60 {
		t.Fatalf("only %d domain cases", len(enterpriseCases))
	}
	for _, b := range backends() {
		if b.open == nil {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			f := b.enterpriseFixture(t, schemaText)
			var rels []string
			for _, line := range strings.Split(enterpriseData, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					rels = append(rels, line)
				}
			}
			z := f.touch(rels...)
			f.runCases(engine.AtLeastAsFresh(z), enterpriseCases)
			// Warm the quantized revision, then tom leaves.
			f.runCases(engine.MinimizeLatency(), enterpriseCases[len(enterpriseCases)-2:])
			left := f.remove(tomLeaves...)
			f.runCases(engine.AtLeastAsFresh(left), afterTomLeft)
			// At the revision before the write he could still message li;
			// the stale, quantized revision may still say so too.
			f.runCases(engine.AtExactSnapshot(z), enterpriseCases[len(enterpriseCases)-2:])
			if got, at := f.check(engine.MinimizeLatency(), "employee:li#can_message@employee:tom"); at == left || got != yes {
				t.Errorf("minimize_latency inside the quantum moved to the new revision (%v)", got)
			}
		})
	}
}

func (f *fixture) runCases(c engine.Consistency, cases []domainCase) {
	f.t.Helper()
	for _, tc := range cases {
		r := mustParse(f.t, tc.q)
		req := engine.CheckRequest{Consistency: c, CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}}
		if tc.ctx != "" {
			m, err := tuple.ParseContext(tc.ctx)
			if err != nil {
				f.t.Fatal(err)
			}
			req.Context = m
		}
		resp, err := f.eng.Check(f.ctx, req)
		if err != nil {
			f.t.Errorf("%s %s: %v", tc.q, tc.ctx, err)
			continue
		}
		if resp.Permissionship != tc.want {
			f.t.Errorf("%s %s = %v, want %v", tc.q, tc.ctx, resp.Permissionship, tc.want)
		}
	}
}

// TestEnterpriseLinkLifecycle: each of the three parties to a link revokes
// it with one write of one relationship, and every check at the returned
// zookie sees the link unusable; restoring the approval restores it. A
// link for a project ends with the project: once the injected clock passes
// the end date written on its approvals, nobody can use it, whatever the
// grants on it say.
func TestEnterpriseLinkLifecycle(t *testing.T) {
	schemaText, err := os.ReadFile("../examples/enterprise/schema.zed")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends() {
		if b.open == nil {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			f := b.enterpriseFixture(t, schemaText)
			var rels []string
			for _, line := range strings.Split(enterpriseData, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					rels = append(rels, line)
				}
			}
			z := f.touch(rels...)
			usable := []domainCase{
				{q: "link:ag#active@employee:li", want: yes},
				{q: "link:ag#usable_by@employee:li", want: yes},
				{q: "employee:wang#can_message@employee:li", want: yes},
				{q: "employee:li#can_message@employee:wang", want: yes},
			}
			revoked := []domainCase{
				{q: "link:ag#active@employee:li", want: no},
				{q: "link:ag#usable_by@employee:li", want: no},
				{q: "link:ag#use_chat@employee:li", want: no},
				{q: "employee:wang#can_message@employee:li", want: no},
				{q: "employee:li#can_message@employee:wang", want: no},
				// Colleagues are unaffected.
				{q: "employee:li#can_message@employee:zhao", want: yes},
			}
			f.runCases(engine.AtLeastAsFresh(z), usable)
			// The platform cannot take its approval back while grants stand
			// (grants_need_approval): it revokes with the grants, in one
			// write, which TestInvariantWrites and the validation file cover.
			if _, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Updates: []engine.Update{{Op: engine.OpDelete, Relationship: mustParse(t, "link:ag#approved@employee:*")}}}); !errors.Is(err, engine.ErrInvariantViolated) {
				t.Fatalf("the platform deletes its approval alone: %v", err)
			}
			for _, approval := range []string{
				"link:ag#approved_by_from@employee:*", // acme's admins revoke
				"link:ag#approved_by_to@employee:*",   // globex's admins revoke
			} {
				gone := f.remove(approval)
				f.runCases(engine.AtLeastAsFresh(gone), revoked)
				f.runCases(engine.AtExactSnapshot(z), usable)
				z = f.touch(approval)
				f.runCases(engine.AtLeastAsFresh(z), usable)
			}

			// The project link ends on 2026-03-01; grants on it have no end.
			project := []string{
				"link:project#active@employee:zhao",
				"link:project#usable_by@employee:zhao",
				"employee:ma#can_message@employee:zhao",
				"employee:zhao#can_message@employee:ma",
			}
			for _, q := range project {
				if got, _ := f.check(engine.FullyConsistent(), q); got != yes {
					t.Errorf("before the project ends: %s = %v", q, got)
				}
			}
			f.clk.Advance(59*24*time.Hour - time.Second) // 2026-02-28T23:59:59Z
			if got, _ := f.check(engine.FullyConsistent(), project[1]); got != yes {
				t.Errorf("a second before the end: %s = %v", project[1], got)
			}
			f.clk.Advance(time.Second)
			for _, q := range project {
				if got, _ := f.check(engine.FullyConsistent(), q); got != no {
					t.Errorf("once the project ended: %s = %v", q, got)
				}
			}
			f.runCases(engine.FullyConsistent(), usable) // ag has no end
		})
	}
}
