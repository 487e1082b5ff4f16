package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	encproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// A request that does not decode (bytes that are not the method's message,
// a google.protobuf.Struct context nested past protobuf's recursion limit,
// a string that is not UTF-8) is the caller's fault: INVALID_ARGUMENT.
// grpc-go answers INTERNAL for it, which Pemba keeps for its own faults,
// and no codec can change that on its own: the server stream's RecvMsg
// wraps every codec error in status.Errorf(codes.Internal, ...) and
// writes that status to the client at once, before the handler returns.
//
// So the server's codec (decodeCodec, a server option, not grpc-go's
// global codec registry) never fails to decode a request that comes
// wrapped in a *decoding: it records the failure there and returns nil.
// Every request is wrapped so, and the recorded failure turned into
// INVALID_ARGUMENT: a unary method's by the dec function that
// decodeErrors gives its handler in every service registered (it runs
// before any interceptor), a stream's by decodeStreams, the first stream
// interceptor, so that the interceptors after it (metrics, logging, and
// any in Config.GRPCOptions) see the request message itself. A message
// that reaches the codec unwrapped decodes as usual. Payloads that do
// not decompress still fail inside grpc-go, with INTERNAL.

// decoding carries a request message through the codec, and the codec's
// failure back.
type decoding struct {
	msg any
	err error
}

// result is nil, or the INVALID_ARGUMENT status of a failed decoding.
func (d *decoding) result() error {
	if d.err == nil {
		return nil
	}
	return withReason(status.New(codes.InvalidArgument, "request does not decode: "+d.err.Error()), ReasonInvalidArgument).Err()
}

// decodeCodec is grpc-go's proto codec, except for requests in a
// *decoding (see above).
type decodeCodec struct{ encoding.CodecV2 }

func newDecodeCodec() decodeCodec { return decodeCodec{encoding.GetCodecV2(encproto.Name)} }

func (c decodeCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if d, ok := v.(*decoding); ok {
		d.err = c.CodecV2.Unmarshal(data, d.msg)
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// decodeErrors returns desc with every unary method's request decoded
// through a *decoding, so that one that does not decode fails with
// INVALID_ARGUMENT.
func decodeErrors(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		h := m.Handler
		d.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			return h(srv, ctx, func(v any) error {
				d := &decoding{msg: v}
				if err := dec(d); err != nil {
					return err
				}
				return d.result()
			}, ic)
		}}
	}
	return &d
}

// decodeStreams is the first stream interceptor: it decodes the messages
// a stream receives through a *decoding.
func decodeStreams(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, decodingStream{ss})
}

// decodingStream is a server stream whose RecvMsg fails with
// INVALID_ARGUMENT for a message that does not decode.
type decodingStream struct{ grpc.ServerStream }

func (s decodingStream) RecvMsg(m any) error {
	if _, ok := m.(*decoding); ok {
		return s.ServerStream.RecvMsg(m) // already wrapped
	}
	d := &decoding{msg: m}
	if err := s.ServerStream.RecvMsg(d); err != nil {
		return err
	}
	return d.result()
}

// decodingServer is a gRPC server that registers services with
// decodeErrors (reflection.Register takes one).
type decodingServer struct{ *grpc.Server }

func (r decodingServer) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.Server.RegisterService(decodeErrors(desc), impl)
}
