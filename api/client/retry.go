package client

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Retry defaults.
const (
	// DefaultMaxAttempts is how often a call is tried in all when
	// Retry.MaxAttempts is 0.
	DefaultMaxAttempts = 4
	// DefaultBaseBackoff and DefaultMaxBackoff shape the default backoff:
	// the wait before retry n (1-based) is a random duration in
	// [d/2, d] where d = min(DefaultMaxBackoff, DefaultBaseBackoff * 2^(n-1)).
	DefaultBaseBackoff = 50 * time.Millisecond
	DefaultMaxBackoff  = 2 * time.Second
)

// Retry configures retries of calls that fail with UNAVAILABLE (the
// server is restarting, its datastore is, or the connection broke).
//
// Reads are retried: unary calls (Check, CheckBulk, Expand, ReadSchema)
// and server streams (ReadRelationships, the lookups, Export, Watch)
// that fail before their first message; a stream that already delivered
// part of its answer is not.
//
// Writes are retried only when the server itself answered UNAVAILABLE
// (the ErrorInfo reason "UNAVAILABLE" of domain "pemba.authz"), which it
// does only when nothing was written. An UNAVAILABLE from the transport
// (the connection broke mid-call) and UNKNOWN with reason
// "COMMIT_OUTCOME_UNKNOWN" (see CommitOutcomeUnknown) do not say whether
// the write was applied, and are not retried unless Writes is set.
//
// Calls the server shed under overload (RESOURCE_EXHAUSTED with a
// google.rpc.RetryInfo: the server did not start them) are retried too,
// writes included, after at least the delay the RetryInfo asks for (plus
// up to a quarter more, so that shed clients do not return in lockstep).
// A retry that could not start before the call's deadline is not waited
// for: the call fails at once with the server's answer.
type Retry struct {
	// MaxAttempts bounds the tries of one call, the first included:
	// 0 means DefaultMaxAttempts, 1 turns retries off.
	MaxAttempts int
	// Backoff returns the wait before retry n (1 for the first retry);
	// nil means the default exponential backoff with jitter. The wait
	// ends early when the call's context is done.
	Backoff func(n int) time.Duration
	// Writes also retries WriteRelationships, DeleteRelationships and
	// WriteSchema on an UNAVAILABLE from the transport, which does not
	// prove that the write was not applied: a retried CREATE may then fail
	// with ALREADY_EXISTS or a precondition may see the write's own
	// effect. Leave it off unless the writes are idempotent (TOUCH,
	// DELETE). Commit-outcome-unknown errors are never retried.
	Writes bool
}

// Identify the server's own statuses. They mirror api/server's
// ErrorDomain and Reason constants (not imported: that would pull the
// server into every client).
const (
	errorDomain                = "pemba.authz"
	reasonUnavailable          = "UNAVAILABLE"
	reasonCommitOutcomeUnknown = "COMMIT_OUTCOME_UNKNOWN"
	reasonMaxDepth             = "MAX_DEPTH_EXCEEDED"
)

// reasonOf returns the ErrorInfo reason of a status from a Pemba server,
// or "".
func reasonOf(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain {
			return info.GetReason()
		}
	}
	return ""
}

// CommitOutcomeUnknown reports whether err says that a write may or may
// not have been applied: the server's datastore lost the connection
// during the commit. Read at full consistency to see whether the write
// took effect before retrying it.
func CommitOutcomeUnknown(err error) bool {
	return status.Code(err) == codes.Unknown && reasonOf(err) == reasonCommitOutcomeUnknown
}

// MaxDepthExceeded reports whether err says that answering needed a path
// of relations longer than the server's depth limit (RESOURCE_EXHAUSTED,
// MAX_DEPTH_EXCEEDED). Retrying gives the same answer; the message names
// the path, and the limit is the server's --max-depth.
func MaxDepthExceeded(err error) bool {
	return status.Code(err) == codes.ResourceExhausted && reasonOf(err) == reasonMaxDepth
}

// Overloaded reports whether err says that the server shed the call
// under overload (RESOURCE_EXHAUSTED with a RetryInfo): nothing of it was
// done, and it may be sent again after RetryDelay(err).
func Overloaded(err error) bool {
	_, ok := RetryDelay(err)
	return ok && status.Code(err) == codes.ResourceExhausted
}

// RetryDelay returns the delay of the google.rpc.RetryInfo of err's
// status, if it has one.
func RetryDelay(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// retryable reports whether a call of method that failed with err may be
// tried again.
func (r Retry) retryable(method string, err error) bool {
	if Overloaded(err) {
		return true
	}
	if status.Code(err) != codes.Unavailable {
		return false
	}
	if !writeMethods[methodName(method)] || r.Writes {
		return true
	}
	// The server answers UNAVAILABLE with its reason only when nothing
	// was written.
	return reasonOf(err) == reasonUnavailable
}

// writeMethods are the unary calls that change data.
var writeMethods = map[string]bool{
	"WriteRelationships":  true,
	"DeleteRelationships": true,
	"WriteSchema":         true,
}

// methodName returns "CheckPermission" for
// "/pemba.v1.PermissionsService/CheckPermission".
func methodName(full string) string {
	return full[strings.LastIndexByte(full, '/')+1:]
}

// defaultBackoff is exponential with jitter, so that clients that lost the
// same server do not come back in lockstep.
func defaultBackoff(n int) time.Duration {
	d := DefaultMaxBackoff
	if n-1 < 16 {
		d = min(DefaultMaxBackoff, DefaultBaseBackoff<<(n-1))
	}
	return d/2 + rand.N(d/2+1)
}

// attempts and backoff return the configured values or the defaults.
func (r Retry) attempts() int {
	if r.MaxAttempts <= 0 {
		return DefaultMaxAttempts
	}
	return r.MaxAttempts
}

func (r Retry) backoff() func(int) time.Duration {
	if r.Backoff == nil {
		return defaultBackoff
	}
	return r.Backoff
}

// wait sleeps before retry n after err: the backoff, or longer when the
// server's RetryInfo asks for more. It returns false, without waiting,
// when ctx ended or would end before the wait does.
func wait(ctx context.Context, backoff func(int) time.Duration, n int, err error) bool {
	d := backoff(n)
	if ri, ok := RetryDelay(err); ok && ri > d {
		d = ri + rand.N(ri/4+1)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// interceptor retries a unary call on UNAVAILABLE.
func (r Retry) interceptor() grpc.UnaryClientInterceptor {
	attempts, backoff := r.attempts(), r.backoff()
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		for n := 1; ; n++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil || n >= attempts || !r.retryable(method, err) {
				return err
			}
			if !wait(ctx, backoff, n, err) {
				return err // the last answer says more than "context canceled"
			}
		}
	}
}

// streamInterceptor retries a server stream (one request, a stream of
// answers) that fails with UNAVAILABLE before its first answer: nothing
// has been delivered, so opening it again is a plain retry.
func (r Retry) streamInterceptor() grpc.StreamClientInterceptor {
	attempts, backoff := r.attempts(), r.backoff()
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if desc.ClientStreams || !desc.ServerStreams || attempts <= 1 {
			return streamer(ctx, desc, cc, method, opts...)
		}
		open := func() (grpc.ClientStream, error) { return streamer(ctx, desc, cc, method, opts...) }
		for n := 1; ; n++ {
			cs, err := open()
			if err == nil {
				return &retryStream{ClientStream: cs, ctx: ctx, open: open, attempts: attempts, tries: n, backoff: backoff, r: r, method: method}, nil
			}
			if n >= attempts || !r.retryable(method, err) || !wait(ctx, backoff, n, err) {
				return nil, err
			}
		}
	}
}

// retryStream reopens its stream, and resends the request, when the
// first RecvMsg fails with UNAVAILABLE. Like any ClientStream, it is not
// for concurrent RecvMsg calls.
type retryStream struct {
	grpc.ClientStream
	ctx      context.Context
	open     func() (grpc.ClientStream, error)
	attempts int
	tries    int // attempts made so far
	backoff  func(int) time.Duration
	r        Retry
	method   string

	req      any  // the request, for resending
	closed   bool // CloseSend was called
	received bool // an answer was delivered: no more retries
}

func (s *retryStream) SendMsg(m any) error {
	s.req = m
	return s.ClientStream.SendMsg(m)
}

func (s *retryStream) CloseSend() error {
	s.closed = true
	return s.ClientStream.CloseSend()
}

func (s *retryStream) RecvMsg(m any) error {
	for {
		err := s.ClientStream.RecvMsg(m)
		if err == nil {
			s.received = true
			return nil
		}
		if s.received || s.req == nil || s.tries >= s.attempts || !s.r.retryable(s.method, err) || !wait(s.ctx, s.backoff, s.tries, err) {
			return err
		}
		s.tries++
		cs, oerr := s.open()
		if oerr != nil {
			return err
		}
		if serr := cs.SendMsg(s.req); serr != nil {
			// The real error is in the new stream's RecvMsg.
			s.ClientStream = cs
			continue
		}
		if s.closed {
			if cerr := cs.CloseSend(); cerr != nil {
				s.ClientStream = cs
				continue
			}
		}
		s.ClientStream = cs
	}
}
