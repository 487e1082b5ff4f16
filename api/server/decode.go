package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

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
// that reaches the codec unwrapped decodes as usual.
//
// A gzip payload that does not decompress is the caller's fault too, and
// grpc-go fails it with INTERNAL before any codec runs. So the server
// decompresses gzip itself (gunzip, a server option that takes precedence
// over the registered compressor): a payload that does not decompress
// comes out as undecompressed followed by the error's text, which is never
// a message (protobuf's field number 0 is invalid), and the codec reports
// it as the request's decoding failure. The output is bounded at one byte
// past the receive limit, as grpc-go's own gzip decompressor bounds it, so
// that grpc-go's size check refuses a zip bomb with RESOURCE_EXHAUSTED.

// decoding carries a request message through the codec, and the codec's
// failure back.
type decoding struct {
	msg  any
	err  error
	size int // bytes decoded
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
	d, wrapped := v.(*decoding)
	if wrapped {
		v = d.msg
	}
	err := decompressFailure(data)
	if err == nil {
		err = c.CodecV2.Unmarshal(data, v)
	}
	if wrapped {
		d.err, d.size = err, data.Len()
		return nil
	}
	return err
}

// undecompressed leads gunzip's output for a payload that does not
// decompress.
var undecompressed = []byte("\x00pemba: undecompressed: ")

// decompressFailure returns the failure gunzip recorded in data, or nil.
// gunzip's output is one buffer, so only the first is looked at.
func decompressFailure(data mem.BufferSlice) error {
	if len(data) == 0 {
		return nil
	}
	b := data[0].ReadOnlyData()
	if !bytes.HasPrefix(b, undecompressed) {
		return nil
	}
	return fmt.Errorf("gzip payload does not decompress: %s", b[len(undecompressed):])
}

// gunzip is the server's gzip decompressor (see above).
type gunzip struct {
	max  int64 // the receive limit
	pool sync.Pool
}

// Type implements grpc.Decompressor.
func (g *gunzip) Type() string { return "gzip" }

// Do implements grpc.Decompressor.
func (g *gunzip) Do(r io.Reader) ([]byte, error) {
	out, err := g.read(r)
	if err != nil {
		return append(slices.Clip(undecompressed), err.Error()...), nil
	}
	return out, nil
}

func (g *gunzip) read(r io.Reader) ([]byte, error) {
	z, _ := g.pool.Get().(*gzip.Reader)
	var err error
	if z == nil {
		z, err = gzip.NewReader(r)
	} else {
		err = z.Reset(r)
	}
	if err != nil {
		return nil, err
	}
	defer g.pool.Put(z)
	return io.ReadAll(io.LimitReader(z, g.max+1))
}

// heldMessageBytes is the size from which a request message is charged
// to the engine's memory budget while its call runs: the messages grpc-go
// received and decoded (up to the receive limit each, times every stream
// of every connection) are memory held like a walk's. Smaller ones, the
// common checks, cost no atomic operation; the stream and connection
// limits bound them.
const heldMessageBytes = 64 << 10

// memoryHold charges n bytes to the memory budget until release is called, or
// fails with RESOURCE_EXHAUSTED when they do not fit (engine.HoldMemory).
type memoryHold func(n int64) (release func(), err error)

// message charges a decoded message of n bytes to the budget when it
// is large enough to count.
func (h memoryHold) message(n int) (release func(), err error) {
	if h == nil || n < heldMessageBytes {
		return func() {}, nil
	}
	release, err = h(int64(n))
	if err != nil {
		return nil, withReason(status.New(codes.ResourceExhausted, "request message of "+strconv.Itoa(n)+" bytes: "+err.Error()), ReasonMemoryBudget).Err()
	}
	return release, nil
}

// decodeErrors returns desc with every unary method's request decoded
// through a *decoding, so that one that does not decode fails with
// INVALID_ARGUMENT, and charged to the memory budget (h) until the call
// returns.
func decodeErrors(desc *grpc.ServiceDesc, h memoryHold) *grpc.ServiceDesc {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		handler := m.Handler
		d.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			release := func() {}
			defer func() { release() }()
			return handler(srv, ctx, func(v any) error {
				d := &decoding{msg: v}
				if err := dec(d); err != nil {
					return err
				}
				if err := d.result(); err != nil {
					return err
				}
				r, err := h.message(d.size)
				if err != nil {
					return err
				}
				release = r
				return nil
			}, ic)
		}}
	}
	return &d
}

// decodeStreams returns the first stream interceptor: it decodes the
// messages a stream receives through a *decoding, and charges each to the
// memory budget (h) until the next is received or the stream ends.
func decodeStreams(h memoryHold) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		s := &decodingStream{ServerStream: ss, hold: h, release: func() {}}
		defer func() { s.release() }()
		return handler(srv, s)
	}
}

// decodingStream is a server stream whose RecvMsg fails with
// INVALID_ARGUMENT for a message that does not decode.
type decodingStream struct {
	grpc.ServerStream
	hold    memoryHold
	release func() // the last message's charge
}

func (s *decodingStream) RecvMsg(m any) error {
	if _, ok := m.(*decoding); ok {
		return s.ServerStream.RecvMsg(m) // already wrapped
	}
	s.release()
	s.release = func() {}
	d := &decoding{msg: m}
	if err := s.ServerStream.RecvMsg(d); err != nil {
		return err
	}
	if err := d.result(); err != nil {
		return err
	}
	r, err := s.hold.message(d.size)
	if err != nil {
		return err
	}
	s.release = r
	return nil
}

// decodingServer is a gRPC server that registers services with
// decodeErrors (reflection.Register takes one).
type decodingServer struct {
	*grpc.Server
	hold memoryHold
}

func (r decodingServer) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.Server.RegisterService(decodeErrors(desc, r.hold), impl)
}
