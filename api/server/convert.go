package server

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// This file converts between protobuf messages and package tuple's plain
// values. Conversions from the wire validate as they go and name the
// offending field by its path in the request (updates[2].relationship.
// resource.object_id), so that errors point at what to fix.

// errMissing is the reason of a *FieldError for a required field left unset.
var errMissing = errors.New("is required")

// FieldError reports an invalid request field. It wraps the reason, which
// may be a tuple.ErrInvalid error, an engine limit error or errMissing.
type FieldError struct {
	// Field is the path of the field in the request, e.g.
	// "updates[2].relationship.resource.object_id".
	Field string
	Err   error
}

// Error names the field and the reason.
func (e *FieldError) Error() string {
	var ie *tuple.InvalidError
	if errors.As(e.Err, &ie) && ie.Field == e.Field {
		// tuple already named the field.
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *FieldError) Unwrap() error { return e.Err }

func missing(field string) error { return &FieldError{Field: field, Err: errMissing} }

func fieldErr(field string, err error) error {
	if err == nil {
		return nil
	}
	return &FieldError{Field: field, Err: err}
}

// fieldf reports a reason given as text.
func fieldf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func checkType(field, s string) error {
	return fieldErr(field, tuple.ValidateType(field, s))
}

func checkRelation(field, s string) error {
	return fieldErr(field, tuple.ValidateRelation(field, s))
}

func checkCaveat(field, s string) error {
	return fieldErr(field, tuple.ValidateCaveat(field, s))
}

func checkID(field, s string, wildcard bool) error {
	return fieldErr(field, tuple.ValidateID(field, s, wildcard))
}

// The checks below build a field's path (path + "." + name) only when it
// fails: concatenating paths on every call was several allocations per
// request on the hot path.

func checkTypeAt(path, name, s string) error {
	if tuple.ValidateType(name, s) == nil {
		return nil
	}
	return checkType(join(path, name), s)
}

func checkIDAt(path, name, s string, wildcard bool) error {
	if tuple.ValidateID(name, s, wildcard) == nil {
		return nil
	}
	return checkID(join(path, name), s, wildcard)
}

// objectFromProto converts a resource reference (no wildcard).
func objectFromProto(path string, o *pb.ObjectReference) (tuple.ObjectRef, error) {
	if o == nil {
		return tuple.ObjectRef{}, missing(path)
	}
	if err := checkTypeAt(path, "object_type", o.GetObjectType()); err != nil {
		return tuple.ObjectRef{}, err
	}
	if err := checkIDAt(path, "object_id", o.GetObjectId(), false); err != nil {
		return tuple.ObjectRef{}, err
	}
	return tuple.ObjectRef{Type: o.GetObjectType(), ID: o.GetObjectId()}, nil
}

// subjectFromProto converts a subject reference: the ID may be the
// wildcard, and the relation "..." means none.
func subjectFromProto(path string, s *pb.SubjectReference) (tuple.SubjectRef, error) {
	if s == nil {
		return tuple.SubjectRef{}, missing(path)
	}
	o := s.GetObject()
	if o == nil {
		return tuple.SubjectRef{}, missing(join(path, "object"))
	}
	if tuple.ValidateType("object_type", o.GetObjectType()) != nil {
		return tuple.SubjectRef{}, checkType(join(join(path, "object"), "object_type"), o.GetObjectType())
	}
	if tuple.ValidateID("object_id", o.GetObjectId(), true) != nil {
		return tuple.SubjectRef{}, checkID(join(join(path, "object"), "object_id"), o.GetObjectId(), true)
	}
	sub := tuple.SubjectRef{Type: o.GetObjectType(), ID: o.GetObjectId()}
	if rel := s.GetOptionalRelation(); rel != "" && rel != tuple.Ellipsis {
		if sub.IsWildcard() {
			return sub, fieldf(join(path, "optional_relation"), "a wildcard subject cannot have a relation")
		}
		if tuple.ValidateRelation("optional_relation", rel) != nil {
			return sub, checkRelation(join(path, "optional_relation"), rel)
		}
		sub.Relation = rel
	}
	return sub, nil
}

// relationshipFromProto converts and validates a relationship (names and
// shapes only; the engine checks it against the schema).
func relationshipFromProto(path string, r *pb.Relationship) (tuple.Relationship, error) {
	var out tuple.Relationship
	if r == nil {
		return out, missing(path)
	}
	var err error
	if out.Resource, err = objectFromProto(join(path, "resource"), r.GetResource()); err != nil {
		return out, err
	}
	if err := checkRelation(join(path, "relation"), r.GetRelation()); err != nil {
		return out, err
	}
	out.Relation = r.GetRelation()
	if out.Subject, err = subjectFromProto(join(path, "subject"), r.GetSubject()); err != nil {
		return out, err
	}
	if c := r.GetOptionalCaveat(); c != nil {
		cp := join(path, "optional_caveat")
		if err := checkCaveat(join(cp, "caveat_name"), c.GetCaveatName()); err != nil {
			return out, err
		}
		out.Caveat = &tuple.Caveat{Name: c.GetCaveatName()}
		if out.Caveat.Context, err = contextFromProto(join(cp, "context"), c.GetContext()); err != nil {
			return out, err
		}
	}
	if ts := r.GetOptionalExpiresAt(); ts != nil {
		ep := join(path, "optional_expires_at")
		if err := ts.CheckValid(); err != nil {
			return out, fieldErr(ep, err)
		}
		out.Expiration = ts.AsTime().UTC()
	}
	return out, nil
}

// contextFromProto converts a caveat context; nil stays nil. Numbers come
// out as float64, which the engine accepts for integer parameters when
// they are integral.
func contextFromProto(path string, s *structpb.Struct) (map[string]any, error) {
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

// filterFromProto converts a relationship filter. needType makes
// resource_type required (deletes and preconditions).
func filterFromProto(path string, f *pb.RelationshipFilter, needType bool) (tuple.Filter, error) {
	var out tuple.Filter
	if f == nil {
		if needType {
			return out, missing(path)
		}
		return out, nil
	}
	if t := f.GetResourceType(); t != "" || needType {
		if err := checkType(join(path, "resource_type"), t); err != nil {
			return out, err
		}
		out.ResourceType = t
	}
	if id := f.GetOptionalResourceId(); id != "" {
		if err := checkID(join(path, "optional_resource_id"), id, false); err != nil {
			return out, err
		}
		out.ResourceID = id
	}
	if rel := f.GetOptionalRelation(); rel != "" {
		if err := checkRelation(join(path, "optional_relation"), rel); err != nil {
			return out, err
		}
		out.Relation = rel
	}
	if sf := f.GetOptionalSubjectFilter(); sf != nil {
		sp := join(path, "optional_subject_filter")
		if err := checkType(join(sp, "subject_type"), sf.GetSubjectType()); err != nil {
			return out, err
		}
		sub := &tuple.SubjectFilter{Type: sf.GetSubjectType()}
		if id := sf.GetOptionalSubjectId(); id != "" {
			if err := checkID(join(sp, "optional_subject_id"), id, true); err != nil {
				return out, err
			}
			sub.ID = id
		}
		if rf := sf.GetOptionalRelation(); rf != nil {
			switch rel := rf.GetRelation(); rel {
			case "", tuple.Ellipsis:
				// Present but empty: plain objects only.
				sub.Relation = tuple.Ellipsis
			default:
				if err := checkRelation(join(sp, "optional_relation.relation"), rel); err != nil {
					return out, err
				}
				sub.Relation = rel
			}
		}
		out.Subject = sub
	}
	return out, nil
}

// opFromProto converts the operation of a relationship update.
func opFromProto(path string, op pb.RelationshipUpdate_Operation) (engine.Op, error) {
	switch op {
	case pb.RelationshipUpdate_OPERATION_CREATE:
		return engine.OpCreate, nil
	case pb.RelationshipUpdate_OPERATION_TOUCH:
		return engine.OpTouch, nil
	case pb.RelationshipUpdate_OPERATION_DELETE:
		return engine.OpDelete, nil
	case pb.RelationshipUpdate_OPERATION_UNSPECIFIED:
		return 0, missing(path)
	}
	return 0, fieldf(path, "unknown operation %d", int32(op))
}

// opToProto converts the operation of a change.
func opToProto(op engine.Op) pb.RelationshipUpdate_Operation {
	switch op {
	case engine.OpCreate:
		return pb.RelationshipUpdate_OPERATION_CREATE
	case engine.OpTouch:
		return pb.RelationshipUpdate_OPERATION_TOUCH
	case engine.OpDelete:
		return pb.RelationshipUpdate_OPERATION_DELETE
	}
	return pb.RelationshipUpdate_OPERATION_UNSPECIFIED
}
