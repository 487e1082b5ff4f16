package tuple

// Filter selects relationships by resource. ResourceType is required by
// callers that delete; reads may leave it empty to scan everything.
// Empty fields match anything.
type Filter struct {
	ResourceType string
	ResourceID   string
	Relation     string
	Subject      *SubjectFilter // nil matches any subject
}

// SubjectFilter selects relationships by subject. Type is required.
// Relation "" matches any subject relation; Ellipsis matches only subjects
// without a relation (plain objects).
type SubjectFilter struct {
	Type     string
	ID       string
	Relation string
}

// ReverseFilter selects relationships by subject first, the access path of
// LookupResources: the subject, then optionally the resource type and
// relation. Subject.Type is required.
type ReverseFilter struct {
	Subject      SubjectFilter
	ResourceType string
	Relation     string
}

// Matches reports whether r is selected by f.
func (f Filter) Matches(r Relationship) bool {
	if f.ResourceType != "" && r.Resource.Type != f.ResourceType {
		return false
	}
	if f.ResourceID != "" && r.Resource.ID != f.ResourceID {
		return false
	}
	if f.Relation != "" && r.Relation != f.Relation {
		return false
	}
	return f.Subject == nil || f.Subject.Matches(r.Subject)
}

// Matches reports whether s is selected by f.
func (f SubjectFilter) Matches(s SubjectRef) bool {
	if s.Type != f.Type {
		return false
	}
	if f.ID != "" && s.ID != f.ID {
		return false
	}
	switch f.Relation {
	case "":
		return true
	case Ellipsis:
		return s.Relation == ""
	default:
		return s.Relation == f.Relation
	}
}

// Matches reports whether r is selected by f.
func (f ReverseFilter) Matches(r Relationship) bool {
	if !f.Subject.Matches(r.Subject) {
		return false
	}
	if f.ResourceType != "" && r.Resource.Type != f.ResourceType {
		return false
	}
	return f.Relation == "" || r.Relation == f.Relation
}
