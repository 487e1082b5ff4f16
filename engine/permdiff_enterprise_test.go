package engine_test

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden files")

// TestDiffPermissionsEnterpriseRevocation is the security team's question
// after a revocation, "what did this change remove?", on the enterprise
// example: first li's grant on the acme-globex link is revoked (the grant
// and its employee#link mirror), then the platform's approval of the link.
// The answers are golden (testdata/permdiff_enterprise.golden), and each
// is checked against a brute-force check of every employee pair at both
// zookies.
func TestDiffPermissionsEnterpriseRevocation(t *testing.T) {
	schemaText, err := os.ReadFile("../examples/enterprise/schema.zed")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../examples/enterprise/quickstart.relationships")
	if err != nil {
		t.Fatal(err)
	}
	f := backends()[0].enterpriseFixture(t, schemaText)
	var sample []string
	employees := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "//") {
			sample = append(sample, line)
			r := mustParse(t, line)
			for _, o := range []tuple.ObjectRef{r.Resource, r.Subject.Object()} {
				if o.Type == "employee" && o.ID != tuple.Wildcard {
					employees[o.ID] = true
				}
			}
		}
	}
	z0 := f.touch(sample...)
	z1 := f.remove("link:acme_globex#granted@employee:li", "employee:li#link@link:acme_globex")
	// The grants go with the approval: the grants_need_approval invariant
	// refuses a link's grants without it.
	z2 := f.remove("link:acme_globex#approved@employee:*", "link:acme_globex#granted@employee:wang", "link:acme_globex#granted@employee:zhao", "link:acme_globex#granted@employee:bill", "link:acme_globex#granted@employee:deng")

	var out strings.Builder
	scope := engine.PermissionScope{ResourceType: "employee", Permission: "can_message"}
	for _, step := range []struct {
		name     string
		from, to string
	}{
		{"revoke li's grant on link:acme_globex", z0, z1},
		{"revoke the platform's approval of link:acme_globex", z1, z2},
	} {
		d, err := f.eng.DiffPermissions(f.ctx, engine.DiffRequest{From: step.from, To: step.to, Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "# %s: %d relationship changes, %d candidates\n", step.name, d.Relationships, d.Candidates)
		got := map[[2]string]bool{}
		for c, err := range d.Changes {
			if err != nil {
				t.Fatal(err)
			}
			sign := "+"
			if c.Revoked() {
				sign = "-"
			}
			fmt.Fprintf(&out, "%s %s#%s@%s (%v -> %v)\n", sign, c.Resource, c.Permission, c.Subject, c.Before, c.After)
			got[[2]string{c.Resource.ID, c.Subject.ID}] = true
		}
		// Brute force: every (recipient, sender) pair at both zookies.
		for to := range employees {
			for from := range employees {
				q := engine.CheckQuery{Resource: tuple.ObjectRef{Type: "employee", ID: to}, Permission: "can_message", Subject: tuple.SubjectRef{Type: "employee", ID: from}}
				r0, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(step.from), CheckRequest: q})
				if err != nil {
					t.Fatal(err)
				}
				r1, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(step.to), CheckRequest: q})
				if err != nil {
					t.Fatal(err)
				}
				if changed := r0.Permissionship != r1.Permissionship; changed != got[[2]string{to, from}] {
					t.Errorf("%s: employee:%s#can_message@employee:%s changed=%v, diff says %v", step.name, to, from, changed, !changed)
				}
			}
		}
	}
	const golden = "testdata/permdiff_enterprise.golden"
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if out.String() != string(want) {
		t.Errorf("diff differs from %s (rerun with -update after checking):\n%s", golden, out.String())
	}
}
