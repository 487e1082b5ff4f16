package server

import (
	"context"
	"errors"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// scopeFromProto converts and validates a PermissionScope (names only;
// the engine checks it against the schema).
func scopeFromProto(path string, s *pb.PermissionScope) (engine.PermissionScope, error) {
	if s == nil {
		return engine.PermissionScope{}, missing(path)
	}
	sc := engine.PermissionScope{
		ResourceType:    s.GetResourceObjectType(),
		Permission:      s.GetPermission(),
		ResourceID:      s.GetOptionalResourceId(),
		SubjectType:     s.GetOptionalSubjectObjectType(),
		SubjectRelation: s.GetOptionalSubjectRelation(),
		SubjectID:       s.GetOptionalSubjectId(),
	}
	if sc.SubjectRelation == tuple.Ellipsis {
		sc.SubjectRelation = ""
	}
	if err := checkTypeAt(path, "resource_object_type", sc.ResourceType); err != nil {
		return sc, err
	}
	if err := checkRelation(join(path, "permission"), sc.Permission); err != nil {
		return sc, err
	}
	if sc.ResourceID != "" {
		if err := checkIDAt(path, "optional_resource_id", sc.ResourceID, false); err != nil {
			return sc, err
		}
	}
	if sc.SubjectType != "" {
		if err := checkTypeAt(path, "optional_subject_object_type", sc.SubjectType); err != nil {
			return sc, err
		}
	} else if sc.SubjectID != "" || sc.SubjectRelation != "" {
		return sc, missing(join(path, "optional_subject_object_type"))
	}
	if sc.SubjectRelation != "" {
		if err := checkRelation(join(path, "optional_subject_relation"), sc.SubjectRelation); err != nil {
			return sc, err
		}
	}
	if sc.SubjectID != "" {
		if err := checkIDAt(path, "optional_subject_id", sc.SubjectID, true); err != nil {
			return sc, err
		}
	}
	return sc, nil
}

func permissionChangeToProto(c engine.PermissionChange) *pb.PermissionChange {
	sub := &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: c.Subject.Type, ObjectId: c.Subject.ID}, OptionalRelation: c.Subject.Relation}
	return &pb.PermissionChange{
		Resource:           &pb.ObjectReference{ObjectType: c.Resource.Type, ObjectId: c.Resource.ID},
		Permission:         c.Permission,
		Subject:            sub,
		ExcludedSubjectIds: c.ExcludedIDs,
		Before:             permissionshipToProto(c.Before),
		After:              permissionshipToProto(c.After),
	}
}

// DiffPermissions streams a summary, then the changed results.
func (p *permissions) DiffPermissions(req *pb.DiffPermissionsRequest, stream pb.PermissionsService_DiffPermissionsServer) error {
	ctx := stream.Context()
	if req.GetFrom() == nil {
		return missing("from")
	}
	if req.GetTo() == nil {
		return missing("to")
	}
	from, err := zookieFromProto("from", req.GetFrom())
	if err != nil {
		return err
	}
	to, err := zookieFromProto("to", req.GetTo())
	if err != nil {
		return err
	}
	sc, err := scopeFromProto("scope", req.GetScope())
	if err != nil {
		return err
	}
	cctx, err := contextFromProto("context", req.GetContext())
	if err != nil {
		return err
	}
	d, err := p.eng().DiffPermissions(ctx, engine.DiffRequest{From: from, To: to, Scope: sc, Context: cctx})
	if err != nil {
		return err
	}
	pf, pt := zookieToProto(d.FromZookie), zookieToProto(d.ToZookie)
	if err := stream.Send(&pb.DiffPermissionsResponse{From: pf, To: pt,
		RelationshipsChanged: uint64(d.Relationships), Candidates: uint64(d.Candidates)}); err != nil {
		return err
	}
	for c, err := range d.Changes {
		if err != nil {
			return err
		}
		if err := stream.Send(&pb.DiffPermissionsResponse{From: pf, To: pt, Change: permissionChangeToProto(c)}); err != nil {
			return err
		}
	}
	return nil
}

// WatchPermissions streams a permission's changes until the client
// cancels. Send blocks while the client does not read, so a slow client
// holds no more than one message here; its position ages in the change
// log until the engine reports it fell behind.
func (w *watcher) WatchPermissions(req *pb.WatchPermissionsRequest, stream pb.WatchService_WatchPermissionsServer) error {
	ctx := stream.Context()
	sc, err := scopeFromProto("scope", req.GetScope())
	if err != nil {
		return err
	}
	ereq := engine.PermissionWatchRequest{Scope: sc}
	if z := req.GetOptionalStartCursor(); z != nil {
		if ereq.After, err = zookieFromProto("optional_start_cursor", z); err != nil {
			return err
		}
	}
	if t := req.GetOptionalStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return fieldErr("optional_start_time", err)
		}
		ereq.Time = t.AsTime()
	}
	if ereq.Context, err = contextFromProto("context", req.GetContext()); err != nil {
		return err
	}
	// Under StreamContext: a stopping server ends the stream at once.
	ctx, cancel := w.s.StreamContext(ctx)
	defer cancel()
	for ev, err := range w.s.eng.WatchPermissions(ctx, ereq) {
		if err != nil {
			if errors.Is(context.Cause(ctx), ErrShuttingDown) {
				return status.Error(codes.Unavailable, "server shutting down: reconnect and resume with optional_start_cursor and optional_start_time set to the last checkpoint's changes_through and evaluated_at")
			}
			return err
		}
		msg := &pb.WatchPermissionsResponse{ChangesThrough: zookieToProto(ev.Zookie), EvaluatedAt: timestamppb.New(ev.Time), Checkpoint: ev.Checkpoint}
		if !ev.Checkpoint {
			msg.Change = permissionChangeToProto(ev.PermissionChange)
			msg.Cause = pb.WatchPermissionsResponse_CAUSE_WRITE
			if ev.Cause == engine.CauseExpiry {
				msg.Cause = pb.WatchPermissionsResponse_CAUSE_EXPIRY
			}
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}
