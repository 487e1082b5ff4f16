package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCheckPermissionSetAndWith: pemba check RESOURCE#*@SUBJECT prints a
// line per permission, a list or several resources make a matrix, and
// --with adds contextual relationships to check, expand and both lookups
// without writing them.
func TestCheckPermissionSetAndWith(t *testing.T) {
	addr := startServer(t)
	zk := seed(t, addr)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"check", "crm_customer:c1#*@employee:li"}, "crm_customer:c1#edit false\ncrm_customer:c1#view true\ncrm_customer:c1#delete false\ncrm_customer:c1#set_permissions false\ncrm_customer:c1#finance_view false\ncrm_customer:c1#view_contact true"},
		{[]string{"check", "crm_customer:c1#view,delete@employee:chen", "--resource", "crm_customer:c2"}, "crm_customer:c1#view true\ncrm_customer:c1#delete false\ncrm_customer:c2#view false\ncrm_customer:c2#delete false"},
		{[]string{"check", "crm_customer:c2#view,edit@employee:li", "--with", "crm_customer:c2#editor@employee:li"}, "crm_customer:c2#view true\ncrm_customer:c2#edit true"},
		{[]string{"check", "crm_customer:c2#view@employee:li", "--with", "crm_customer:c2#viewer@employee:li", "--with", "crm_customer:c2#finance_only@employee:li"}, "true"},
		{[]string{"check", "crm_customer:c2#view@employee:li"}, "false"},
		{[]string{"lookup-resources", "crm_customer#view@employee:wang", "--with", "crm_customer:c9#manager@employee:wang"}, "crm_customer:c9"},
		{[]string{"lookup-subjects", "crm_customer:c1#delete", "employee", "--with", "crm_customer:c1#manager@employee:wang"}, "employee:wang"},
	}
	for _, tt := range tests {
		got := strings.TrimSpace(must(t, addr, append(tt.args, "--zookie", zk)...))
		if got != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.args, got, tt.want)
		}
	}
	if out := must(t, addr, "expand", "crm_customer:c1#viewer", "--with", "crm_customer:c1#viewer@employee:wang"); !strings.Contains(out, "employee:wang") {
		t.Errorf("expand --with: no employee:wang in\n%s", out)
	}
	// Nothing was written.
	if out := must(t, addr, "relationship", "read", "--resource-type", "crm_customer"); strings.Contains(out, "wang") || strings.Contains(out, "c2") || strings.Contains(out, "c9") {
		t.Errorf("contextual relationships were written:\n%s", out)
	}
	// JSON: the columns and a row per resource.
	var got struct {
		Permissions []string `json:"permissions"`
		Rows        []struct {
			Resource string `json:"resource"`
			Cells    []struct {
				Permission string `json:"permission"`
				Allowed    bool   `json:"allowed"`
			} `json:"cells"`
		} `json:"rows"`
		Zookie string `json:"zookie"`
	}
	out := must(t, addr, "check", "--relations", "--output", "json", "crm_customer:c1#*@employee:li")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got.Permissions) < 10 || len(got.Rows) != 1 || len(got.Rows[0].Cells) != len(got.Permissions) || got.Zookie == "" {
		t.Fatalf("json %+v", got)
	}
	// Usage errors.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"check", "--exit-code", "crm_customer:c1#*@employee:li"}, "--exit-code takes one permission"},
		{[]string{"check", "--relations", "crm_customer:c1#view,edit@employee:li"}, "--relations goes with"},
		{[]string{"check", "crm_customer:c1#view,,edit@employee:li"}, "comma-separated"},
		{[]string{"check", "--with", "nonsense", "crm_customer:c1#view@employee:li"}, "-with"},
		{[]string{"check", "--resource", "nonsense", "crm_customer:c1#*@employee:li"}, "-resource"},
	} {
		r := pemba(t, addr, "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.msg)
		}
	}
	// A server-side refusal: a contextual relationship the schema does not
	// allow.
	if r := pemba(t, addr, "", "check", "--with", "crm_customer:c1#view@employee:li", "crm_customer:c1#view@employee:li"); r.code == 0 || !strings.Contains(r.stderr, "permission") {
		t.Errorf("invalid --with: exit %d, stderr %q", r.code, r.stderr)
	}
}
