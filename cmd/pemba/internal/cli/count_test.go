package cli

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestScopedLookupCommands runs lookup-resources --through, lookup-subjects
// --within, count resources and relationship count on the enterprise
// example's data.
func TestScopedLookupCommands(t *testing.T) {
	addr := startServer(t)
	must(t, addr, "schema", "write", filepath.Join(exampleDir, "schema.zed"))
	must(t, addr, "relationship", "import", filepath.Join(exampleDir, "quickstart.relationships"))
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"lookup-resources", "crm_customer#view@employee:liu"}, []string{"crm_customer:c13", "crm_customer:c42", "crm_customer:c7", "crm_customer:c99"}},
		{[]string{"lookup-resources", "crm_customer#view@employee:liu", "--through", "region:north"}, []string{"crm_customer:c13", "crm_customer:c42"}},
		{[]string{"lookup-resources", "crm_customer#view@employee:liu", "--through", "region:south", "--limit", "1"}, []string{"crm_customer:c7"}},
		// Nested departments: c42 sits in acme_sales_north_key, below acme_sales_north.
		{[]string{"lookup-resources", "crm_customer#view@employee:liu", "--through", "department:acme_sales_north", "--via", "owner_department,department#parent"}, []string{"crm_customer:c13", "crm_customer:c42"}},
		{[]string{"lookup-subjects", "crm_customer:c42#view", "employee", "--within", "department:acme_sales#member"}, []string{"employee:pan", "employee:qin", "employee:zhao", "employee:zhou"}},
		{[]string{"count", "resources", "crm_customer#view@employee:liu"}, []string{"4"}},
		{[]string{"count", "resources", "crm_customer#view@employee:liu", "--through", "region:north"}, []string{"2"}},
		// A contextual relationship counts as the lookup would see it.
		{[]string{"count", "resources", "crm_customer#view@employee:nobody", "--with", "crm_customer:c1#viewer@employee:nobody"}, []string{"1"}},
		{[]string{"relationship", "count", "--resource-type", "crm_customer", "--relation", "region"}, []string{"4"}},
		{[]string{"count", "relationships", "--subject", "region:north"}, []string{"2"}},
	} {
		if got := lines(must(t, addr, tc.args...)); !slices.Equal(got, tc.want) {
			t.Errorf("%q = %q, want %q", tc.args, got, tc.want)
		}
	}
	var counted struct {
		Count       int    `json:"count"`
		Conditional int    `json:"conditional_count"`
		Zookie      string `json:"zookie"`
	}
	out := must(t, addr, "count", "resources", "crm_customer#view@employee:liu", "--through", "region:south", "--output", "json")
	if err := json.Unmarshal([]byte(out), &counted); err != nil || counted.Count != 2 || counted.Zookie == "" {
		t.Errorf("count resources --output json = %s (%v)", out, err)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"lookup-resources", "crm_customer#view@employee:liu", "--via", "region"}, 2, "--via needs --through"},
		{[]string{"lookup-resources", "crm_customer#view@employee:liu", "--through", "region"}, 2, "--through"},
		{[]string{"lookup-subjects", "crm_customer:c42#view", "employee", "--within", "department:acme_sales"}, 2, "want a subject set"},
		{[]string{"lookup-resources", "crm_customer#view@employee:liu", "--through", "region:north", "--via", "sales_rep"}, 1, "no chain of the relations"},
		{[]string{"count", "resources", "crm_customer:c1#view@employee:liu"}, 2, "a type, not an object"},
		{[]string{"count"}, 2, "missing subcommand"},
	} {
		r := pemba(t, addr, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d mentioning %q", tc.args, r.code, r.stderr, tc.code, tc.msg)
		}
	}
}
