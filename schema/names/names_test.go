package names

import (
	"strings"
	"testing"
)

// TestRules pins the name rules at their boundaries (SpiceDB's patterns,
// widened to names of one and two characters and to "." and "~" in IDs).
func TestRules(t *testing.T) {
	tests := []struct {
		check func(string) error
		in    string
		ok    bool
	}{
		{CheckName, "a", true},
		{CheckName, "view_2", true},
		{CheckName, strings.Repeat("n", 64), true},
		{CheckName, strings.Repeat("n", 65), false},
		{CheckName, "", false},
		{CheckName, "_view", false},
		{CheckName, "view_", false},
		{CheckName, "View", false},
		{CheckName, "a/b", false},
		{CheckType, "org/identity_team/group", true},
		{CheckType, strings.Repeat("p", 63) + "/" + strings.Repeat("n", 64), true},
		{CheckType, strings.Repeat("p", 64) + "/n", false},
		{CheckType, strings.Repeat("ab/", 41) + "abcde", true}, // 128 bytes
		{CheckType, strings.Repeat("ab/", 41) + "abcdef", false},
		{CheckType, "a//b", false},
		{CheckType, "/a", false},
		{CheckType, "a/", false},
		{CheckCaveat, "org/iam/on_vpn", true},
		{CheckCaveat, "org/Iam/on_vpn", false},
		{func(s string) error { return CheckID(s, false) }, "a.b~c|d=e+f/g-h_i", true},
		{func(s string) error { return CheckID(s, false) }, strings.Repeat("x", 1024), true},
		{func(s string) error { return CheckID(s, false) }, strings.Repeat("x", 1025), false},
		{func(s string) error { return CheckID(s, false) }, "a b", false},
		{func(s string) error { return CheckID(s, false) }, "*", false},
		{func(s string) error { return CheckID(s, true) }, "*", true},
		{func(s string) error { return CheckID(s, true) }, "", false},
	}
	for i, tt := range tests {
		if err := tt.check(tt.in); (err == nil) != tt.ok {
			t.Errorf("case %d %q: err = %v, want ok = %v", i, tt.in, err, tt.ok)
		}
	}
}
