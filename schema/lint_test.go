package schema

import (
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		disable []string
		want    []string
	}{
		{"clean", `definition user {}
definition doc {
	relation viewer: user
	permission view = viewer
}`, nil, nil},
		{"unused relation", `definition user {}
definition doc {
	relation viewer: user
	relation secret: user
	permission view = viewer
}`, nil, []string{`t.zed:4:11: warning: relation "secret" of definition "doc" is not used by any permission, arrow or subject type (unused-relation)`}},
		{"used through subject set and arrow target", `definition user {}
definition group { relation member: user }
definition folder { relation reader: user }
definition doc {
	relation parent: folder
	relation viewer: group#member
	permission view = viewer + parent->reader
}`, nil, nil},
		{"unreachable permissions", `definition user {}
definition doc {
	relation viewer: user
	relation nobody: user
	permission none = nil
	permission both = viewer & none
	permission minus = none - viewer
	permission via = both + none
	permission fine = viewer - none
	permission a = nobody
}`, nil, []string{
			`t.zed:5:13: warning: permission "none" of definition "doc" can never be granted: no relationships make nil hold (unreachable-permission)`,
			`t.zed:6:13: warning: permission "both" of definition "doc" can never be granted: no relationships make viewer & none hold (unreachable-permission)`,
			`t.zed:7:13: warning: permission "minus" of definition "doc" can never be granted: no relationships make none - viewer hold (unreachable-permission)`,
			`t.zed:8:13: warning: permission "via" of definition "doc" can never be granted: no relationships make both + none hold (unreachable-permission)`,
		}},
		{"recursion through arrows reaches", `definition user {}
definition folder {
	relation parent: folder
	relation owner: user
	permission view = owner + parent->view
	permission loop = parent->loop
}`, nil, []string{
			`t.zed:6:13: warning: permission "loop" of definition "folder" can never be granted: no relationships make parent->loop hold (unreachable-permission)`,
		}},
		{"wildcard arrow", `definition user {}
definition folder { relation viewer: user }
definition doc {
	relation parent: folder | folder:*
	permission view = parent->viewer
}`, nil, []string{
			`t.zed:5:20: warning: arrow parent->viewer follows relation "parent", which allows wildcard subjects (folder:*): a wildcard names no object, so the arrow never follows it (wildcard-arrow)`,
		}},
		{"disabled by flag", `definition user {}
definition folder { relation viewer: user }
definition doc {
	relation parent: folder | folder:*
	relation unused: user
	permission view = parent->viewer
}`, []string{LintWildcardArrow, LintUnusedRelation}, nil},
		{"silenced by directives", `definition user {}
definition folder { relation viewer: user }
definition doc {
	// The parent folder.
	// pemba:ignore wildcard-arrow,unreachable-permission public folders are fine
	relation parent: folder | folder:*
	relation unused: user // pemba:ignore unused-relation kept for direct checks
	// pemba:ignore unused-relation: a colon may end the names
	relation unused2: user
	// pemba:ignore wildcard-arrow
	permission view = parent->viewer
	/* pemba:ignore all */
	@deprecated
	permission never = nil
	// pemba:ignore unused-relation (the wrong check: still warns)
	permission never2 = nil
}`, nil, []string{
			`t.zed:16:13: warning: permission "never2" of definition "doc" can never be granted: no relationships make nil hold (unreachable-permission)`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("t.zed", tc.src)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Check(f)
			if err != nil {
				t.Fatal(err)
			}
			ws, err := Lint(s, []*File{f}, LintOptions{Disable: tc.disable})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range ws {
				got = append(got, w.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Lint:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
		})
	}
}

func TestLintUnknownCheck(t *testing.T) {
	s, err := Compile("t.zed", "definition user {}")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Lint(s, nil, LintOptions{Disable: []string{"unused-relations"}})
	if err == nil || !strings.Contains(err.Error(), `unknown lint check "unused-relations"`) {
		t.Errorf("err = %v, want unknown lint check", err)
	}
}
