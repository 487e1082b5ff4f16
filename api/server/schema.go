package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/schema"
)

// schemas implements pb.SchemaServiceServer.
type schemas struct {
	pb.UnimplementedSchemaServiceServer
	s *Server
}

// ReadSchema returns the schema text in force.
func (h *schemas) ReadSchema(ctx context.Context, req *pb.ReadSchemaRequest) (*pb.ReadSchemaResponse, error) {
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	rs, err := h.s.eng.ReadSchema(ctx, c)
	if errors.Is(err, engine.ErrNoSchema) {
		// Nothing to read is NotFound here; elsewhere it is a failed
		// precondition of the request.
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	text, err := PrincipalOf(ctx).SchemaFor(rs.Text)
	if err != nil {
		return nil, err
	}
	return &pb.ReadSchemaResponse{SchemaText: text, ReadAt: zookieToProto(rs.Zookie)}, nil
}

// WriteSchema replaces the schema and reports what changed.
func (h *schemas) WriteSchema(ctx context.Context, req *pb.WriteSchemaRequest) (*pb.WriteSchemaResponse, error) {
	if err := tooMany("schema", "bytes", len(req.GetSchema()), MaxSchemaBytes); err != nil {
		return nil, err
	}
	if req.GetDryRun() {
		dry, err := DryRunSchemaAs(ctx, h.s.eng, PrincipalOf(ctx), req.GetSchema())
		if err != nil {
			return nil, err
		}
		return &pb.WriteSchemaResponse{Changes: changesToProto(dry.Changes), Impact: impactToProto(dry.Zookie, dry.Impact)}, nil
	}
	zk, changes, err := WriteSchemaAs(ctx, h.s.eng, PrincipalOf(ctx), req.GetSchema())
	if err != nil {
		return nil, err
	}
	return &pb.WriteSchemaResponse{WrittenAt: zookieToProto(zk), Changes: changesToProto(changes)}, nil
}

func changesToProto(cs []schema.Change) []*pb.SchemaChange {
	var out []*pb.SchemaChange
	for _, c := range cs {
		out = append(out, changeToProto(c))
	}
	return out
}

var changeKinds = map[schema.ChangeKind]pb.SchemaChange_Kind{
	schema.DefinitionAdded:    pb.SchemaChange_KIND_DEFINITION_ADDED,
	schema.DefinitionRemoved:  pb.SchemaChange_KIND_DEFINITION_REMOVED,
	schema.RelationAdded:      pb.SchemaChange_KIND_RELATION_ADDED,
	schema.RelationRemoved:    pb.SchemaChange_KIND_RELATION_REMOVED,
	schema.PermissionAdded:    pb.SchemaChange_KIND_PERMISSION_ADDED,
	schema.PermissionRemoved:  pb.SchemaChange_KIND_PERMISSION_REMOVED,
	schema.PermissionChanged:  pb.SchemaChange_KIND_PERMISSION_CHANGED,
	schema.SubjectTypeAdded:   pb.SchemaChange_KIND_SUBJECT_TYPE_ADDED,
	schema.SubjectTypeRemoved: pb.SchemaChange_KIND_SUBJECT_TYPE_REMOVED,
	schema.CaveatAdded:        pb.SchemaChange_KIND_CAVEAT_ADDED,
	schema.CaveatRemoved:      pb.SchemaChange_KIND_CAVEAT_REMOVED,
	schema.CaveatChanged:      pb.SchemaChange_KIND_CAVEAT_CHANGED,
	schema.InvariantAdded:     pb.SchemaChange_KIND_INVARIANT_ADDED,
	schema.InvariantRemoved:   pb.SchemaChange_KIND_INVARIANT_REMOVED,
	schema.InvariantChanged:   pb.SchemaChange_KIND_INVARIANT_CHANGED,
}

func changeToProto(c schema.Change) *pb.SchemaChange {
	out := &pb.SchemaChange{
		Kind:        changeKinds[c.Kind], // unknown kinds stay UNSPECIFIED
		Definition:  c.Definition,
		Name:        c.Name,
		Description: c.String(),
	}
	if a := c.Subject; a != nil {
		out.SubjectType = allowedSubjectString(a)
	}
	return out
}

// allowedSubjectString renders an allowed subject type as the schema
// language writes it.
func allowedSubjectString(a *schema.AllowedSubject) string {
	var b strings.Builder
	b.WriteString(a.Type)
	switch {
	case a.Wildcard:
		b.WriteString(":*")
	case a.Relation != "":
		b.WriteString("#" + a.Relation)
	}
	var with []string
	if a.Caveat != nil {
		with = append(with, a.Caveat.Name)
	}
	if a.Expiration {
		with = append(with, "expiration")
	}
	if len(with) > 0 {
		b.WriteString(" with " + strings.Join(with, " and "))
	}
	return b.String()
}
