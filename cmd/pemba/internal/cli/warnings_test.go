package cli

import (
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
)

// TestServerWarnings: a command whose request names a deprecated
// relation prints the server's warning on standard error, once, in text
// and JSON output alike (standard output stays data); one naming nothing
// deprecated prints none.
func TestServerWarnings(t *testing.T) {
	if warningHeader != server.WarningHeader {
		t.Fatalf("warningHeader %q, the server sends %q", warningHeader, server.WarningHeader)
	}
	addr := startServerEngine(t, engine.Options{Warn: server.Warn}, server.Config{})
	r := pemba(t, addr, "definition user {}\ndefinition doc {\n\t@deprecated(\"use owner\")\n\trelation admin: user\n\trelation owner: user\n\tpermission view = admin + owner\n}\n", "schema", "write", "-")
	if r.code != 0 {
		t.Fatalf("schema write: %+v", r)
	}
	const warning = "warning: relation doc#admin is deprecated: use owner\n"
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{[]string{"relationship", "write", "doc:1#admin@user:anne", "doc:2#admin@user:anne"}, true},
		{[]string{"relationship", "write", "doc:1#owner@user:bob"}, false},
		{[]string{"check", "doc:1#admin@user:anne"}, true},
		{[]string{"check", "doc:1#view@user:anne"}, false},
		{[]string{"check", "--output", "json", "doc:1#admin@user:anne"}, true},
		{[]string{"lookup-resources", "doc#admin@user:anne"}, true},
		{[]string{"lookup-resources", "--output", "json", "doc#admin@user:anne"}, true},
	} {
		r := pemba(t, addr, "", tc.args...)
		if r.code != 0 {
			t.Errorf("%q: %+v", tc.args, r)
			continue
		}
		if n := strings.Count(r.stderr, warning); n != map[bool]int{true: 1}[tc.warn] {
			t.Errorf("%q: the warning appears %d times on stderr:\n%s", tc.args, n, r.stderr)
		}
		if strings.Contains(r.stdout, "deprecated") {
			t.Errorf("%q: the warning reached stdout:\n%s", tc.args, r.stdout)
		}
	}
}
