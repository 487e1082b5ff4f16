package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/peer"
)

// authLogEvery and authLogBurst rate-limit the log of failed
// authentications: at most authLogBurst lines per authLogEvery, then one
// line saying how many were left out, so that a client retrying with a
// wrong key (or an attacker trying keys) cannot flood the log.
const (
	authLogEvery = time.Minute
	authLogBurst = 10
)

// authFailures logs failed authentications with the peer's address.
type authFailures struct {
	log   *slog.Logger
	clock func() time.Time

	mu         sync.Mutex
	windowFrom time.Time
	logged     int
	suppressed int
}

func newAuthFailures(log *slog.Logger, clock func() time.Time) *authFailures {
	if clock == nil {
		clock = time.Now
	}
	return &authFailures{log: log, clock: clock}
}

// note logs one failed authentication of method, unless this window's
// lines are spent.
func (f *authFailures) note(ctx context.Context, method string, err error) {
	addr := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	now := f.clock()
	f.mu.Lock()
	if now.Sub(f.windowFrom) >= authLogEvery {
		if f.suppressed > 0 {
			f.log.WarnContext(ctx, "authentication failures not logged", "count", f.suppressed, "since", f.windowFrom.UTC().Format(time.RFC3339))
		}
		f.windowFrom, f.logged, f.suppressed = now, 0, 0
	}
	if f.logged >= authLogBurst {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	f.logged++
	f.mu.Unlock()
	f.log.WarnContext(ctx, "authentication failed", "method", method, "peer", addr, "err", err.Error())
}
