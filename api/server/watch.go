package server

import (
	pb "github.com/pemba-authz/pemba/api/pembav1"
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
	if err := tooLarge("optional_object_types", len(types), MaxWatchTypes, "object types"); err != nil {
		return err
	}
	keep := make(map[string]bool, len(types))
	for i, t := range types {
		if err := checkType(index("optional_object_types", i), t); err != nil {
			return err
		}
		keep[t] = true
	}
	start := ""
	if z := req.GetOptionalStartCursor(); z != nil {
		tok, err := zookieFromProto("optional_start_cursor", z)
		if err != nil {
			return err
		}
		start = tok
	}
	for ev, err := range w.s.eng.Watch(ctx, start) {
		if err != nil {
			return err
		}
		msg := &pb.WatchResponse{
			ChangesThrough: zookieToProto(ev.Zookie),
			Caller:         ev.Caller,
			CommittedAt:    timestamppb.New(ev.Time),
			SchemaChanged:  ev.SchemaChanged,
		}
		for _, c := range ev.Changes {
			if len(keep) > 0 && !keep[c.Relationship.Resource.Type] {
				continue
			}
			r, err := relationshipToProto(c.Relationship)
			if err != nil {
				return err
			}
			msg.Updates = append(msg.Updates, &pb.RelationshipUpdate{Operation: opToProto(c.Op), Relationship: r})
		}
		if len(msg.Updates) == 0 && !msg.SchemaChanged && len(ev.Changes) > 0 && !req.GetOptionalIncludeCheckpoints() {
			// Every change was filtered out.
			continue
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}
