package client

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"

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

// Retry configures retries of unary calls that fail with UNAVAILABLE
// (the server is restarting, or the connection broke). Streams are not
// retried: a stream may have delivered part of its answer.
type Retry struct {
	// MaxAttempts bounds the tries of one call, the first included:
	// 0 means DefaultMaxAttempts, 1 turns retries off.
	MaxAttempts int
	// Backoff returns the wait before retry n (1 for the first retry);
	// nil means the default exponential backoff with jitter. The wait
	// ends early when the call's context is done.
	Backoff func(n int) time.Duration
	// Writes also retries WriteRelationships, DeleteRelationships and
	// WriteSchema. UNAVAILABLE does not prove that a write was not
	// applied, so a retried CREATE may then fail with ALREADY_EXISTS or a
	// precondition may see the write's own effect; leave it off unless
	// the writes are idempotent (TOUCH, DELETE).
	Writes bool
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

// interceptor retries a unary call on UNAVAILABLE.
func (r Retry) interceptor() grpc.UnaryClientInterceptor {
	attempts := r.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	backoff := r.Backoff
	if backoff == nil {
		backoff = defaultBackoff
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		retryable := r.Writes || !writeMethods[methodName(method)]
		for n := 1; ; n++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil || !retryable || n >= attempts || status.Code(err) != codes.Unavailable {
				return err
			}
			t := time.NewTimer(backoff(n))
			select {
			case <-ctx.Done():
				t.Stop()
				return err // the last answer says more than "context canceled"
			case <-t.C:
			}
		}
	}
}
