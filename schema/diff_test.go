package schema

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	const base = `definition user {}
definition group { relation member: user | group#member }
definition doc {
	relation viewer: user | group#member
	relation editor: user
	permission view = viewer + editor
}
caveat c(a int) { a > 1 }`
	const inv = `use invariants
definition user {}
definition team {
	relation owner: user
	relation member: user
	invariant cap = count(member) <= 10
	invariant members_need_owner = member requires owner
}`
	tests := []struct {
		name     string
		old, new string // "" means a nil schema
		want     []string
	}{
		{"identical", base, base, nil},
		{"nil old lists everything added", "", "definition user {}\ndefinition doc { relation viewer: user\n permission view = viewer }\ncaveat c(a int) { a > 1 }", []string{
			"definition added: doc",
			"relation added: doc#viewer",
			"permission added: doc#view",
			"definition added: user",
			"caveat added: c",
		}},
		{"nil new lists everything removed", "definition user { relation self: user }", "", []string{
			"definition removed: user",
			"relation removed: user#self",
		}},
		{"definition removed", "definition user {}\ndefinition team { relation member: user }", "definition user {}", []string{
			"definition removed: team",
			"relation removed: team#member",
		}},
		{"relation renamed", "definition user {}\ndefinition doc { relation editor: user }", "definition user {}\ndefinition doc { relation writer: user }", []string{
			"relation removed: doc#editor",
			"relation added: doc#writer",
		}},
		{"relation renamed through an alias", "definition user {}\ndefinition doc { relation admin: user }", "definition user {}\ndefinition doc {\n @renamed_from(admin)\n relation owner: user }", []string{
			"relation removed: doc#admin",
			"relation added: doc#owner: renamed from admin (its stored relationships are read as owner)",
		}},
		{"subject type removed", base, strings.Replace(base, "relation viewer: user | group#member", "relation viewer: user", 1), []string{
			"subject type removed: doc#viewer: group#member",
		}},
		{"subject type added", base, strings.Replace(base, "relation editor: user", "relation editor: user | user:*", 1), []string{
			"subject type added: doc#editor: user:*",
		}},
		{"caveat added to subject type", base, strings.Replace(base, "relation editor: user", "relation editor: user with c", 1), []string{
			"subject type removed: doc#editor: user",
			"subject type added: doc#editor: user with c",
		}},
		{"expiration added", base, strings.Replace(base, "relation editor: user", "relation editor: user | user with expiration", 1), []string{
			"subject type added: doc#editor: user with expiration",
		}},
		{"permission changed", base, strings.Replace(base, "permission view = viewer + editor", "permission view = viewer - editor", 1), []string{
			"permission changed: doc#view: viewer + editor => viewer - editor",
		}},
		{"relation becomes permission", "definition user {}\ndefinition doc { relation a: user\n relation b: user }", "definition user {}\ndefinition doc { relation a: user\n permission b = a }", []string{
			"relation removed: doc#b: now a permission",
			"permission added: doc#b",
		}},
		{"permission removed", base, strings.Replace(base, "permission view = viewer + editor", "", 1), []string{
			"permission removed: doc#view",
		}},
		{"caveat changed", base, strings.Replace(base, "a > 1", "a > 2", 1), []string{
			"caveat changed: c: (a int) { a > 1 } => (a int) { a > 2 }",
		}},
		{"caveat param changed", base, strings.Replace(base, "c(a int)", "c(a int, b string)", 1), []string{
			"caveat changed: c: (a int) { a > 1 } => (a int, b string) { a > 1 }",
		}},
		{"arrow loses a target", "definition user {}\ndefinition f { relation v: user }\ndefinition g { relation v: user }\ndefinition doc { relation p: f | g\n permission view = p.all(v) }",
			"definition user {}\ndefinition f { relation v: user }\ndefinition g { relation w: user }\ndefinition doc { relation p: f | g\n permission view = p.all(v) }", []string{
				"permission changed: doc#view: p.all(v) (no longer reaches p->g#v)",
				"relation removed: g#v",
				"relation added: g#w",
			}},
		{"parentheses only where needed", base, strings.Replace(base, "permission view = viewer + editor", "permission view = ((viewer - editor) & (viewer + editor)) - (editor - viewer)", 1), []string{
			"permission changed: doc#view: viewer + editor => (viewer - editor) & viewer + editor - (editor - viewer)",
		}},
		{"caveat removed", base, strings.Replace(base, "caveat c(a int) { a > 1 }", "", 1), []string{
			"caveat removed: c",
		}},
		{"arrow target gains a type", "definition user {}\ndefinition f { relation v: user }\ndefinition g {}\ndefinition doc { relation p: f | g\n permission view = p->v }",
			"definition user {}\ndefinition f { relation v: user }\ndefinition g { relation v: user }\ndefinition doc { relation p: f | g\n permission view = p->v }", []string{
				"permission changed: doc#view: p->v (now reaches p->g#v)",
				"relation added: g#v",
			}},
		{"invariant added", inv, strings.Replace(inv, "relation owner: user", "relation owner: user\n invariant one_owner = count(owner) == 1", 1), []string{
			"invariant added: team#one_owner: count(owner) == 1",
		}},
		{"invariant removed", inv, strings.Replace(inv, "invariant cap = count(member) <= 10", "", 1), []string{
			"invariant removed: team#cap: count(member) <= 10",
		}},
		{"invariant changed", inv, strings.Replace(inv, "<= 10", "<= 20", 1), []string{
			"invariant changed: team#cap: count(member) <= 10 => count(member) <= 20",
		}},
		{"invariant reformatted is unchanged", inv, strings.Replace(inv, "count(member) <= 10", "count( member )<=10", 1), nil},
		{"invariants of a removed definition", inv, "use invariants\ndefinition user {}", []string{
			"definition removed: team",
			"relation removed: team#owner",
			"relation removed: team#member",
			"invariant removed: team#cap: count(member) <= 10",
			"invariant removed: team#members_need_owner: member requires owner",
		}},
		{"invariants of an added definition", "use invariants\ndefinition user {}", inv, []string{
			"definition added: team",
			"relation added: team#owner",
			"relation added: team#member",
			"invariant added: team#cap: count(member) <= 10",
			"invariant added: team#members_need_owner: member requires owner",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			compile := func(src string) *Schema {
				if src == "" {
					return nil
				}
				s, err := Compile("t.zed", src)
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				return s
			}
			o, n := compile(tc.old), compile(tc.new)
			var got []string
			for _, c := range Diff(o, n) {
				got = append(got, c.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Diff:\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

func TestDiffSubjectFields(t *testing.T) {
	o, err := Compile("o.zed", "definition user {}\ndefinition group { relation member: user }\ndefinition doc { relation viewer: user | group#member | user:* }")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Compile("n.zed", "definition user {}\ndefinition group { relation member: user }\ndefinition doc { relation viewer: user }")
	if err != nil {
		t.Fatal(err)
	}
	var removed []*AllowedSubject
	for _, c := range Diff(o, n) {
		if c.Kind == SubjectTypeRemoved && c.Definition == "doc" && c.Name == "viewer" {
			removed = append(removed, c.Subject)
		}
	}
	if len(removed) != 2 {
		t.Fatalf("got %d removed subject types, want 2", len(removed))
	}
	if r := removed[0]; r.Type != "group" || r.Relation != "member" || r.Wildcard {
		t.Errorf("first removed = %+v, want group#member", r)
	}
	if r := removed[1]; r.Type != "user" || r.Relation != "" || !r.Wildcard {
		t.Errorf("second removed = %+v, want user:*", r)
	}
}
