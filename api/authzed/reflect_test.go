package authzed

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
)

func TestReflectSchema(t *testing.T) {
	f := newFixture(t)
	_, err := f.az.ReflectSchema(f.ctx, &v1.ReflectSchemaRequest{})
	wantCode(t, err, codes.NotFound)
	zt := f.writeSchema(testSchema)
	resp, err := f.az.ReflectSchema(f.ctx, &v1.ReflectSchemaRequest{Consistency: exact(zt)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetReadAt().GetToken() != zt.GetToken() {
		t.Fatalf("read at %v, want %v", resp.GetReadAt(), zt)
	}
	var got []string
	for _, d := range resp.GetDefinitions() {
		var rels, perms []string
		for _, r := range d.GetRelations() {
			var types []string
			for _, st := range r.GetSubjectTypes() {
				types = append(types, typeRef(st))
			}
			if r.GetParentDefinitionName() != d.GetName() {
				t.Errorf("relation %s has parent %s", r.GetName(), r.GetParentDefinitionName())
			}
			rels = append(rels, r.GetName()+": "+strings.Join(types, " | "))
		}
		for _, p := range d.GetPermissions() {
			perms = append(perms, p.GetName())
		}
		got = append(got, fmt.Sprintf("%s relations %v permissions %v", d.GetName(), rels, perms))
	}
	for _, c := range resp.GetCaveats() {
		var params []string
		for _, p := range c.GetParameters() {
			params = append(params, p.GetName()+" "+p.GetType())
		}
		got = append(got, fmt.Sprintf("caveat %s(%s) %s", c.GetName(), strings.Join(params, ", "), c.GetExpression()))
	}
	want := []string{
		"user relations [] permissions []",
		"group relations [member: user | group#member] permissions []",
		"doc relations [owner: user viewer: user | user:* | group#member leveled: user with min_level temp: user banned: user] permissions [edit view]",
		"folder relations [parent: folder viewer: user] permissions [view]",
		"caveat min_level(level int, required int) level >= required",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reflection\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, err = f.az.ReflectSchema(f.ctx, &v1.ReflectSchemaRequest{OptionalFilters: []*v1.ReflectionSchemaFilter{{OptionalDefinitionNameFilter: "doc"}}})
	wantCode(t, err, codes.Unimplemented)
}

func typeRef(st *v1.ReflectionTypeReference) string {
	s := st.GetSubjectDefinitionName()
	switch {
	case st.GetIsPublicWildcard():
		s += ":*"
	case st.GetOptionalRelationName() != "":
		s += "#" + st.GetOptionalRelationName()
	case !st.GetIsTerminalSubject():
		s += "?"
	}
	if st.GetOptionalCaveatName() != "" {
		s += " with " + st.GetOptionalCaveatName()
	}
	return s
}

func TestDiffSchema(t *testing.T) {
	f := newFixture(t)
	zt := f.writeSchema(testSchema)
	const next = `use expiration

caveat min_level(level uint, minimum uint) {
  level >= minimum
}

definition user {}

definition doc {
  relation owner: user
  relation editor: user
  relation viewer: user | user:*
  relation leveled: user with min_level
  relation temp: user with expiration
  relation banned: user
  permission view = (viewer + owner + leveled + temp) - banned
}

definition extra {}

definition folder {
  relation parent: folder
  relation viewer: user
  permission view = viewer
}
`
	resp, err := f.az.DiffSchema(f.ctx, &v1.DiffSchemaRequest{Consistency: exact(zt), ComparisonSchema: next})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetReadAt().GetToken() != zt.GetToken() {
		t.Fatalf("read at %v", resp.GetReadAt())
	}
	var got []string
	for _, d := range resp.GetDiffs() {
		got = append(got, diffText(d))
	}
	slices.Sort(got)
	// The removed group's own relation goes with it: only the definition
	// is reported.
	want := []string{
		"caveat expression changed: min_level",
		"caveat parameter added: min_level.minimum uint",
		"caveat parameter removed: min_level.required int",
		"caveat parameter type changed: min_level.level int => uint",
		"definition added: extra",
		"definition removed: group",
		"permission expression changed: folder#view",
		"permission removed: doc#edit",
		"relation added: doc#editor",
		"subject type removed: doc#viewer group#member",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("diff\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nothing was written.
	read, err := f.az.ReadSchema(f.ctx, &v1.ReadSchemaRequest{})
	if err != nil || read.GetReadAt().GetToken() != zt.GetToken() {
		t.Fatalf("DiffSchema wrote: %v %v", read.GetReadAt(), err)
	}
	_, err = f.az.DiffSchema(f.ctx, &v1.DiffSchemaRequest{ComparisonSchema: "definition x { relation y: nosuch }"})
	wantCode(t, err, codes.InvalidArgument)

	// An invariant is a Pemba extension authzed.api.v1 has no diff for:
	// adding one is no difference there, and no error.
	withInvariant := strings.Replace("use invariants\n"+testSchema, "relation owner: user", "relation owner: user\n  invariant one_owner = count(owner) <= 1", 1)
	resp, err = f.az.DiffSchema(f.ctx, &v1.DiffSchemaRequest{Consistency: exact(zt), ComparisonSchema: withInvariant})
	if err != nil || len(resp.GetDiffs()) != 0 {
		t.Fatalf("DiffSchema with an invariant added: %v %v", resp.GetDiffs(), err)
	}
}

func diffText(d *v1.ReflectionSchemaDiff) string {
	switch x := d.GetDiff().(type) {
	case *v1.ReflectionSchemaDiff_DefinitionAdded:
		return "definition added: " + x.DefinitionAdded.GetName()
	case *v1.ReflectionSchemaDiff_DefinitionRemoved:
		return "definition removed: " + x.DefinitionRemoved.GetName()
	case *v1.ReflectionSchemaDiff_RelationAdded:
		return "relation added: " + x.RelationAdded.GetParentDefinitionName() + "#" + x.RelationAdded.GetName()
	case *v1.ReflectionSchemaDiff_RelationRemoved:
		return "relation removed: " + x.RelationRemoved.GetParentDefinitionName() + "#" + x.RelationRemoved.GetName()
	case *v1.ReflectionSchemaDiff_PermissionAdded:
		return "permission added: " + x.PermissionAdded.GetParentDefinitionName() + "#" + x.PermissionAdded.GetName()
	case *v1.ReflectionSchemaDiff_PermissionRemoved:
		return "permission removed: " + x.PermissionRemoved.GetParentDefinitionName() + "#" + x.PermissionRemoved.GetName()
	case *v1.ReflectionSchemaDiff_PermissionExprChanged:
		return "permission expression changed: " + x.PermissionExprChanged.GetParentDefinitionName() + "#" + x.PermissionExprChanged.GetName()
	case *v1.ReflectionSchemaDiff_RelationSubjectTypeAdded:
		r := x.RelationSubjectTypeAdded
		return "subject type added: " + r.GetRelation().GetParentDefinitionName() + "#" + r.GetRelation().GetName() + " " + typeRef(r.GetChangedSubjectType())
	case *v1.ReflectionSchemaDiff_RelationSubjectTypeRemoved:
		r := x.RelationSubjectTypeRemoved
		return "subject type removed: " + r.GetRelation().GetParentDefinitionName() + "#" + r.GetRelation().GetName() + " " + typeRef(r.GetChangedSubjectType())
	case *v1.ReflectionSchemaDiff_CaveatAdded:
		return "caveat added: " + x.CaveatAdded.GetName()
	case *v1.ReflectionSchemaDiff_CaveatRemoved:
		return "caveat removed: " + x.CaveatRemoved.GetName()
	case *v1.ReflectionSchemaDiff_CaveatExprChanged:
		return "caveat expression changed: " + x.CaveatExprChanged.GetName()
	case *v1.ReflectionSchemaDiff_CaveatParameterAdded:
		p := x.CaveatParameterAdded
		return "caveat parameter added: " + p.GetParentCaveatName() + "." + p.GetName() + " " + p.GetType()
	case *v1.ReflectionSchemaDiff_CaveatParameterRemoved:
		p := x.CaveatParameterRemoved
		return "caveat parameter removed: " + p.GetParentCaveatName() + "." + p.GetName() + " " + p.GetType()
	case *v1.ReflectionSchemaDiff_CaveatParameterTypeChanged:
		p := x.CaveatParameterTypeChanged
		return "caveat parameter type changed: " + p.GetParameter().GetParentCaveatName() + "." + p.GetParameter().GetName() + " " + p.GetPreviousType() + " => " + p.GetParameter().GetType()
	}
	return fmt.Sprintf("unknown %T", d.GetDiff())
}

func TestDependentRelationsAndComputablePermissions(t *testing.T) {
	f := newFixture(t)
	zt := f.writeSchema(testSchema)
	refs := func(rs []*v1.ReflectionRelationReference) []string {
		var out []string
		for _, r := range rs {
			s := r.GetDefinitionName() + "#" + r.GetRelationName()
			if r.GetIsPermission() {
				s += " (permission)"
			}
			out = append(out, s)
		}
		return out
	}
	for _, tc := range []struct {
		def, perm string
		want      []string
	}{
		// view excludes banned from a union; viewer allows group#member,
		// which allows itself.
		{"doc", "view", []string{"doc#banned", "doc#leveled", "doc#owner", "doc#temp", "doc#viewer", "group#member"}},
		{"doc", "edit", []string{"doc#owner"}},
		// The arrow's target is folder#view itself.
		{"folder", "view", []string{"folder#parent", "folder#viewer"}},
	} {
		resp, err := f.az.DependentRelations(f.ctx, &v1.DependentRelationsRequest{Consistency: exact(zt), DefinitionName: tc.def, PermissionName: tc.perm})
		if err != nil {
			t.Fatal(err)
		}
		if got := refs(resp.GetRelations()); !slices.Equal(got, tc.want) || resp.GetReadAt().GetToken() != zt.GetToken() {
			t.Errorf("DependentRelations %s#%s = %v at %v, want %v", tc.def, tc.perm, got, resp.GetReadAt(), tc.want)
		}
	}
	for _, tc := range []struct {
		def, rel, filter string
		want             []string
	}{
		{"doc", "owner", "", []string{"doc#edit (permission)", "doc#view (permission)"}},
		{"group", "member", "", []string{"doc#view (permission)"}},
		{"group", "member", "fold", nil},
		{"folder", "viewer", "", []string{"folder#view (permission)"}},
		{"doc", "edit", "", nil},
	} {
		resp, err := f.az.ComputablePermissions(f.ctx, &v1.ComputablePermissionsRequest{DefinitionName: tc.def, RelationName: tc.rel, OptionalDefinitionNameFilter: tc.filter})
		if err != nil {
			t.Fatal(err)
		}
		if got := refs(resp.GetPermissions()); !slices.Equal(got, tc.want) {
			t.Errorf("ComputablePermissions %s#%s (%q) = %v, want %v", tc.def, tc.rel, tc.filter, got, tc.want)
		}
	}
	_, err := f.az.DependentRelations(f.ctx, &v1.DependentRelationsRequest{DefinitionName: "doc", PermissionName: "viewer"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = f.az.DependentRelations(f.ctx, &v1.DependentRelationsRequest{DefinitionName: "nosuch", PermissionName: "view"})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = f.az.ComputablePermissions(f.ctx, &v1.ComputablePermissionsRequest{DefinitionName: "doc", RelationName: "nosuch"})
	wantCode(t, err, codes.FailedPrecondition)
}
