package schema

import (
	"errors"
	"strings"
	"testing"
)

const tenantStored = `use expiration

// Globex's users.
definition globex/user {}

definition globex/doc {
	relation viewer: globex/user
}

// Acme's users.
definition acme/user {}

definition acme/doc {
	relation viewer: acme/user with expiration
}

caveat acme/in_office(office string) {
	office == "hq"
}

definition acme/eu/doc {
	relation viewer: acme/user
}

definition platform {}
`

func TestTenantPart(t *testing.T) {
	tests := []struct {
		prefix string
		want   []string // definitions and caveats, in order
	}{
		{"acme/", []string{"acme/user", "acme/doc", "acme/in_office", "acme/eu/doc"}},
		{"acme/eu/", []string{"acme/eu/doc"}},
		{"globex/", []string{"globex/user", "globex/doc"}},
		{"initech/", nil},
	}
	for _, tt := range tests {
		got, err := TenantPart(tenantStored, tt.prefix)
		if err != nil {
			t.Fatalf("%s: %v", tt.prefix, err)
		}
		if names := declNames(t, got); strings.Join(names, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: declarations %v, want %v\n%s", tt.prefix, names, tt.want, got)
		}
		for _, other := range []string{"Globex's", "Acme's", "platform"} {
			owner := strings.ToLower(strings.TrimSuffix(other, "'s")) + "/"
			if strings.Contains(got, other) && !strings.HasPrefix(tt.prefix, owner) {
				t.Errorf("%s: the part holds %q of another tenant:\n%s", tt.prefix, other, got)
			}
		}
	}
}

func declNames(t *testing.T, src string) []string {
	t.Helper()
	if src == "" {
		return nil
	}
	f, err := Parse("t", src)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	var names []string
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *DefinitionDecl:
			names = append(names, d.Name.String())
		case *CaveatDecl:
			names = append(names, d.Name.String())
		}
	}
	return names
}

func TestReplaceTenantPart(t *testing.T) {
	tests := []struct {
		name    string
		stored  string
		prefix  string
		part    string
		want    []string // declarations of the result
		wantErr error    // or a compile error when nil and errText set
		errText string
	}{
		{
			name: "replace acme", stored: tenantStored, prefix: "acme/",
			part: "definition acme/user {}\ndefinition acme/folder { relation owner: acme/user }",
			want: []string{"globex/user", "globex/doc", "platform", "acme/user", "acme/folder"},
		},
		{
			name: "first tenant on an empty store", stored: "", prefix: "acme/",
			part: "definition acme/user {}", want: []string{"acme/user"},
		},
		{
			name: "nested tenant keeps its parent's", stored: tenantStored, prefix: "acme/eu/",
			part: "definition acme/eu/user {}",
			want: []string{"globex/user", "globex/doc", "acme/user", "acme/doc", "acme/in_office", "platform", "acme/eu/user"},
		},
		{
			name: "definition outside", stored: tenantStored, prefix: "acme/",
			part: "definition globex/user {}", wantErr: ErrOutsideTenant, errText: `definition "globex/user" is not under "acme/"`,
		},
		{
			name: "caveat outside", stored: tenantStored, prefix: "acme/",
			part: "caveat c(x int) { x == 1 }", wantErr: ErrOutsideTenant, errText: `caveat "c"`,
		},
		{
			name: "reference to another tenant", stored: tenantStored, prefix: "acme/",
			part: "definition acme/doc { relation viewer: globex/user }", errText: "globex/user",
		},
		{
			name: "partial", stored: tenantStored, prefix: "acme/",
			part: "use partial\npartial p { relation r: acme/user }\ndefinition acme/user {}", wantErr: ErrOutsideTenant, errText: "only definitions",
		},
	}
	for _, tt := range tests {
		got, err := ReplaceTenantPart(tt.stored, tt.prefix, tt.part)
		if tt.errText != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errText) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("%s: err = %v, want %v containing %q", tt.name, err, tt.wantErr, tt.errText)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if names := declNames(t, got); strings.Join(names, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: declarations %v, want %v\n%s", tt.name, names, tt.want, got)
		}
		if _, err := Compile("merged", got); err != nil {
			t.Errorf("%s: the merged schema does not compile: %v\n%s", tt.name, err, got)
		}
		if tt.stored != "" && strings.Count(got, "use expiration") != 1 {
			t.Errorf("%s: use directive kept %d times:\n%s", tt.name, strings.Count(got, "use expiration"), got)
		}
	}
}
