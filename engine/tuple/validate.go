package tuple

import "fmt"

// Limits on names and IDs. They are part of the storage format: raising them
// is compatible, lowering them is not.
const (
	// MaxNameLen is the longest type name segment or relation name.
	MaxNameLen = 64
	// MaxTypeLen is the longest object type, including one "prefix/".
	MaxTypeLen = 2*MaxNameLen + 1
	// MaxIDLen is the longest object ID.
	MaxIDLen = 1024
)

// ValidateType checks an object type name: one or two segments separated by
// "/" (tenant/document), each made of lowercase letters, digits and "_",
// starting with a letter, not ending with "_", at most MaxNameLen long.
func ValidateType(field, s string) error {
	if s == "" {
		return invalid(field, s, "must not be empty")
	}
	if len(s) > MaxTypeLen {
		return invalid(field, s, fmt.Sprintf("longer than %d characters", MaxTypeLen))
	}
	start := 0
	slashes := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			if i < len(s) {
				slashes++
				if slashes > 1 {
					return invalid(field, s, "at most one \"/\" prefix is allowed")
				}
			}
			if err := validateName(field, s, s[start:i]); err != nil {
				return err
			}
			start = i + 1
		}
	}
	return nil
}

// ValidateRelation checks a relation or permission name: lowercase letters,
// digits and "_", starting with a letter, not ending with "_", at most
// MaxNameLen long.
func ValidateRelation(field, s string) error {
	return validateName(field, s, s)
}

func validateName(field, whole, seg string) error {
	switch {
	case seg == "":
		return invalid(field, whole, "must not be empty")
	case len(seg) > MaxNameLen:
		return invalid(field, whole, fmt.Sprintf("a name is at most %d characters", MaxNameLen))
	case seg[0] < 'a' || seg[0] > 'z':
		return invalid(field, whole, "must start with a lowercase letter")
	case seg[len(seg)-1] == '_':
		return invalid(field, whole, "must not end with \"_\"")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return invalid(field, whole, fmt.Sprintf("character %q is not allowed (use a-z, 0-9, _)", c))
		}
	}
	return nil
}

// ValidateID checks an object ID: 1 to MaxIDLen characters from
// A-Z a-z 0-9 and _ - = + / | . ~ (so IDs can carry emails' local parts,
// paths and base64url). The wildcard "*" is accepted only when
// allowWildcard is true (subject IDs).
func ValidateID(field, s string, allowWildcard bool) error {
	if s == Wildcard {
		if allowWildcard {
			return nil
		}
		return invalid(field, s, "a wildcard is allowed only as a subject")
	}
	if s == "" {
		return invalid(field, s, "must not be empty")
	}
	if len(s) > MaxIDLen {
		return invalid(field, s, fmt.Sprintf("longer than %d characters", MaxIDLen))
	}
	for i := 0; i < len(s); i++ {
		if !idChar(s[i]) {
			return invalid(field, s, fmt.Sprintf("character %q is not allowed in an id", s[i]))
		}
	}
	return nil
}

func idChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '=', '+', '/', '|', '.', '~':
		return true
	}
	return false
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
	if err := ValidateRelation("relation", r.Relation); err != nil {
		return err
	}
	if err := r.Subject.Validate(); err != nil {
		return err
	}
	if r.Caveat != nil {
		if err := ValidateRelation("caveat name", r.Caveat.Name); err != nil {
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
		if err := ValidateRelation("subject relation", s.Relation); err != nil {
			return err
		}
	}
	return nil
}
