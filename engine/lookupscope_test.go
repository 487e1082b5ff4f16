package engine_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// scopeData is a small CRM: customers in two regions and under a tree of
// departments (sales > east > eastdesk), region viewers, a department
// granted on c1, and a super admin who sees everything.
const scopeData = `
enterprise:acme#super_admin@employee:boss
crm_customer:c1#enterprise@enterprise:acme
crm_customer:c2#enterprise@enterprise:acme
crm_customer:c3#enterprise@enterprise:acme
crm_customer:c4#enterprise@enterprise:acme
crm_customer:c5#enterprise@enterprise:acme
crm_customer:c6#enterprise@enterprise:acme
crm_customer:c7#enterprise@enterprise:acme
crm_customer:c8#enterprise@enterprise:acme
crm_customer:c1#region@region:north
crm_customer:c2#region@region:north
crm_customer:c3#region@region:north
crm_customer:c4#region@region:south
crm_customer:c5#region@region:south
region:north#viewer@employee:ann
region:south#viewer@employee:bob
crm_customer:c4#viewer@employee:ann
crm_customer:c6#viewer@employee:ann
department:sales#parent@enterprise:acme
department:east#parent@department:sales
department:eastdesk#parent@department:east
crm_customer:c7#owner_department@department:eastdesk
crm_customer:c8#owner_department@department:sales
department:sales#member@department:east#member
department:sales#member@employee:dora
department:east#member@employee:ann
department:east#member@employee:carl
crm_customer:c1#viewer@department:sales#member
`

func scopeFixture(t *testing.T, b backend) *fixture {
	t.Helper()
	schemaText, err := os.ReadFile("../examples/enterprise/schema.zed")
	if err != nil {
		t.Fatal(err)
	}
	f := b.enterpriseFixture(t, []byte(withoutInvariants(string(schemaText)))) // the sample keeps no invariants
	f.touch(strings.Fields(scopeData)...)
	return f
}

// TestScopedLookups runs LookupResources through an object, LookupSubjects
// within a subject set, and both counts on the enterprise schema, on every
// backend (PostgreSQL too: the walk down from a scope reads the reverse
// index by subject object, whatever the subject relation), with their
// pages and cursors.
func TestScopedLookups(t *testing.T) {
	for _, b := range append(backends(), postgresBackend()) {
		if b.open == nil {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			f := scopeFixture(t, b)
			fc := engine.FullyConsistent()
			resources := func(sub string, th *engine.Through, limit int, cursor string) ([]string, string, error) {
				seq, _, err := f.eng.LookupResources(f.ctx, engine.LookupResourcesRequest{
					Consistency: fc,
					LookupResourcesRequest: engine.LookupResourcesQuery{ResourceType: "crm_customer", Permission: "view",
						Subject: tuple.SubjectRef{Type: "employee", ID: sub}, Through: th, Limit: limit},
					Cursor: cursor,
				})
				if err != nil {
					return nil, "", err
				}
				var ids []string
				last := ""
				for r, err := range seq {
					if err != nil {
						return nil, "", err
					}
					ids, last = append(ids, r.ResourceID), r.Cursor()
				}
				return ids, last, nil
			}
			north := &engine.Through{Object: tuple.ObjectRef{Type: "region", ID: "north"}}
			sales := &engine.Through{Object: tuple.ObjectRef{Type: "department", ID: "sales"}, Relations: []string{"owner_department", "department#parent"}}
			for _, tc := range []struct {
				sub  string
				th   *engine.Through
				want []string
			}{
				{"ann", nil, []string{"c1", "c2", "c3", "c4", "c6"}},
				{"ann", north, []string{"c1", "c2", "c3"}},
				{"ann", &engine.Through{Object: tuple.ObjectRef{Type: "region", ID: "south"}}, []string{"c4"}},
				{"bob", north, nil},
				{"boss", north, []string{"c1", "c2", "c3"}},
				{"boss", sales, []string{"c7", "c8"}},
				// The default relations are the schema's arrows: owner_department and parent among them.
				{"boss", &engine.Through{Object: tuple.ObjectRef{Type: "department", ID: "east"}}, []string{"c7"}},
				{"boss", &engine.Through{Object: tuple.ObjectRef{Type: "enterprise", ID: "acme"}}, []string{"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"}},
				// A chain follows a subject set's object: c1#viewer@department:sales#member.
				{"boss", &engine.Through{Object: tuple.ObjectRef{Type: "department", ID: "sales"}, Relations: []string{"crm_customer#viewer"}}, []string{"c1"}},
				{"ann", &engine.Through{Object: tuple.ObjectRef{Type: "department", ID: "east"}, Relations: []string{"crm_customer#viewer"}}, nil},
			} {
				got, _, err := resources(tc.sub, tc.th, 0, "")
				if err != nil || !slices.Equal(got, tc.want) {
					t.Errorf("crm_customer#view@employee:%s through %s = %v (%v), want %v", tc.sub, tc.th, got, err, tc.want)
				}
			}
			// Pages of one follow their cursors through the scope.
			var paged []string
			cursor := ""
			for range 5 {
				page, c, err := resources("boss", north, 1, cursor)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				paged, cursor = append(paged, page...), c
			}
			if !slices.Equal(paged, []string{"c1", "c2", "c3"}) {
				t.Errorf("pages through region:north = %v", paged)
			}
			// A cursor resumes only the listing it came from.
			_, unscoped, err := resources("boss", nil, 1, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := resources("boss", north, 1, unscoped); !errors.Is(err, engine.ErrInvalidCursor) {
				t.Errorf("an unscoped cursor on a scoped listing: %v, want ErrInvalidCursor", err)
			}
			if _, _, err := resources("boss", sales, 1, cursor); !errors.Is(err, engine.ErrInvalidCursor) {
				t.Errorf("a cursor of another scope: %v, want ErrInvalidCursor", err)
			}

			subjects := func(within *tuple.SubjectRef, limit int, cursor string) ([]string, string, error) {
				seq, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{
					Consistency: fc,
					LookupSubjectsRequest: engine.LookupSubjectsQuery{Resource: tuple.ObjectRef{Type: "crm_customer", ID: "c1"}, Permission: "view",
						SubjectType: "employee", Within: within, Limit: limit},
					Cursor: cursor,
				})
				if err != nil {
					return nil, "", err
				}
				var ids []string
				last := ""
				for r, err := range seq {
					if err != nil {
						return nil, "", err
					}
					ids, last = append(ids, r.SubjectID), r.Cursor()
				}
				return ids, last, nil
			}
			for _, tc := range []struct {
				within *tuple.SubjectRef
				want   []string
			}{
				{nil, []string{"ann", "boss", "carl", "dora"}},
				{&tuple.SubjectRef{Type: "department", ID: "east", Relation: "member"}, []string{"ann", "carl"}},
				{&tuple.SubjectRef{Type: "department", ID: "sales", Relation: "member"}, []string{"ann", "carl", "dora"}},
				{&tuple.SubjectRef{Type: "enterprise", ID: "acme", Relation: "administer"}, []string{"boss"}},
				{&tuple.SubjectRef{Type: "region", ID: "south", Relation: "viewer"}, nil},
			} {
				got, _, err := subjects(tc.within, 0, "")
				if err != nil || !slices.Equal(got, tc.want) {
					t.Errorf("crm_customer:c1#view employees within %v = %v (%v), want %v", tc.within, got, err, tc.want)
				}
			}
			salesMembers := &tuple.SubjectRef{Type: "department", ID: "sales", Relation: "member"}
			paged, cursor = nil, ""
			for range 5 {
				page, c, err := subjects(salesMembers, 1, cursor)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				paged, cursor = append(paged, page...), c
			}
			if !slices.Equal(paged, []string{"ann", "carl", "dora"}) {
				t.Errorf("pages within department:sales#member = %v", paged)
			}
			if _, _, err := subjects(&tuple.SubjectRef{Type: "department", ID: "east", Relation: "member"}, 1, cursor); !errors.Is(err, engine.ErrInvalidCursor) {
				t.Errorf("a cursor of another subject set: %v, want ErrInvalidCursor", err)
			}

			for _, tc := range []struct {
				sub                string
				th                 *engine.Through
				count, conditional int
			}{
				{"boss", nil, 8, 0},
				{"boss", north, 3, 0},
				{"ann", nil, 5, 0},
				{"bob", north, 0, 0},
			} {
				got, err := f.eng.CountResources(f.ctx, engine.CountResourcesRequest{Consistency: fc,
					LookupResourcesRequest: engine.LookupResourcesQuery{ResourceType: "crm_customer", Permission: "view",
						Subject: tuple.SubjectRef{Type: "employee", ID: tc.sub}, Through: tc.th}})
				if err != nil || got.Count != tc.count || got.Conditional != tc.conditional || got.Zookie == "" {
					t.Errorf("CountResources(%s through %s) = %+v (%v), want %d", tc.sub, tc.th, got, err, tc.count)
				}
			}
			for _, tc := range []struct {
				f    tuple.Filter
				want int
			}{
				{tuple.Filter{}, len(strings.Fields(scopeData))},
				{tuple.Filter{ResourceType: "crm_customer", Relation: "enterprise"}, 8},
				{tuple.Filter{ResourceType: "crm_customer", Relation: "region", Subject: &tuple.SubjectFilter{Type: "region", ID: "north"}}, 3},
				{tuple.Filter{ResourceType: "department", Subject: &tuple.SubjectFilter{Type: "department", Relation: "member"}}, 1},
				{tuple.Filter{ResourceType: "nothing"}, 0},
			} {
				got, zk, err := f.eng.CountRelationships(f.ctx, fc, tc.f)
				if err != nil || got != tc.want || zk == "" {
					t.Errorf("CountRelationships(%+v) = %d %q (%v), want %d", tc.f, got, zk, err, tc.want)
				}
			}
		})
	}
}

// TestScopedLookupErrors: a malformed scope fails with the error that
// names it, before anything is read.
func TestScopedLookupErrors(t *testing.T) {
	f := scopeFixture(t, backends()[0])
	fc := engine.FullyConsistent()
	anne := tuple.SubjectRef{Type: "employee", ID: "ann"}
	res := func(th engine.Through) error {
		seq, _, err := f.eng.LookupResources(f.ctx, engine.LookupResourcesRequest{Consistency: fc,
			LookupResourcesRequest: engine.LookupResourcesQuery{ResourceType: "crm_customer", Permission: "view", Subject: anne, Through: &th}})
		if err != nil {
			return err
		}
		for _, err := range seq {
			if err != nil {
				return err
			}
		}
		return nil
	}
	sub := func(w tuple.SubjectRef) error {
		seq, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{Consistency: fc,
			LookupSubjectsRequest: engine.LookupSubjectsQuery{Resource: tuple.ObjectRef{Type: "crm_customer", ID: "c1"}, Permission: "view", SubjectType: "employee", Within: &w}})
		if err != nil {
			return err
		}
		for _, err := range seq {
			if err != nil {
				return err
			}
		}
		return nil
	}
	north := tuple.ObjectRef{Type: "region", ID: "north"}
	for _, tc := range []struct {
		name string
		err  error
		want error
		msg  string
	}{
		{"unknown scope type", res(engine.Through{Object: tuple.ObjectRef{Type: "galaxy", ID: "x"}}), engine.ErrUnknownDefinition, "galaxy"},
		{"wildcard scope", res(engine.Through{Object: tuple.ObjectRef{Type: "region", ID: "*"}}), engine.ErrInvalidRequest, "concrete id"},
		{"permission followed", res(engine.Through{Object: north, Relations: []string{"view"}}), engine.ErrInvalidRequest, "crm_customer#view is a permission"},
		{"no such relation", res(engine.Through{Object: north, Relations: []string{"nowhere"}}), engine.ErrInvalidRequest, `"nowhere": no definition has it`},
		{"unknown qualified relation", res(engine.Through{Object: north, Relations: []string{"crm_customer#nowhere"}}), engine.ErrUnknownRelation, "nowhere"},
		{"no chain", res(engine.Through{Object: north, Relations: []string{"sales_rep"}}), engine.ErrInvalidRequest, "no chain of the relations [crm_customer#sales_rep] leads from crm_customer to region"},
		{"within an object", sub(tuple.SubjectRef{Type: "department", ID: "east"}), engine.ErrInvalidRequest, "subject set"},
		{"within unknown relation", sub(tuple.SubjectRef{Type: "department", ID: "east", Relation: "nobody"}), engine.ErrUnknownRelation, "nobody"},
		{"within unknown type", sub(tuple.SubjectRef{Type: "galaxy", ID: "x", Relation: "member"}), engine.ErrUnknownDefinition, "galaxy"},
	} {
		if !errors.Is(tc.err, tc.want) || !strings.Contains(tc.err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v containing %q", tc.name, tc.err, tc.want, tc.msg)
		}
	}
	_, err := f.eng.CountResources(f.ctx, engine.CountResourcesRequest{Consistency: fc,
		LookupResourcesRequest: engine.LookupResourcesQuery{ResourceType: "crm_customer", Permission: "view", Subject: anne, Limit: 3}})
	if !errors.Is(err, engine.ErrInvalidRequest) {
		t.Errorf("CountResources with a limit: %v", err)
	}
	if _, _, err := f.eng.CountRelationships(f.ctx, fc, tuple.Filter{ResourceType: "Bad Type"}); !errors.Is(err, engine.ErrInvalidRequest) {
		t.Errorf("CountRelationships with a bad type: %v", err)
	}
}
