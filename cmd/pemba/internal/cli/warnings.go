package cli

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// warningHeader is the response header in which the server returns its
// warnings for the caller (server.WarningHeader), such as "relation
// document#admin is deprecated: use owner".
const warningHeader = "pemba-warning"

// serverWarnings prints the warnings a server returns in its response
// headers to standard error ("warning: ..."), each once per invocation,
// in every output format.
type serverWarnings struct {
	inv  *invocation
	mu   sync.Mutex
	seen map[string]bool
}

// dialOptions are the interceptors that read the warnings of every call.
func (w *serverWarnings) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(w.unary),
		grpc.WithChainStreamInterceptor(w.stream),
	}
}

func (w *serverWarnings) print(md metadata.MD) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, msg := range md.Get(warningHeader) {
		if w.seen[msg] {
			continue
		}
		if w.seen == nil {
			w.seen = map[string]bool{}
		}
		w.seen[msg] = true
		w.inv.warnf("warning: %s\n", msg)
	}
}

func (w *serverWarnings) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var md metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&md))...)
	w.print(md)
	return err
}

func (w *serverWarnings) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &warningStream{ClientStream: cs, w: w}, nil
}

// warningStream prints the stream's header warnings once its first
// message (or its end) has arrived, when the header is known.
type warningStream struct {
	grpc.ClientStream
	w    *serverWarnings
	once sync.Once
}

func (s *warningStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	s.once.Do(func() {
		if md, herr := s.ClientStream.Header(); herr == nil {
			s.w.print(md)
		}
	})
	return err
}
