package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The interceptors run these steps, outermost first: metrics (sees the
// final code of every call), status conversion (statusOf, the only place
// an error becomes a code), panic recovery, authentication, for unary
// calls the default deadline, and overload admission (overload.go). Handlers below them return plain errors.
// Each kind is one interceptor calling the steps in turn: gRPC allocates a
// closure per link of a chain on every call (4 per call with the five
// steps as separate interceptors).

func (s *Server) unaryInterceptors() []grpc.UnaryServerInterceptor {
	return []grpc.UnaryServerInterceptor{s.unary}
}

func (s *Server) streamInterceptors() []grpc.StreamServerInterceptor {
	return []grpc.StreamServerInterceptor{decodeStreams(s.eng.HoldMemory), s.stream}
}

// unary is the metrics step of unary calls.
func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	mm := s.metrics.started(info.FullMethod)
	defer mm.inFlight.Dec()
	start := time.Now()
	caller := ""
	if s.log.Enabled(ctx, s.callLevel) {
		// The handler gets the authenticated context; this one does not.
		inner := h
		h = func(ctx context.Context, req any) (any, error) {
			caller = callerOf(ctx)
			return inner(ctx, req)
		}
	}
	resp, err := s.unaryStatus(ctx, req, info, h)
	s.observe(ctx, mm, info.FullMethod, caller, err, time.Since(start))
	return resp, err
}

// unaryStatus converts the error of a unary call into a status.
func (s *Server) unaryStatus(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := s.unaryGuarded(ctx, req, info, h)
	if err != nil {
		return nil, statusOf(ctx, s.log, info.FullMethod, err).Err()
	}
	return resp, nil
}

// unaryGuarded recovers panics, authenticates the caller and sets the
// default deadline.
func (s *Server) unaryGuarded(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = recovered(p)
		}
	}()
	ctx, adm, err := s.authenticate(ctx, info.FullMethod)
	if adm != nil {
		defer func() { s.finish(adm, err) }()
	}
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok && s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	release, err := s.overload.admit(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	defer release()
	return h(ctx, req)
}

// stream is the metrics step of streams.
func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	mm := s.metrics.started(info.FullMethod)
	defer mm.inFlight.Dec()
	start := time.Now()
	caller := ""
	if s.log.Enabled(ss.Context(), s.callLevel) {
		inner := h
		h = func(srv any, ss grpc.ServerStream) error {
			caller = callerOf(ss.Context())
			return inner(srv, ss)
		}
	}
	err := s.streamStatus(srv, ss, info, h)
	s.observe(ss.Context(), mm, info.FullMethod, caller, err, time.Since(start))
	return err
}

// streamStatus converts the error of a stream into a status.
func (s *Server) streamStatus(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.streamGuarded(srv, ss, info, h); err != nil {
		return statusOf(ss.Context(), s.log, info.FullMethod, err).Err()
	}
	return nil
}

// streamGuarded recovers panics and authenticates the caller.
func (s *Server) streamGuarded(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = recovered(p)
		}
	}()
	ctx, adm, err := s.authenticate(ss.Context(), info.FullMethod)
	if adm != nil {
		defer func() { s.finish(adm, err) }()
	}
	if err != nil {
		return err
	}
	release, err := s.overload.admitStream(info.FullMethod)
	if err != nil {
		return err
	}
	defer release()
	if !unlimited(info.FullMethod) {
		var p *Principal
		if adm != nil {
			p = adm.p
		}
		gs, done, err := s.guards.guard(ctx, ss, p, info.FullMethod)
		if err != nil {
			return err
		}
		defer done()
		return h(srv, gs)
	}
	if ctx == ss.Context() {
		return h(srv, ss)
	}
	return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

// observe records a finished call in the metrics and the log (at info
// level with Config.AccessLog, else at debug level). caller is "" when the
// call was refused before its handler (not authenticated).
func (s *Server) observe(ctx context.Context, mm *methodMetrics, method, caller string, err error, d time.Duration) {
	code := status.Code(err)
	s.metrics.observe(mm, code, d.Seconds())
	if s.log.Enabled(ctx, s.callLevel) {
		s.log.Log(ctx, s.callLevel, "call", "method", method, "caller", caller, "code", code.String(), "duration", d, "request_id", requestIDOf(ctx))
	}
}

// requestIDOf returns the call's "x-request-id" metadata (the HTTP
// listener's request id, or a gRPC caller's own), or "".
func requestIDOf(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// recovered turns a recovered panic into an error carrying the stack for
// the log; the client sees only an Internal status.
func recovered(p any) error {
	return fmt.Errorf("%w: %v\n%s", errPanic, p, debug.Stack())
}

// authenticate checks the caller of a method, authorizes the method for
// it (scope.go) and admits the call under the caller's own limits
// (keylimits.go). The admission is nil when authentication is off or the
// method is exempt; otherwise the call's end must be passed to finish.
func (s *Server) authenticate(ctx context.Context, fullMethod string) (context.Context, *admission, error) {
	a := s.auth.Load()
	if !a.enabled() {
		// PrincipalOf answers the anonymous principal for a context
		// without one: no context.WithValue allocation per call.
		return ctx, nil, nil
	}
	for _, prefix := range s.exempt {
		if strings.HasPrefix(fullMethod, prefix) {
			return ctx, nil, nil
		}
	}
	p, err := a.authenticate(ctx)
	if err != nil {
		s.authFailures.note(ctx, fullMethod, err)
		return nil, nil, err
	}
	adm := &admission{p: p}
	if err := authorize(p, fullMethod); err != nil {
		s.log.InfoContext(ctx, "call refused", "method", fullMethod, "caller", p.Name, "tenant", p.Tenant, "err", err.Error())
		return nil, adm, err
	}
	if adm.held, err = p.limiter.acquire(p.Name); err != nil {
		return nil, adm, err
	}
	return withPrincipal(ctx, p), adm, nil
}

// admission is an authenticated call: its principal, and whether it
// holds one of the principal's concurrency slots.
type admission struct {
	p    *Principal
	held bool
}

// finish ends an admitted call: it frees its concurrency slot and counts
// it in the per-caller metrics.
func (s *Server) finish(a *admission, err error) {
	if a.held {
		a.p.limiter.release()
	}
	code, _, ok := classify(err)
	if err == nil {
		code = codes.OK
	} else if !ok {
		code = status.Code(err)
	}
	s.metrics.callerDone(a.p, code)
}

// ctxStream replaces the context of a server stream.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the replaced context.
func (c *ctxStream) Context() context.Context { return c.ctx }
