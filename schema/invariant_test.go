package schema

import (
	"strings"
	"testing"
)

// invariantSchema wraps members in a definition org with a few relations
// to refer to; its members start on line 10.
func invariantSchema(members string) string {
	return `use invariants

definition user {}
definition num {}
definition org {
	relation creator: user
	relation seat: user
	relation star: user:*
	permission p = creator
	` + members + "\n}\n"
}

func TestInvariantCompile(t *testing.T) {
	for _, tc := range []struct {
		member string
		want   string // canonical String() of the invariant
		kind   InvariantKind
	}{
		{"invariant a = count(creator) == 1", "org.a (count(creator) == 1)", InvariantCount},
		{"invariant a =count(seat)<=value(creator)", "org.a (count(seat) <= value(creator))", InvariantCount},
		{"invariant a = star requires count( seat ) >= 2 // why", "org.a (star requires count(seat) >= 2)", InvariantCount},
		{"invariant a = star requires creator", "org.a (star requires creator)", InvariantNonEmpty},
		{"invariant a = seat", "org.a (seat)", InvariantNonEmpty},
		{"invariant a = star requires seat within p", "org.a (star requires seat within p)", InvariantWithin},
		{"invariant a = seat within creator;", "org.a (seat within creator)", InvariantWithin},
	} {
		s, err := Compile("s.zed", invariantSchema(tc.member))
		if err != nil {
			t.Errorf("%s: %v", tc.member, err)
			continue
		}
		invs := s.Definitions["org"].Invariants
		if len(invs) != 1 || invs[0].String() != tc.want || invs[0].Kind != tc.kind {
			t.Errorf("%s: got %v, want one %q of kind %d", tc.member, invs, tc.want, tc.kind)
			continue
		}
		// The canonical form compiles to the same invariant.
		s2, err := Compile("s.zed", invariantSchema("invariant a = "+invs[0].Text))
		if err != nil || s2.Definitions["org"].Invariants[0].String() != tc.want {
			t.Errorf("%s: canonical form %q does not round-trip: %v", tc.member, invs[0].Text, err)
		}
	}
}

func TestInvariantErrors(t *testing.T) {
	for _, tc := range []struct {
		member string
		want   string // the one error, at line 10 unless it says otherwise
	}{
		{"invariant a = count(creatr) == 1", `s.zed:10:22: unknown relation "creatr" on definition "org" in invariant "a"`},
		{"invariant a = p", `s.zed:10:16: the required relation must be a relation, and "p" is a permission on definition "org" (invariants read stored relationships)`},
		{"invariant a = p requires seat", `s.zed:10:16: the relation before "requires" must be a relation, and "p" is a permission on definition "org" (invariants read stored relationships)`},
		{"invariant a = count(seat) < 3", `s.zed:10:28: invalid character "<" in invariant condition (use count(relation) ==, <= or >= a number or value(relation); relation; relation within permission; each optionally after "relation requires")`},
		{"invariant a = count(seat) = 3", `s.zed:10:28: invalid character "=" in invariant condition (use count(relation) ==, <= or >= a number or value(relation); relation; relation within permission; each optionally after "relation requires")`},
		{"invariant a = count(seat) 3", `s.zed:10:28: expected "==", "<=" or ">=" in invariant condition, found "3"`},
		{"invariant a = count(seat) <=", `s.zed:10:30: expected a number or value(relation) in invariant condition, found end of the condition`},
		{"invariant a = count(seat) <= 99999999999", `s.zed:10:31: invalid bound "99999999999": use a decimal number up to 1000000000`},
		{"invariant a = seat requires", `s.zed:10:29: expected relation name or "count" in invariant condition, found end of the condition`},
		{"invariant a = seat star", `s.zed:10:21: expected the end of the condition in invariant condition, found "star"`},
		{"invariant a = count(seat) <= value(star)", `s.zed:10:37: relation "star" of value() must allow only plain objects (their ids are the numbers), not user:*`},
		{"invariant a = seat within q", `s.zed:10:28: unknown permission or relation "q" on definition "org" in invariant "a"`},
		{"invariant a = seat within", `s.zed:10:27: expected permission name after "within" in invariant condition, found end of the condition`},
		{"invariant a = seat\n\tinvariant a = creator", `s.zed:11:12: duplicate invariant "a" on definition "org" (first declared at 10:12)`},
		{"invariant a =", `s.zed:10:15: expected a condition after "="`},
		{"invariant a = // nothing", `s.zed:10:16: expected a condition after "="`},
		{"invariant a seat", `s.zed:10:14: expected "=", found "seat"`},
		{"invariant Bad = seat", `s.zed:10:12: invalid invariant name "Bad": use lowercase letters, digits and "_", start with a letter, do not end with "_", at most 64 characters`},
	} {
		_, err := Compile("s.zed", invariantSchema(tc.member))
		if err == nil {
			t.Errorf("%q: compiled, want %s", tc.member, tc.want)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.member, got, tc.want)
		}
	}
}

// TestInvariantNeedsUse: without "use invariants", "invariant" is an
// error naming the directive, and the rest of the definition still parses.
func TestInvariantNeedsUse(t *testing.T) {
	src := strings.Replace(invariantSchema("invariant a = seat\n\tpermission q = seat"), "use invariants\n", "\n", 1)
	_, err := Compile("s.zed", src)
	want := `s.zed:10:2: "invariant" needs "use invariants" at the top of the file`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	// A relation named "invariant" stays legal without the directive.
	if _, err := Compile("s.zed", "definition user {}\ndefinition d {\n\trelation invariant: user\n\tpermission p = invariant\n}\n"); err != nil {
		t.Fatal(err)
	}
}
