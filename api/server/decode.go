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
// decodeErrors wraps every request of every service registered on the
// server (the dec function of a unary method, called before any
// interceptor, and the RecvMsg of a stream) and turns the recorded
// failure into INVALID_ARGUMENT. A message that reaches the codec
// unwrapped decodes as usual. Payloads that do not decompress still fail
// inside grpc-go, with INTERNAL.

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

// decodeErrors returns desc with every method's requests decoded through
// a *decoding, so that one that does not decode fails with
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
	d.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, s := range desc.Streams {
		h := s.Handler
		d.Streams[i] = s
		d.Streams[i].Handler = func(srv any, stream grpc.ServerStream) error {
			return h(srv, decodingStream{stream})
		}
	}
	return &d
}

// decodingStream is a server stream whose RecvMsg fails with
// INVALID_ARGUMENT for a message that does not decode.
type decodingStream struct{ grpc.ServerStream }

func (s decodingStream) RecvMsg(m any) error {
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
