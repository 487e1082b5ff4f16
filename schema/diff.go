package schema

import (
	"fmt"
	"sort"
	"strings"
)

// ChangeKind classifies a difference between two schemas.
type ChangeKind uint8

// Kinds of change. The Removed kinds of relations and subject types are the
// ones that can strand stored relationships.
const (
	DefinitionAdded ChangeKind = iota + 1
	DefinitionRemoved
	RelationAdded
	RelationRemoved
	PermissionAdded
	PermissionRemoved
	PermissionChanged // the rewrite changed
	SubjectTypeAdded
	SubjectTypeRemoved
	CaveatAdded
	CaveatRemoved
	CaveatChanged // parameters or expression changed
	InvariantAdded
	InvariantRemoved
	InvariantChanged // the condition changed
)

var changeKindNames = [...]string{
	DefinitionAdded:    "definition added",
	DefinitionRemoved:  "definition removed",
	RelationAdded:      "relation added",
	RelationRemoved:    "relation removed",
	PermissionAdded:    "permission added",
	PermissionRemoved:  "permission removed",
	PermissionChanged:  "permission changed",
	SubjectTypeAdded:   "subject type added",
	SubjectTypeRemoved: "subject type removed",
	CaveatAdded:        "caveat added",
	CaveatRemoved:      "caveat removed",
	CaveatChanged:      "caveat changed",
	InvariantAdded:     "invariant added",
	InvariantRemoved:   "invariant removed",
	InvariantChanged:   "invariant changed",
}

// String names the kind: "relation removed".
func (k ChangeKind) String() string {
	if int(k) < len(changeKindNames) && changeKindNames[k] != "" {
		return changeKindNames[k]
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is one difference between two schemas.
type Change struct {
	Kind ChangeKind
	// Definition is the object type; empty for caveat changes.
	Definition string
	// Name is the relation or permission (for Relation*, Permission* and
	// SubjectType* kinds), the invariant (Invariant* kinds) or the caveat
	// (Caveat* kinds); empty for Definition* kinds.
	Name string
	// Subject is the allowed subject type added or removed (SubjectType*
	// kinds only), taken from the schema that has it. Its Type, Relation,
	// Wildcard, Caveat and Expiration fields say which stored
	// relationships it admits.
	Subject *AllowedSubject
	// Detail describes the change for people.
	Detail string
}

// String renders the change on one line, such as
// "subject type removed: document#viewer: user:*".
func (c Change) String() string {
	var s string
	switch {
	case c.Definition != "" && c.Name != "":
		s = c.Kind.String() + ": " + c.Definition + "#" + c.Name
	case c.Definition != "":
		s = c.Kind.String() + ": " + c.Definition
	default:
		s = c.Kind.String() + ": " + c.Name
	}
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

// Diff lists the differences from old to new: definitions, relations,
// permissions, allowed subject types, invariants and caveats added, removed
// or changed (an invariant changes when its canonical condition does).
// Either schema may be nil (empty); Diff(nil, s) lists everything in s as
// added. Removing a definition also lists each of its relations and
// permissions as removed, and turning a relation into a permission (or the
// reverse) is a removal plus an addition, so that a caller can count the
// stored relationships every RelationRemoved and SubjectTypeRemoved
// change strands. Changing a subject type's caveat or expiration is a
// removal of the old entry plus an addition of the new.
//
// The order is deterministic: definitions by name (each followed by its
// members in source order, then its invariants), then caveats by name.
func Diff(old, new *Schema) []Change {
	if old == nil {
		old = &Schema{}
	}
	if new == nil {
		new = &Schema{}
	}
	var out []Change
	for _, name := range unionKeys(old.Definitions, new.Definitions) {
		od, nd := old.Definitions[name], new.Definitions[name]
		switch {
		case nd == nil:
			out = append(out, Change{Kind: DefinitionRemoved, Definition: name})
			for _, r := range od.Ordered {
				out = append(out, memberChange(r, false))
			}
			out = diffInvariants(out, od, nil)
		case od == nil:
			out = append(out, Change{Kind: DefinitionAdded, Definition: name})
			for _, r := range nd.Ordered {
				out = append(out, memberChange(r, true))
			}
			out = diffInvariants(out, nil, nd)
		default:
			out = diffDefinition(out, od, nd)
			out = diffInvariants(out, od, nd)
		}
	}
	for _, name := range unionKeys(old.Caveats, new.Caveats) {
		oc, nc := old.Caveats[name], new.Caveats[name]
		switch {
		case nc == nil:
			out = append(out, Change{Kind: CaveatRemoved, Name: name})
		case oc == nil:
			out = append(out, Change{Kind: CaveatAdded, Name: name})
		default:
			os, ns := caveatSignature(oc), caveatSignature(nc)
			if os != ns {
				out = append(out, Change{Kind: CaveatChanged, Name: name, Detail: os + " => " + ns})
			}
		}
	}
	return out
}

func memberChange(r *Relation, added bool) Change {
	c := Change{Definition: r.Definition.Name, Name: r.Name}
	switch {
	case r.IsPermission && added:
		c.Kind = PermissionAdded
	case r.IsPermission:
		c.Kind = PermissionRemoved
	case added:
		c.Kind = RelationAdded
	default:
		c.Kind = RelationRemoved
	}
	return c
}

func diffDefinition(out []Change, od, nd *Definition) []Change {
	for _, or := range od.Ordered {
		nr := nd.Relations[or.Name]
		switch {
		case nr == nil:
			out = append(out, memberChange(or, false))
		case nr.IsPermission != or.IsPermission:
			c := memberChange(or, false)
			c.Detail = "now a " + kindName(nr.IsPermission)
			out = append(out, c)
			out = append(out, memberChange(nr, true))
		case or.IsPermission:
			if dumpRewrite(or.Rewrite) != dumpRewrite(nr.Rewrite) {
				out = append(out, Change{Kind: PermissionChanged, Definition: od.Name, Name: or.Name, Detail: permissionDetail(or.Rewrite, nr.Rewrite)})
			}
		default:
			out = diffAllowed(out, or, nr)
		}
	}
	for _, nr := range nd.Ordered {
		if od.Relations[nr.Name] == nil {
			c := memberChange(nr, true)
			if old := od.Relations[nr.RenamedFrom]; nr.RenamedFrom != "" && old != nil && !old.IsPermission {
				c.Detail = "renamed from " + nr.RenamedFrom + " (its stored relationships are read as " + nr.Name + ")"
			}
			out = append(out, c)
		}
	}
	return out
}

// permissionDetail describes a changed rewrite in schema syntax, "viewer +
// editor => viewer - banned". When the text is the same, what changed is
// where its arrows lead (a type on the arrow's relation gained or lost
// the target), and the detail says so.
func permissionDetail(o, n *Rewrite) string {
	os, ns := RewriteString(o), RewriteString(n)
	if os != ns {
		return os + " => " + ns
	}
	ot, nt := arrowTargets(o, nil), arrowTargets(n, nil)
	var parts []string
	if rm := minus(ot, nt); len(rm) > 0 {
		parts = append(parts, "no longer reaches "+strings.Join(rm, ", "))
	}
	if add := minus(nt, ot); len(add) > 0 {
		parts = append(parts, "now reaches "+strings.Join(add, ", "))
	}
	return ns + " (" + strings.Join(parts, "; ") + ")"
}

// minus lists the elements of a that b lacks.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slicesContains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func diffAllowed(out []Change, or, nr *Relation) []Change {
	has := func(list []*AllowedSubject, key string) bool {
		for _, a := range list {
			if subjectKey(a) == key {
				return true
			}
		}
		return false
	}
	for _, a := range or.Allowed {
		if k := subjectKey(a); !has(nr.Allowed, k) {
			out = append(out, Change{Kind: SubjectTypeRemoved, Definition: or.Definition.Name, Name: or.Name, Subject: a, Detail: k})
		}
	}
	for _, a := range nr.Allowed {
		if k := subjectKey(a); !has(or.Allowed, k) {
			out = append(out, Change{Kind: SubjectTypeAdded, Definition: nr.Definition.Name, Name: nr.Name, Subject: a, Detail: k})
		}
	}
	return out
}

func caveatSignature(c *Caveat) string {
	params := make([]string, len(c.Params))
	for i, p := range c.Params {
		params[i] = p.Name + " " + p.Type
	}
	return "(" + strings.Join(params, ", ") + ") { " + c.Expression + " }"
}

func unionKeys[V any](a, b map[string]V) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
