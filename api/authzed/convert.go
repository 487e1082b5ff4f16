package authzed

import (
	"errors"
	"fmt"
	"strconv"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// This file converts between authzed.api.v1 messages and the engine's
// plain values. Conversions from the wire validate as they go and report
// an invalid field as a *server.FieldError naming it by its path in the
// request, the same error type (and so the same code, INVALID_ARGUMENT)
// as pemba.v1.

// errMissing is the reason of a field left unset that must be set.
var errMissing = errors.New("is required")

func missing(field string) error { return &server.FieldError{Field: field, Err: errMissing} }

func fieldErr(field string, err error) error {
	if err == nil {
		return nil
	}
	return &server.FieldError{Field: field, Err: err}
}

func fieldf(field, format string, args ...any) error {
	return &server.FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// unimplemented refuses a field Pemba cannot honour.
func unimplemented(field, why string) error {
	return status.Errorf(codes.Unimplemented, "%s is not supported by Pemba: %s", field, why)
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// join names a field by its path; either part may be empty.
func join(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}

// checkType, checkRelation and checkID validate the field join(path,
// leaf), naming it only when it is invalid: a valid request builds no
// field paths.
func checkType(path, leaf, s string) error {
	return checkField(path, leaf, func(f string) error { return tuple.ValidateType(f, s) })
}

func checkRelation(path, leaf, s string) error {
	return checkField(path, leaf, func(f string) error { return tuple.ValidateRelation(f, s) })
}

func checkID(path, leaf, s string, wildcard bool) error {
	return checkField(path, leaf, func(f string) error { return tuple.ValidateID(f, s, wildcard) })
}

// checkField runs validate without a field name, and again with the
// joined one only when it fails.
func checkField(path, leaf string, validate func(field string) error) error {
	if validate("") == nil {
		return nil
	}
	f := join(path, leaf)
	return fieldErr(f, validate(f))
}

// tooMany reports a field over a limit.
func tooMany(field, what string, got, limit int) error {
	if got <= limit {
		return nil
	}
	return fieldErr(field, &engine.LimitError{Limit: what, Max: limit, Got: got})
}

// consistency converts a consistency requirement; unset means
// minimize_latency, as in SpiceDB. The engine decodes the ZedToken (a
// Pemba zookie) itself.
func consistency(path string, c *v1.Consistency) (engine.Consistency, error) {
	switch r := c.GetRequirement().(type) {
	case nil:
		return engine.MinimizeLatency(), nil
	case *v1.Consistency_MinimizeLatency:
		if !r.MinimizeLatency {
			return engine.Consistency{}, fieldf(join(path, "minimize_latency"), "must be true when set")
		}
		return engine.MinimizeLatency(), nil
	case *v1.Consistency_FullyConsistent:
		if !r.FullyConsistent {
			return engine.Consistency{}, fieldf(join(path, "fully_consistent"), "must be true when set")
		}
		return engine.FullyConsistent(), nil
	case *v1.Consistency_AtLeastAsFresh:
		tok, err := zedToken(join(path, "at_least_as_fresh"), r.AtLeastAsFresh)
		if err != nil {
			return engine.Consistency{}, err
		}
		return engine.AtLeastAsFresh(tok), nil
	case *v1.Consistency_AtExactSnapshot:
		tok, err := zedToken(join(path, "at_exact_snapshot"), r.AtExactSnapshot)
		if err != nil {
			return engine.Consistency{}, err
		}
		return engine.AtExactSnapshot(tok), nil
	}
	return engine.Consistency{}, fieldf(path, "unknown requirement %T", c.GetRequirement())
}

func zedToken(path string, z *v1.ZedToken) (string, error) {
	if z.GetToken() == "" {
		return "", missing(join(path, "token"))
	}
	return z.GetToken(), nil
}

func toZedToken(zk string) *v1.ZedToken {
	if zk == "" {
		return nil
	}
	return &v1.ZedToken{Token: zk}
}

func toCursor(tok string) *v1.Cursor {
	if tok == "" {
		return nil
	}
	return &v1.Cursor{Token: tok}
}

// object converts a resource reference (no wildcard).
func object(path string, o *v1.ObjectReference) (tuple.ObjectRef, error) {
	if o == nil {
		return tuple.ObjectRef{}, missing(path)
	}
	if err := checkType(path, "object_type", o.GetObjectType()); err != nil {
		return tuple.ObjectRef{}, err
	}
	if err := checkID(path, "object_id", o.GetObjectId(), false); err != nil {
		return tuple.ObjectRef{}, err
	}
	return tuple.ObjectRef{Type: o.GetObjectType(), ID: o.GetObjectId()}, nil
}

// subject converts a subject reference: the ID may be the wildcard, and
// the relation "..." means none.
func subject(path string, s *v1.SubjectReference) (tuple.SubjectRef, error) {
	if s == nil {
		return tuple.SubjectRef{}, missing(path)
	}
	o := s.GetObject()
	if o == nil {
		return tuple.SubjectRef{}, missing(join(path, "object"))
	}
	if err := checkType(path, "object.object_type", o.GetObjectType()); err != nil {
		return tuple.SubjectRef{}, err
	}
	if err := checkID(path, "object.object_id", o.GetObjectId(), true); err != nil {
		return tuple.SubjectRef{}, err
	}
	sub := tuple.SubjectRef{Type: o.GetObjectType(), ID: o.GetObjectId()}
	if rel := s.GetOptionalRelation(); rel != "" && rel != tuple.Ellipsis {
		if sub.IsWildcard() {
			return sub, fieldf(join(path, "optional_relation"), "a wildcard subject cannot have a relation")
		}
		if err := checkRelation(path, "optional_relation", rel); err != nil {
			return sub, err
		}
		sub.Relation = rel
	}
	return sub, nil
}

// caveatContext converts a caveat context; nil stays nil. Numbers come
// out as float64, which the engine accepts for integer parameters when
// they are integral.
func caveatContext(path string, s *structpb.Struct) (map[string]any, error) {
	if s == nil || len(s.GetFields()) == 0 {
		return nil, nil
	}
	for k, v := range s.GetFields() {
		if v == nil || v.GetKind() == nil {
			return nil, fieldf(join(path, k), "has no value")
		}
	}
	return s.AsMap(), nil
}

// relationship converts and validates a relationship (names and shapes;
// the engine checks it against the schema).
func relationship(path string, r *v1.Relationship) (tuple.Relationship, error) {
	var out tuple.Relationship
	if r == nil {
		return out, missing(path)
	}
	var err error
	if out.Resource, err = object(join(path, "resource"), r.GetResource()); err != nil {
		return out, err
	}
	if err := checkRelation(path, "relation", r.GetRelation()); err != nil {
		return out, err
	}
	out.Relation = r.GetRelation()
	if out.Subject, err = subject(join(path, "subject"), r.GetSubject()); err != nil {
		return out, err
	}
	if c := r.GetOptionalCaveat(); c != nil {
		cp := join(path, "optional_caveat")
		if err := fieldErr(join(cp, "caveat_name"), tuple.ValidateCaveat(join(cp, "caveat_name"), c.GetCaveatName())); err != nil {
			return out, err
		}
		out.Caveat = &tuple.Caveat{Name: c.GetCaveatName()}
		if out.Caveat.Context, err = caveatContext(join(cp, "context"), c.GetContext()); err != nil {
			return out, err
		}
	}
	if ts := r.GetOptionalExpiresAt(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return out, fieldErr(join(path, "optional_expires_at"), err)
		}
		out.Expiration = ts.AsTime().UTC()
	}
	return out, nil
}

// toRelationship converts a relationship for an answer.
func toRelationship(r tuple.Relationship) (*v1.Relationship, error) {
	out := &v1.Relationship{
		Resource: toObject(r.Resource),
		Relation: r.Relation,
		Subject:  toSubject(r.Subject),
	}
	if c := r.Caveat; c != nil {
		cv := &v1.ContextualizedCaveat{CaveatName: c.Name}
		if len(c.Context) > 0 {
			s, err := structpb.NewStruct(c.Context)
			if err != nil {
				return nil, fmt.Errorf("caveat context of %s: %w", r.Key(), err)
			}
			cv.Context = s
		}
		out.OptionalCaveat = cv
	}
	if !r.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(r.Expiration)
	}
	return out, nil
}

func toObject(o tuple.ObjectRef) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

func toSubject(s tuple.SubjectRef) *v1.SubjectReference {
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: s.Type, ObjectId: s.ID}, OptionalRelation: s.Relation}
}

// filter converts a relationship filter. needType makes resource_type
// required (deletes and preconditions, as in SpiceDB).
func filter(path string, f *v1.RelationshipFilter, needType bool) (tuple.Filter, error) {
	var out tuple.Filter
	if f == nil {
		if needType {
			return out, missing(path)
		}
		return out, nil
	}
	if f.GetOptionalResourceIdPrefix() != "" {
		return out, unimplemented(join(path, "optional_resource_id_prefix"), "filter by exact optional_resource_id instead")
	}
	if t := f.GetResourceType(); t != "" || needType {
		if err := checkType(path, "resource_type", t); err != nil {
			return out, err
		}
		out.ResourceType = t
	}
	if id := f.GetOptionalResourceId(); id != "" {
		if err := checkID(path, "optional_resource_id", id, false); err != nil {
			return out, err
		}
		out.ResourceID = id
	}
	if rel := f.GetOptionalRelation(); rel != "" {
		if err := checkRelation(path, "optional_relation", rel); err != nil {
			return out, err
		}
		out.Relation = rel
	}
	if sf := f.GetOptionalSubjectFilter(); sf != nil {
		sp := join(path, "optional_subject_filter")
		if err := checkType(sp, "subject_type", sf.GetSubjectType()); err != nil {
			return out, err
		}
		sub := &tuple.SubjectFilter{Type: sf.GetSubjectType()}
		if id := sf.GetOptionalSubjectId(); id != "" {
			if err := checkID(sp, "optional_subject_id", id, true); err != nil {
				return out, err
			}
			sub.ID = id
		}
		if rf := sf.GetOptionalRelation(); rf != nil {
			switch rel := rf.GetRelation(); rel {
			case "", tuple.Ellipsis:
				// Present but empty: plain objects only, as in SpiceDB.
				sub.Relation = tuple.Ellipsis
			default:
				if err := checkRelation(sp, "optional_relation.relation", rel); err != nil {
					return out, err
				}
				sub.Relation = rel
			}
		}
		out.Subject = sub
	}
	return out, nil
}

// preconditions converts write preconditions.
func preconditions(path string, ps []*v1.Precondition, limit int) ([]engine.Precondition, error) {
	if err := tooMany(path, "preconditions per write", len(ps), limit); err != nil {
		return nil, err
	}
	var out []engine.Precondition
	for i, p := range ps {
		pp := index(path, i)
		if p == nil {
			return nil, missing(pp)
		}
		var c engine.Precondition
		switch op := p.GetOperation(); op {
		case v1.Precondition_OPERATION_MUST_MATCH:
			c.MustExist = true
		case v1.Precondition_OPERATION_MUST_NOT_MATCH:
		case v1.Precondition_OPERATION_UNSPECIFIED:
			return nil, missing(join(pp, "operation"))
		default:
			return nil, fieldf(join(pp, "operation"), "unknown operation %d", int32(op))
		}
		f, err := filter(join(pp, "filter"), p.GetFilter(), true)
		if err != nil {
			return nil, err
		}
		c.Filter = f
		out = append(out, c)
	}
	return out, nil
}

// operation converts the operation of a relationship update.
func operation(path string, op v1.RelationshipUpdate_Operation) (engine.Op, error) {
	switch op {
	case v1.RelationshipUpdate_OPERATION_CREATE:
		return engine.OpCreate, nil
	case v1.RelationshipUpdate_OPERATION_TOUCH:
		return engine.OpTouch, nil
	case v1.RelationshipUpdate_OPERATION_DELETE:
		return engine.OpDelete, nil
	case v1.RelationshipUpdate_OPERATION_UNSPECIFIED:
		return 0, missing(path)
	}
	return 0, fieldf(path, "unknown operation %d", int32(op))
}

func toOperation(op engine.Op) v1.RelationshipUpdate_Operation {
	switch op {
	case engine.OpCreate:
		return v1.RelationshipUpdate_OPERATION_CREATE
	case engine.OpTouch:
		return v1.RelationshipUpdate_OPERATION_TOUCH
	case engine.OpDelete:
		return v1.RelationshipUpdate_OPERATION_DELETE
	}
	return v1.RelationshipUpdate_OPERATION_UNSPECIFIED
}

func toCheckPermissionship(p engine.Permissionship) v1.CheckPermissionResponse_Permissionship {
	switch p {
	case engine.NoPermission:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
	case engine.HasPermission:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	case engine.ConditionalPermission:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return v1.CheckPermissionResponse_PERMISSIONSHIP_UNSPECIFIED
}

func toLookupPermissionship(p engine.Permissionship) v1.LookupPermissionship {
	switch p {
	case engine.HasPermission:
		return v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION
	case engine.ConditionalPermission:
		return v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_UNSPECIFIED
}

// partialInfo is set for conditional answers only.
func partialInfo(p engine.Permissionship, missing []string) *v1.PartialCaveatInfo {
	if p != engine.ConditionalPermission {
		return nil
	}
	return &v1.PartialCaveatInfo{MissingRequiredContext: missing}
}
