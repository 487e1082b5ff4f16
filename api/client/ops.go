package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Update is one change of a Write.
type Update struct {
	Op           pb.RelationshipUpdate_Operation
	Relationship tuple.Relationship
}

// Create adds r; the write fails with ALREADY_EXISTS if r exists.
func Create(r tuple.Relationship) Update {
	return Update{Op: pb.RelationshipUpdate_OPERATION_CREATE, Relationship: r}
}

// Touch adds r or replaces its caveat and expiration.
func Touch(r tuple.Relationship) Update {
	return Update{Op: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: r}
}

// Delete removes r (absent is not an error).
func Delete(r tuple.Relationship) Update {
	return Update{Op: pb.RelationshipUpdate_OPERATION_DELETE, Relationship: r}
}

// Write applies updates atomically and returns the zookie of the new
// revision.
func (c *Client) Write(ctx context.Context, updates ...Update) (*pb.Zookie, error) {
	req := &pb.WriteRelationshipsRequest{Updates: make([]*pb.RelationshipUpdate, len(updates))}
	for i, u := range updates {
		r, err := Relationship(u.Relationship)
		if err != nil {
			return nil, err
		}
		req.Updates[i] = &pb.RelationshipUpdate{Operation: u.Op, Relationship: r}
	}
	resp, err := c.Permissions.WriteRelationships(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.GetWrittenAt(), nil
}

// Check asks whether subject ("user:anne", "group:eng#member") has
// permission on resource ("doc:readme"). callerContext supplies caveat
// parameters and may be nil.
func (c *Client) Check(ctx context.Context, cons *pb.Consistency, resource, permission, subject string, callerContext map[string]any) (*pb.CheckPermissionResponse, error) {
	res, err := tuple.ParseObject(resource)
	if err != nil {
		return nil, fmt.Errorf("client: resource: %w", err)
	}
	sub, err := tuple.ParseSubject(subject)
	if err != nil {
		return nil, fmt.Errorf("client: subject: %w", err)
	}
	req := &pb.CheckPermissionRequest{Consistency: cons, Resource: Object(res), Permission: permission, Subject: Subject(sub)}
	if len(callerContext) > 0 {
		if req.Context, err = structpb.NewStruct(callerContext); err != nil {
			return nil, fmt.Errorf("client: context: %w", err)
		}
	}
	return c.Permissions.CheckPermission(ctx, req)
}

// Read yields the relationships matching f. Breaking out of the loop
// cancels the stream.
func (c *Client) Read(ctx context.Context, cons *pb.Consistency, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.Permissions.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: cons, RelationshipFilter: Filter(f)})
		if err != nil {
			yield(tuple.Relationship{}, err)
			return
		}
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			r, err := FromRelationship(msg.GetRelationship())
			if !yield(r, err) || err != nil {
				return
			}
		}
	}
}

// LookupResources yields the IDs of the resources of resourceType on
// which subject has permission, with their permissionship.
func (c *Client) LookupResources(ctx context.Context, cons *pb.Consistency, resourceType, permission, subject string) iter.Seq2[*pb.LookupResourcesResponse, error] {
	return func(yield func(*pb.LookupResourcesResponse, error) bool) {
		sub, err := tuple.ParseSubject(subject)
		if err != nil {
			yield(nil, fmt.Errorf("client: subject: %w", err))
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.Permissions.LookupResources(ctx, &pb.LookupResourcesRequest{
			Consistency: cons, ResourceObjectType: resourceType, Permission: permission, Subject: Subject(sub),
		})
		if err != nil {
			yield(nil, err)
			return
		}
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(msg, err) || err != nil {
				return
			}
		}
	}
}
