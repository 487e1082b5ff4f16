package authzed

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// watcher implements v1.WatchServiceServer.
type watcher struct {
	v1.UnimplementedWatchServiceServer
	*api
}

// Watch streams committed transactions after optional_start_cursor (a
// ZedToken; unset: after the head revision) until the client cancels.
// Each transaction is one message whose changes_through resumes after it,
// except that a transaction of more than server.MaxWatchUpdates matching
// updates (a bulk import) is split: its earlier parts carry the ZedToken
// of the last transaction sent whole (nil if none), so that resuming from
// any message never skips a change.
func (w *watcher) Watch(req *v1.WatchRequest, stream grpc.ServerStreamingServer[v1.WatchResponse]) error {
	ctx := stream.Context()
	types := req.GetOptionalObjectTypes()
	filters := req.GetOptionalRelationshipFilters()
	if len(types) > 0 && len(filters) > 0 {
		return fieldf("optional_relationship_filters", "cannot be combined with optional_object_types")
	}
	if err := tooMany("optional_object_types", "object types", len(types), server.MaxWatchTypes); err != nil {
		return err
	}
	if err := tooMany("optional_relationship_filters", "filters", len(filters), server.MaxWatchTypes); err != nil {
		return err
	}
	who := server.PrincipalOf(ctx)
	keep := make(map[string]bool, len(types))
	for i, t := range types {
		if err := checkType(index("optional_object_types", i), "", t); err != nil {
			return err
		}
		if err := who.TypeErr(index("optional_object_types", i), t); err != nil {
			return err
		}
		keep[t] = true
	}
	var fs []tuple.Filter
	for i, f := range filters {
		tf, err := filter(index("optional_relationship_filters", i), f, false)
		if err != nil {
			return err
		}
		if err := who.FilterErr(index("optional_relationship_filters", i), tf); err != nil {
			return err
		}
		fs = append(fs, tf)
	}
	var relationships, schemaUpdates, checkpoints bool
	for i, k := range req.GetOptionalUpdateKinds() {
		switch k {
		case v1.WatchKind_WATCH_KIND_UNSPECIFIED, v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES:
			relationships = true
		case v1.WatchKind_WATCH_KIND_INCLUDE_SCHEMA_UPDATES:
			schemaUpdates = true
		case v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS:
			checkpoints = true
		default:
			return fieldf(index("optional_update_kinds", i), "unknown kind %d", int32(k))
		}
	}
	if len(req.GetOptionalUpdateKinds()) == 0 {
		relationships = true
	}
	matches := func(r tuple.Relationship) bool {
		if !who.Sees(r) {
			return false
		}
		switch {
		case len(keep) > 0:
			return keep[r.Resource.Type]
		case len(fs) > 0:
			for _, f := range fs {
				if f.Matches(r) {
					return true
				}
			}
			return false
		}
		return true
	}
	start := ""
	if z := req.GetOptionalStartCursor(); z != nil {
		tok, err := zedToken("optional_start_cursor", z)
		if err != nil {
			return err
		}
		start = tok
	}
	var last *v1.ZedToken // of the last transaction sent whole
	if start != "" {
		last = toZedToken(start)
	}
	// Under StreamContext: a stopping server ends the stream at once.
	ctx, cancel := w.srv.StreamContext(ctx)
	defer cancel()
	for ev, err := range w.eng.Watch(ctx, start) {
		if err != nil {
			if errors.Is(context.Cause(ctx), server.ErrShuttingDown) {
				return status.Error(codes.Unavailable, "server shutting down: reconnect and resume with optional_start_cursor set to the last changes_through received")
			}
			return err
		}
		var updates []*v1.RelationshipUpdate
		if relationships {
			for _, c := range ev.Changes {
				if !matches(c.Relationship) {
					continue
				}
				r, err := toRelationship(c.Relationship)
				if err != nil {
					return err
				}
				updates = append(updates, &v1.RelationshipUpdate{Operation: toOperation(c.Op), Relationship: r})
			}
		}
		// A tenant cannot tell its own schema writes from the others'.
		schema := schemaUpdates && ev.SchemaChanged && who.Tenant == ""
		zt := toZedToken(ev.Zookie)
		if len(updates) == 0 && !schema {
			if checkpoints {
				if err := stream.Send(&v1.WatchResponse{ChangesThrough: zt, IsCheckpoint: true}); err != nil {
					return err
				}
				last = zt
			}
			continue
		}
		for len(updates) > server.MaxWatchUpdates {
			if err := stream.Send(&v1.WatchResponse{Updates: updates[:server.MaxWatchUpdates], ChangesThrough: last}); err != nil {
				return err
			}
			updates = updates[server.MaxWatchUpdates:]
		}
		if err := stream.Send(&v1.WatchResponse{Updates: updates, ChangesThrough: zt, SchemaUpdated: schema}); err != nil {
			return err
		}
		last = zt
	}
	return nil
}
