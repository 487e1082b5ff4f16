package validation

import (
	"strings"
	"testing"
)

const writesSchema = `schema: |-
  use invariants
  definition user {}
  definition team {
    relation creator: user
    relation member: user
    invariant one_creator = count(creator) == 1
  }
relationships: |-
  team:a#creator@user:c
`

// TestWrites runs the writes section: each entry must commit, or be
// refused by the invariant it names; any other outcome is a failure at
// the entry's line.
func TestWrites(t *testing.T) {
	for _, tc := range []struct {
		writes string
		want   []string // failures, as "line: message" fragments
	}{
		{`
  - updates: [touch team:a#member@user:x]
  - updates: [touch team:a#creator@user:d]
    refusedBy: team.one_creator
  - updates: [delete team:a#creator@user:c, touch team:a#creator@user:d]`, nil},
		{`
  - updates: [touch team:a#member@user:x]
    refusedBy: team.one_creator`, []string{"y:12: write committed, want it refused by invariant team.one_creator"}},
		{`
  - updates: [touch team:b#member@user:x]`, []string{"y:12: write refused, want it committed: engine: invariant team.one_creator (count(creator) == 1) violated on team:b by update 0 (TOUCH team:b#member@user:x): team:b has 0 creator relationships, want == 1"}},
		{`
  - updates: [touch team:b#member@user:x]
    refusedBy: team.other`, []string{"y:12: write refused by invariant team.one_creator, want team.other"}},
		{`
  - updates: [touch team:b#nope@user:x]
    refusedBy: team.one_creator`, []string{"y:12: write failed with", "want it refused by invariant team.one_creator"}},
	} {
		f, err := Parse("y", []byte(writesSchema+"writes:"+tc.writes+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.writes, err)
		}
		res, err := Run(t.Context(), f, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, fl := range res.Failures {
			got = append(got, fl.Pos.String()+": "+fl.Msg)
		}
		if len(tc.want) == 0 {
			if len(got) > 0 {
				t.Errorf("%s: failures %v", tc.writes, got)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("%s: failures %v, want one", tc.writes, got)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(got[0], w) {
				t.Errorf("%s: failure %q, want it to contain %q", tc.writes, got[0], w)
			}
		}
	}
}

func TestWritesParseErrors(t *testing.T) {
	for _, tc := range []struct{ writes, want string }{
		{"\n  - updates: [write team:a#member@user:x]", `y:12: writes: update "write team:a#member@user:x": expected touch, create or delete, then a relationship`},
		{"\n  - updates: [touch team:a]", `y:12: writes: update "touch team:a"`},
		{"\n  - refusedBy: team.one_creator", "y:12: writes: a write needs updates"},
		{"\n  - updates: [touch team:a#member@user:x]\n    refusedBy: one_creator", `y:13: writes: refusedBy "one_creator": expected definition.invariant`},
		{"\n  - updates: [touch team:a#member@user:x]\n    because: x", `y:13: writes: unknown key "because" (want updates or refusedBy)`},
		{" nope", "y:11: writes: expected a list of writes"},
	} {
		_, err := Parse("y", []byte(writesSchema+"writes:"+tc.writes+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %s", tc.writes, err, tc.want)
		}
	}
}
