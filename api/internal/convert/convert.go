// Package convert turns engine values into their protobuf messages: the
// one copy the server (answers) and the Go client (requests) share. It
// imports only engine/tuple from the engine, as the client may.
package convert

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Object converts an object reference.
func Object(o tuple.ObjectRef) *pb.ObjectReference {
	return &pb.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

// Subject converts a subject reference.
func Subject(s tuple.SubjectRef) *pb.SubjectReference {
	return &pb.SubjectReference{
		Object:           &pb.ObjectReference{ObjectType: s.Type, ObjectId: s.ID},
		OptionalRelation: s.Relation,
	}
}

// Context converts a caveat context; an empty one becomes nil.
func Context(ctx map[string]any) (*structpb.Struct, error) {
	if len(ctx) == 0 {
		return nil, nil
	}
	s, err := structpb.NewStruct(ctx)
	if err != nil {
		return nil, fmt.Errorf("caveat context: %w", err)
	}
	return s, nil
}

// Conditions converts the caveat and expiry of a relationship, each nil
// where absent.
func Conditions(c *tuple.Caveat, exp time.Time) (*pb.ContextualizedCaveat, *timestamppb.Timestamp, error) {
	var cv *pb.ContextualizedCaveat
	if c != nil {
		ctx, err := Context(c.Context)
		if err != nil {
			return nil, nil, err
		}
		cv = &pb.ContextualizedCaveat{CaveatName: c.Name, Context: ctx}
	}
	var ts *timestamppb.Timestamp
	if !exp.IsZero() {
		ts = timestamppb.New(exp)
	}
	return cv, ts, nil
}

// Relationship converts a relationship. It fails only when its caveat
// context holds a value protobuf's Struct cannot represent.
func Relationship(r tuple.Relationship) (*pb.Relationship, error) {
	cv, exp, err := Conditions(r.Caveat, r.Expiration)
	if err != nil {
		return nil, fmt.Errorf("%w (relationship %s)", err, r.Key())
	}
	return &pb.Relationship{
		Resource:          Object(r.Resource),
		Relation:          r.Relation,
		Subject:           Subject(r.Subject),
		OptionalCaveat:    cv,
		OptionalExpiresAt: exp,
	}, nil
}
