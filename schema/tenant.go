package schema

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// A tenant is a type prefix ("acme/", SpiceDB's convention): the tenant's
// part of a schema is the definitions and caveats whose names start with
// it. The functions below cut a schema text into the part of one tenant
// and the rest, working on the source text so that comments stay with
// their declarations (and no comment of another tenant leaks).

// ErrOutsideTenant marks a tenant's schema that declares a name outside
// its prefix, or something only a whole schema may hold.
var ErrOutsideTenant = errors.New("schema: outside the tenant")

// TenantPart returns the declarations of src under prefix, and its use
// directives, formatted. It is "" when the tenant has none.
func TenantPart(src, prefix string) (string, error) {
	f, err := Parse("schema", src)
	if err != nil {
		return "", err
	}
	in, _ := splitTenant(f, prefix)
	return joinDecls(in), nil
}

// ReplaceTenantPart returns stored (a whole schema, "" for none) with the
// declarations under prefix replaced by part, a schema that declares
// only names under prefix and compiles on its own (so it refers to no
// other tenant's types). Declarations of other tenants stay as they are.
func ReplaceTenantPart(stored, prefix, part string) (string, error) {
	pf, err := Parse("schema", part)
	if err != nil {
		return "", err
	}
	var bad []string
	for _, d := range pf.Decls {
		switch d := d.(type) {
		case *DefinitionDecl:
			if n := d.Name.String(); !strings.HasPrefix(n, prefix) {
				bad = append(bad, fmt.Sprintf("%s: definition %q is not under %q", pf.Position(d.Name.Pos()), n, prefix))
			}
		case *CaveatDecl:
			if n := d.Name.String(); !strings.HasPrefix(n, prefix) {
				bad = append(bad, fmt.Sprintf("%s: caveat %q is not under %q", pf.Position(d.Name.Pos()), n, prefix))
			}
		case *UseDecl:
		default:
			// Partials have unprefixed names and imports read files: both
			// belong to whole schemas.
			bad = append(bad, fmt.Sprintf("%s: a tenant's schema holds only definitions, caveats and use directives", pf.Position(d.Pos())))
		}
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("%w %q: %s", ErrOutsideTenant, prefix, strings.Join(bad, "; "))
	}
	if _, err := Compile("schema", part); err != nil {
		// Compiled alone, a reference to another tenant's type is an
		// unknown definition.
		return "", err
	}
	var out []string
	if strings.TrimSpace(stored) != "" {
		sf, err := Parse("schema", stored)
		if err != nil {
			return "", fmt.Errorf("the stored schema: %w", err)
		}
		_, out = splitTenant(sf, prefix)
	}
	in, _ := splitTenant(pf, prefix)
	for _, d := range in {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return joinDecls(out), nil
}

// splitTenant returns the source of f's declarations under prefix and of the
// others; use directives go to both.
func splitTenant(f *File, prefix string) (in, out []string) {
	src := f.Source()
	for _, d := range f.Decls {
		var name string
		var doc *CommentGroup
		switch d := d.(type) {
		case *DefinitionDecl:
			name, doc = d.Name.String(), d.Doc
		case *CaveatDecl:
			name, doc = d.Name.String(), d.Doc
		case *UseDecl:
			text := src[d.Pos()-1 : d.End()-1]
			in, out = append(in, text), append(out, text)
			continue
		case *PartialDecl:
			doc = d.Doc
		case *ImportDecl:
			doc = d.Doc
		}
		start := d.Pos()
		if doc != nil {
			start = doc.Pos()
		}
		text := src[start-1 : d.End()-1]
		if name != "" && strings.HasPrefix(name, prefix) {
			in = append(in, text)
		} else {
			out = append(out, text)
		}
	}
	return in, out
}

// joinDecls formats declarations into one schema text; with none but use
// directives, the text is "".
func joinDecls(decls []string) string {
	onlyUse := true
	for _, d := range decls {
		if !strings.HasPrefix(strings.TrimSpace(d), "use ") {
			onlyUse = false
		}
	}
	if onlyUse {
		return ""
	}
	text := strings.Join(decls, "\n\n") + "\n"
	if formatted, err := FormatSource("schema", text); err == nil {
		return formatted
	}
	return text
}
