// Package tuple defines Pemba's relationship tuples and their text form.
//
// A relationship says that a subject stands in a relation to a resource:
//
//	document:readme#viewer@user:anne
//	group:eng#member@group:backend#member
//	doc:1#viewer@user:*
//	doc:1#viewer@user:anne[only_weekdays:{"tz":"UTC"}][expiration:2027-01-01T00:00:00Z]
//
// The package holds plain values only: parsing, formatting, validation and
// filters. It imports nothing else from Pemba but schema/names (the rules
// for names, shared with the schema checker, standard library only), so
// every layer can use it.
package tuple

import (
	"time"

	"github.com/pemba-authz/pemba/schema/names"
)

// Ellipsis is the relation of a subject that is an object itself rather than
// a set of objects. In a SubjectFilter it selects subjects without a relation.
const Ellipsis = "..."

// Wildcard is the subject ID that stands for every object of a type (user:*).
const Wildcard = names.Wildcard

// ObjectRef names one object: a type and an ID.
type ObjectRef struct {
	Type string
	ID   string
}

// String formats the object as type:id.
func (o ObjectRef) String() string { return o.Type + ":" + o.ID }

// SubjectRef names a subject: an object, or with Relation set, the set of
// subjects that have Relation on that object (a userset, group:eng#member).
// ID may be Wildcard.
type SubjectRef struct {
	Type     string
	ID       string
	Relation string // "" for a plain object
}

// Object returns the object part of the subject.
func (s SubjectRef) Object() ObjectRef { return ObjectRef{Type: s.Type, ID: s.ID} }

// IsWildcard reports whether the subject is type:*.
func (s SubjectRef) IsWildcard() bool { return s.ID == Wildcard }

// String formats the subject as type:id or type:id#relation.
func (s SubjectRef) String() string {
	if s.Relation == "" {
		return s.Type + ":" + s.ID
	}
	return s.Type + ":" + s.ID + "#" + s.Relation
}

// Caveat names a caveat declared in the schema and the part of its context
// that was fixed when the relationship was written.
type Caveat struct {
	Name    string
	Context map[string]any // JSON-compatible values; may be nil
}

// Relationship is one stored tuple.
type Relationship struct {
	Resource ObjectRef
	Relation string
	Subject  SubjectRef

	// Caveat, when non-nil, makes the relationship conditional.
	Caveat *Caveat
	// Expiration, when non-zero, is the instant from which the relationship
	// no longer exists.
	Expiration time.Time
}

// Key identifies a relationship regardless of its caveat and expiration:
// two relationships with the same Key cannot both be stored.
type Key struct {
	Resource ObjectRef
	Relation string
	Subject  SubjectRef
}

// Key returns the identity of r.
func (r Relationship) Key() Key {
	return Key{Resource: r.Resource, Relation: r.Relation, Subject: r.Subject}
}

// String formats the key as resource#relation@subject.
func (k Key) String() string {
	return k.Resource.String() + "#" + k.Relation + "@" + k.Subject.String()
}

// ExpiredAt reports whether r has expired at instant now.
func (r Relationship) ExpiredAt(now time.Time) bool {
	return !r.Expiration.IsZero() && !now.Before(r.Expiration)
}
