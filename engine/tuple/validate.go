package tuple

import "github.com/pemba-authz/pemba/schema/names"

// Limits on names and IDs, from package names, which defines the rules.
const (
	// MaxNameLen is the longest relation name or last type segment.
	MaxNameLen = names.MaxNameLen
	// MaxTypeLen is the longest object type, prefixes included.
	MaxTypeLen = names.MaxTypeLen
	// MaxIDLen is the longest object ID.
	MaxIDLen = names.MaxIDLen
)

// ValidateType checks an object type name: segments separated by "/"
// (org/identity_team/group); see package names for the rules.
func ValidateType(field, s string) error {
	return wrap(field, s, names.CheckType(s))
}

// ValidateRelation checks a relation or permission name.
func ValidateRelation(field, s string) error {
	return wrap(field, s, names.CheckName(s))
}

// ValidateCaveat checks a caveat name, which may be prefixed like a type.
func ValidateCaveat(field, s string) error {
	return wrap(field, s, names.CheckCaveat(s))
}

// ValidateID checks an object ID; the wildcard "*" is accepted only when
// allowWildcard is true (subject IDs). See package names for the rules.
func ValidateID(field, s string, allowWildcard bool) error {
	return wrap(field, s, names.CheckID(s, allowWildcard))
}

func wrap(field, s string, err error) error {
	if err == nil {
		return nil
	}
	return invalid(field, s, err.Error())
}

// Validate checks every name and ID in r, and the caveat name if present.
// It does not consult a schema.
func (r Relationship) Validate() error {
	if err := ValidateType("resource type", r.Resource.Type); err != nil {
		return err
	}
	if err := ValidateID("resource id", r.Resource.ID, false); err != nil {
		return err
	}
	if !Reserved(r.Relation) {
		if err := ValidateRelation("relation", r.Relation); err != nil {
			return err
		}
	}
	if err := r.Subject.Validate(); err != nil {
		return err
	}
	if r.Caveat != nil {
		if err := ValidateCaveat("caveat name", r.Caveat.Name); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the subject's type, ID and optional relation.
func (s SubjectRef) Validate() error {
	if err := ValidateType("subject type", s.Type); err != nil {
		return err
	}
	if err := ValidateID("subject id", s.ID, true); err != nil {
		return err
	}
	if s.Relation != "" {
		if s.ID == Wildcard {
			return invalid("subject", s.String(), "a wildcard subject cannot have a relation")
		}
		if !Reserved(s.Relation) {
			if err := ValidateRelation("subject relation", s.Relation); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReservedPrefix starts the relation names that Pemba keeps for its own
// rows beside the relationships (the nested-group index). No schema can
// declare such a name (a relation starts with a letter), so a reserved
// row never collides with a relationship; Validate accepts them so that
// every store keeps them like relationships, and the engine refuses them
// from callers and hides them from every read.
const ReservedPrefix = "~"

// Reserved reports whether name is a reserved relation name: the prefix,
// then one to 130 characters of lowercase letters, digits, "_" and "~".
func Reserved(name string) bool {
	if len(name) < 2 || len(name) > 131 || name[0] != ReservedPrefix[0] {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}
