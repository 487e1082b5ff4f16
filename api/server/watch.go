package server

import (
	"context"
	"errors"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// watcher implements pb.WatchServiceServer.
type watcher struct {
	pb.UnimplementedWatchServiceServer
	s *Server
}

// Watch streams committed transactions until the client cancels.
func (w *watcher) Watch(req *pb.WatchRequest, stream pb.WatchService_WatchServer) error {
	ctx := stream.Context()
	types := req.GetOptionalObjectTypes()
	if err := tooMany("optional_object_types", "object types", len(types), MaxWatchTypes); err != nil {
		return err
	}
	who := PrincipalOf(ctx)
	keep := make(map[string]bool, len(types))
	for i, t := range types {
		if err := checkType(index("optional_object_types", i), t); err != nil {
			return err
		}
		if err := who.TypeErr(index("optional_object_types", i), t); err != nil {
			return err
		}
		keep[t] = true
	}
	if err := w.s.eng.CheckDefinitions(ctx, types); err != nil {
		if errors.Is(err, engine.ErrUnknownDefinition) {
			return fieldErr("optional_object_types", err)
		}
		return err
	}
	start := ""
	if z := req.GetOptionalStartCursor(); z != nil {
		tok, err := zookieFromProto("optional_start_cursor", z)
		if err != nil {
			return err
		}
		start = tok
	}
	// Under StreamContext: a stopping server ends the stream at once.
	ctx, cancel := w.s.StreamContext(ctx)
	defer cancel()
	for ev, err := range w.s.eng.Watch(ctx, start) {
		if err != nil {
			if errors.Is(context.Cause(ctx), ErrShuttingDown) {
				return status.Error(codes.Unavailable, "server shutting down: reconnect and resume with optional_start_cursor set to the last changes_through received")
			}
			return err
		}
		var updates []*pb.RelationshipUpdate
		for _, c := range ev.Changes {
			if len(keep) > 0 && !keep[c.Relationship.Resource.Type] || !who.Sees(c.Relationship) {
				continue
			}
			r, err := convert.Relationship(c.Relationship)
			if err != nil {
				return err
			}
			updates = append(updates, &pb.RelationshipUpdate{Operation: opToProto(c.Op), Relationship: r})
		}
		if len(updates) == 0 && !ev.SchemaChanged && len(ev.Changes) > 0 && !req.GetOptionalIncludeCheckpoints() {
			// Every change was filtered out.
			continue
		}
		caller, schemaChanged := ev.Caller, ev.SchemaChanged
		if who.Tenant != "" && len(updates) == 0 {
			// Another tenant's transaction (or a schema write, which a
			// tenant cannot tell its own from): at most a checkpoint,
			// without the other caller's name.
			if !req.GetOptionalIncludeCheckpoints() {
				continue
			}
			caller, schemaChanged = "", false
		}
		// Split big transactions so no message nears the size limit;
		// only the last part says the transaction is through.
		for {
			n := min(len(updates), MaxWatchUpdates)
			msg := &pb.WatchResponse{
				Updates:           updates[:n],
				Caller:            caller,
				CommittedAt:       timestamppb.New(ev.Time),
				SchemaChanged:     schemaChanged,
				MoreInTransaction: n < len(updates),
			}
			updates = updates[n:]
			if !msg.MoreInTransaction {
				msg.ChangesThrough = zookieToProto(ev.Zookie)
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
			if len(updates) == 0 {
				break
			}
		}
	}
	return nil
}
