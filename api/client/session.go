package client

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// zookies remembers the zookie of the newest write this client completed
// and sends it as at_least_as_fresh on later reads that name no
// consistency, so that a client reads its own writes without passing
// zookies around (Options.ReadYourWrites).
type zookies struct {
	newest atomic.Pointer[pb.Zookie]
}

// remember records the zookie a write response carries, if any.
func (z *zookies) remember(reply any) {
	var zk *pb.Zookie
	switch r := reply.(type) {
	case *pb.WriteRelationshipsResponse:
		zk = r.GetWrittenAt()
	case *pb.DeleteRelationshipsResponse:
		zk = r.GetDeletedAt()
	case *pb.WriteSchemaResponse:
		zk = r.GetWrittenAt()
	case *pb.ImportRelationshipsResponse:
		zk = r.GetWrittenAt()
	}
	// Zookies are opaque, so "newest" is the write that completed last;
	// concurrent writers of one client may leave an older one, which is
	// still at least as fresh as that write.
	if zk.GetToken() != "" {
		z.newest.Store(zk)
	}
}

// consistencyField is what every read request has.
type consistencyField interface {
	proto.Message
	GetConsistency() *pb.Consistency
}

// apply returns req, or a copy of it that reads at least as fresh as the
// newest remembered write when req names no consistency. The caller's
// message is never modified.
func (z *zookies) apply(req any) any {
	m, ok := req.(consistencyField)
	zk := z.newest.Load()
	if !ok || zk == nil || m.GetConsistency() != nil {
		return req
	}
	out := proto.Clone(m)
	fd := out.ProtoReflect().Descriptor().Fields().ByName("consistency")
	if fd == nil {
		return req
	}
	out.ProtoReflect().Set(fd, protoreflect.ValueOfMessage((&pb.Consistency{
		Requirement: &pb.Consistency_AtLeastAsFresh{AtLeastAsFresh: zk},
	}).ProtoReflect()))
	return out
}

// Newest returns the zookie of the newest write made through c, or nil
// (always nil unless Options.ReadYourWrites is set).
func (c *Client) Newest() *pb.Zookie {
	if c.zk == nil {
		return nil
	}
	return c.zk.newest.Load()
}

func (z *zookies) unary() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if err := invoker(ctx, method, z.apply(req), reply, cc, opts...); err != nil {
			return err
		}
		z.remember(reply)
		return nil
	}
}

func (z *zookies) stream() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &zookieStream{ClientStream: s, z: z}, nil
	}
}

// zookieStream applies the newest zookie to the requests of server
// streams (LookupResources, ReadRelationships, ...) and remembers the
// zookie of ImportRelationships.
type zookieStream struct {
	grpc.ClientStream
	z *zookies
}

func (s *zookieStream) SendMsg(m any) error { return s.ClientStream.SendMsg(s.z.apply(m)) }

func (s *zookieStream) RecvMsg(m any) error {
	if err := s.ClientStream.RecvMsg(m); err != nil {
		return err
	}
	s.z.remember(m)
	return nil
}
