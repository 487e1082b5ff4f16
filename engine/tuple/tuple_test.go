package tuple

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRoundTrip(t *testing.T) {
	tests := []string{
		"enterprise:acme#member@employee:li",
		"link:acme_globex#approved@platform:review",
		"group:eng#member@group:backend#member",
		"doc:1#viewer@user:*",
		"tenant/doc:a-b_c=d+e/f|g.h~i#viewer@tenant/user:X9",
		"org/identity_team/group:admins#member@org/identity_team/group:eng#member",
		`a/b/c/d:1#viewer@user:anne[org/team/only_weekdays:{"tz":"UTC"}]`,
		`doc:1#viewer@user:anne[only_weekdays]`,
		`doc:1#viewer@user:anne[ip_allow:{"cidr":"10.0.0.0/8","n":12,"tags":["a","]"]}]`,
		`link:ag#granted@employee:li[expiration:2099-01-01T00:00:00Z]`,
		`link:ag#granted@employee:li[c:{"a":{"b":[1,2]}}][expiration:2030-05-06T07:08:09.123456789Z]`,
	}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			r, err := Parse(s)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := r.String(); got != s {
				t.Fatalf("String() = %q, want %q", got, s)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	r, err := Parse(`group:eng#member@group:backend#member[c:{"x":1}][expiration:2030-01-02T03:04:05+02:00]`)
	if err != nil {
		t.Fatal(err)
	}
	want := Key{
		Resource: ObjectRef{Type: "group", ID: "eng"},
		Relation: "member",
		Subject:  SubjectRef{Type: "group", ID: "backend", Relation: "member"},
	}
	if r.Key() != want {
		t.Errorf("Key() = %+v, want %+v", r.Key(), want)
	}
	if r.Caveat == nil || r.Caveat.Name != "c" || r.Caveat.Context["x"].(interface{ String() string }).String() != "1" {
		t.Errorf("caveat = %+v", r.Caveat)
	}
	if want := time.Date(2030, 1, 2, 1, 4, 5, 0, time.UTC); !r.Expiration.Equal(want) || r.Expiration.Location() != time.UTC {
		t.Errorf("expiration = %v, want %v in UTC", r.Expiration, want)
	}
	if r, _ := Parse("doc:1#viewer@user:anne#..."); r.Subject.Relation != "" {
		t.Errorf("ellipsis relation should parse as plain subject, got %q", r.Subject.Relation)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"doc:1#viewer", `missing "@"`},
		{"doc:1@user:anne", `missing "#relation"`},
		{"doc1#viewer@user:anne", `invalid resource "doc1": expected type:id`},
		{"Doc:1#viewer@user:anne", `invalid resource type "Doc": must start with a lowercase letter`},
		{"doc:1#viewer_@user:anne", `must not end with "_"`},
		{"doc:#viewer@user:anne", `invalid resource id "": must not be empty`},
		{"doc:*#viewer@user:anne", "a wildcard is allowed only as a subject"},
		{"doc:a b#viewer@user:anne", `character ' ' at position 2 is not allowed in an id`},
		{"doc:1#viewer@user:*#member", "a wildcard subject cannot have a relation"},
		{"doc:1#viewer@user:anne#", "empty relation"},
		{"a//c:1#viewer@user:anne", `invalid resource type "a//c": prefix "": must not be empty`},
		{"a/b/:1#viewer@user:anne", `invalid resource type "a/b/": must not be empty`},
		{"a/B/c:1#viewer@user:anne", `prefix "B": must start with a lowercase letter`},
		{"a/b_/c:1#viewer@user:anne", `prefix "b_": must not end with "_"`},
		{strings.Repeat("p", 64) + "/doc:1#viewer@user:anne", "at most 63 characters"},
		{strings.Repeat("p/", 64) + "doc:1#viewer@user:anne", "longer than 128 characters"},
		{"doc:1#viewer@user:anne[org//c]", `invalid caveat name "org//c"`},
		{"doc:" + strings.Repeat("x", MaxIDLen+1) + "#viewer@user:anne", "longer than 1024"},
		{"doc:1#viewer@user:anne[c:{bad}]", "not a JSON object"},
		{"doc:1#viewer@user:anne[c:{\"a\":1}", "unterminated"},
		{"doc:1#viewer@user:anne[expiration:tomorrow]", "not an RFC 3339 time"},
		{"doc:1#viewer@user:anne[a][b]", "at most one caveat"},
		{"doc:1#viewer@user:anne[c] junk", "unexpected"},
		{"doc:1#viewer@user:anne[c:[1]]", "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want error containing %q", tt.in, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestTypeLimits pins the boundaries of SpiceDB's object_type pattern,
// ([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9] with at most
// 128 bytes: a prefix segment of 63 and a last segment of 64 characters
// are the longest accepted.
func TestTypeLimits(t *testing.T) {
	ok := []string{
		strings.Repeat("p", 63) + "/" + strings.Repeat("d", 64),
		"a/b/c/d/e/f/g/h",
		strings.Repeat("ab/", 41) + "abcd", // 127 bytes
		strings.Repeat("ab/", 41) + "abcde",
	}
	for _, s := range ok {
		if err := ValidateType("t", s); err != nil {
			t.Errorf("ValidateType(%q) = %v, want nil", s, err)
		}
	}
	bad := []string{
		strings.Repeat("p", 64) + "/d",
		"d/" + strings.Repeat("d", 65),
		strings.Repeat("ab/", 41) + "abcdef", // 129 bytes
		"/doc", "doc/", "a/_b", "a/1b",
	}
	for _, s := range bad {
		if err := ValidateType("t", s); err == nil {
			t.Errorf("ValidateType(%q) = nil, want an error", s)
		}
	}
}

func TestFilterMatches(t *testing.T) {
	r, _ := Parse("group:eng#member@group:backend#member")
	plain, _ := Parse("group:eng#member@user:anne")
	tests := []struct {
		name string
		f    Filter
		r    Relationship
		want bool
	}{
		{"empty matches all", Filter{}, r, true},
		{"type", Filter{ResourceType: "group"}, r, true},
		{"other type", Filter{ResourceType: "doc"}, r, false},
		{"id and relation", Filter{ResourceType: "group", ResourceID: "eng", Relation: "member"}, r, true},
		{"other relation", Filter{Relation: "owner"}, r, false},
		{"subject any relation", Filter{Subject: &SubjectFilter{Type: "group"}}, r, true},
		{"subject named relation", Filter{Subject: &SubjectFilter{Type: "group", Relation: "member"}}, r, true},
		{"subject ellipsis excludes usersets", Filter{Subject: &SubjectFilter{Type: "group", Relation: Ellipsis}}, r, false},
		{"subject ellipsis keeps plain", Filter{Subject: &SubjectFilter{Type: "user", Relation: Ellipsis}}, plain, true},
		{"subject id", Filter{Subject: &SubjectFilter{Type: "user", ID: "bob"}}, plain, false},
	}
	for _, tt := range tests {
		if got := tt.f.Matches(tt.r); got != tt.want {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.want)
		}
	}
	rf := ReverseFilter{Subject: SubjectFilter{Type: "user", ID: "anne"}, ResourceType: "group", Relation: "member"}
	if !rf.Matches(plain) || rf.Matches(r) {
		t.Errorf("ReverseFilter.Matches wrong")
	}
}

func TestExpiredAt(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Relationship{Expiration: exp}
	if r.ExpiredAt(exp.Add(-time.Nanosecond)) || !r.ExpiredAt(exp) || (Relationship{}).ExpiredAt(exp) {
		t.Error("ExpiredAt boundaries wrong")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"doc:1#viewer@user:anne",
		"group:eng#member@group:backend#member",
		`doc:1#viewer@user:anne[c:{"a":[1,"]"]}][expiration:2030-01-01T00:00:00Z]`,
		"doc:1#viewer@user:*",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(r.String())
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", r.String(), s, err)
		}
		if again.String() != r.String() {
			t.Fatalf("round trip changed %q to %q", r.String(), again.String())
		}
	})
}
