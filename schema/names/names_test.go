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

// TestErrorNamesTheCharacter: an error names the whole offending character
// (a non-ASCII one is not reported as one byte of its encoding), its code
// point, and its position counted in characters.
func TestErrorNamesTheCharacter(t *testing.T) {
	tests := []struct {
		name  string
		check func() error
		want  string
	}{
		{"id, accented first", func() error { return CheckID("ánne", false) }, `character 'á' (U+00E1) at position 1 is not allowed in an id`},
		{"id, after multibyte", func() error { return CheckID("xé!", false) }, `character 'é' (U+00E9) at position 2 is not allowed in an id`},
		{"id, space", func() error { return CheckID("a b", false) }, `character ' ' at position 2 is not allowed in an id`},
		{"id, emoji", func() error { return CheckID("ab😀", false) }, `character '😀' (U+1F600) at position 3`},
		{"id, invalid UTF-8", func() error { return CheckID("ab\xc3", false) }, `byte 0xc3 (not UTF-8) at position 3`},
		{"type", func() error { return CheckType("doçument") }, `character 'ç' (U+00E7) at position 3 is not allowed (use a-z, 0-9, _)`},
		{"relation", func() error { return CheckName("view-er") }, `character '-' at position 5 is not allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
