package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Stream guards. A limited stream (a lookup, relationship read, export or
// import: see unlimited) is held to two more limits than the server-wide
// stream count of overload.go:
//
//   - Flow control with a stall cut-off. A handler's Send returns once
//     its message is queued in the transport, which queues at most 64 KiB
//     per stream (gRPC's write quota) beyond what the client's HTTP/2
//     window admits; past that Send blocks until the client reads. The
//     handlers send each result as the engine yields it, and the engine
//     computes as it yields (streamed lookups, paged reads and exports),
//     so a client that stops reading stops the work, and its stream holds
//     a bounded amount of memory. With Overload.StreamStallTimeout, a Send
//     that blocks that long ends the stream with DEADLINE_EXCEEDED (reason
//     STREAM_STALLED): its handler's context is cancelled and it returns,
//     freeing its stream slot. The Send itself runs on a goroutine of the
//     stream so that the handler can return while it is blocked; gRPC
//     unblocks it when the stream is finished.
//   - Overload.MaxStreamsPerKey (or a key's own KeyLimits.Streams) bounds
//     the limited streams one caller (a key, or a token's subject) holds
//     at once, so that one caller cannot
//     take every -max-concurrent-streams slot; over it a stream is refused
//     with RESOURCE_EXHAUSTED (reason KEY_LIMIT_EXCEEDED). Calls without
//     authentication are not counted per key.

// ErrStreamStalled marks a stream ended because its client accepted no
// message for the stall timeout; see *StallError.
var ErrStreamStalled = errors.New("server: stream stalled")

// StallError is a stream cut off for a client that stopped reading.
type StallError struct {
	Timeout time.Duration
	Sent    int // messages the client accepted before
}

// Error implements error.
func (e *StallError) Error() string {
	return fmt.Sprintf("server: stream stalled: the client accepted no message for %s (after %d); a listing resumes with the cursor of the last result received", e.Timeout, e.Sent)
}

// Is makes errors.Is(err, ErrStreamStalled) true.
func (e *StallError) Is(target error) bool { return target == ErrStreamStalled }

// stallTimer is the timer of a stall cut-off: a *time.Timer, or a test's.
type stallTimer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop()                 { r.t.Stop() }

func newRealTimer(d time.Duration) stallTimer {
	t := time.NewTimer(d)
	t.Stop()
	return realTimer{t}
}

// stallStream sends a stream's messages through a goroutine and cuts the
// stream off when one Send blocks longer than timeout.
type stallStream struct {
	grpc.ServerStream
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timeout time.Duration
	timer   stallTimer
	onStall func()

	msgs    chan any
	done    chan error // buffered: a Send that returns after the cut-off does not block
	running bool
	sent    int
	stalled error // once set, every Send fails with it
}

// Context returns the stream's context, cancelled when the stream stalls.
func (s *stallStream) Context() context.Context { return s.ctx }

// SendMsg sends m, or fails with a *StallError when the client has not
// taken it within the timeout.
func (s *stallStream) SendMsg(m any) error {
	if s.stalled != nil {
		return s.stalled
	}
	if !s.running {
		s.running = true
		go func() {
			for m := range s.msgs {
				s.done <- s.ServerStream.SendMsg(m)
			}
		}()
	}
	s.msgs <- m
	s.timer.Reset(s.timeout)
	select {
	case err := <-s.done:
		s.timer.Stop()
		if err == nil {
			s.sent++
		}
		return err
	case <-s.timer.C():
		s.stalled = &StallError{Timeout: s.timeout, Sent: s.sent}
		s.cancel(s.stalled)
		if s.onStall != nil {
			s.onStall()
		}
		return s.stalled
	}
}

// close ends the sending goroutine (after the Send it may be blocked in).
func (s *stallStream) close() {
	s.timer.Stop()
	if s.running {
		close(s.msgs)
	}
	s.cancel(context.Canceled)
}

// keyStreams counts the limited streams of each caller.
type keyStreams struct {
	max int // the default limit (0: none)
	mu  sync.Mutex
	n   map[string]int
	// idle, when set (tests), is called with a caller whose last stream
	// ended, under mu.
	idle func(caller string)
}

// acquire takes one of caller's max stream slots, or refuses it with a
// *KeyLimitError; release gives it back.
func (k *keyStreams) acquire(caller string, max int) (release func(), err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n[caller] >= max {
		return nil, &KeyLimitError{Caller: caller, Limit: "concurrent streams", Value: float64(max)}
	}
	k.n[caller]++
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			if k.n[caller]--; k.n[caller] == 0 {
				delete(k.n, caller)
				if k.idle != nil {
					k.idle(caller)
				}
			}
			k.mu.Unlock()
		})
	}, nil
}

// streamGuards are the stream guards of a server.
type streamGuards struct {
	stall    time.Duration // 0: no cut-off
	newTimer func(time.Duration) stallTimer
	perKey   *keyStreams
	stalled  *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

func newStreamGuards(cfg Overload, reg prometheus.Registerer) (*streamGuards, error) {
	if cfg.StreamStallTimeout < 0 || cfg.MaxStreamsPerKey < 0 {
		return nil, fmt.Errorf("server: negative stream limit (stall timeout %s, streams per key %d)", cfg.StreamStallTimeout, cfg.MaxStreamsPerKey)
	}
	g := &streamGuards{stall: cfg.StreamStallTimeout, newTimer: newRealTimer, perKey: &keyStreams{max: cfg.MaxStreamsPerKey, n: map[string]int{}}}
	g.stalled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "pemba", Subsystem: "grpc", Name: "streams_stalled_total",
		Help: "Streams cut off because their client accepted no message for -stream-stall-timeout (DEADLINE_EXCEEDED, reason STREAM_STALLED), by method.",
	}, []string{"method"})
	g.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "pemba", Subsystem: "grpc", Name: "key_streams_refused_total",
		Help: "Streams refused because their caller held -max-streams-per-key streams (RESOURCE_EXHAUSTED, reason KEY_LIMIT_EXCEEDED), by caller (the key name, or jwt).",
	}, []string{"caller"})
	for _, c := range []prometheus.Collector{g.stalled, g.refused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register stream guard metrics: %w", err)
		}
	}
	return g, nil
}

// guard admits a limited stream under its caller's stream limit and wraps
// it with the stall cut-off; the returned func must be called when the
// handler returns.
// p is the authenticated caller, nil when authentication is off.
func (g *streamGuards) guard(ctx context.Context, ss grpc.ServerStream, p *Principal, fullMethod string) (grpc.ServerStream, func(), error) {
	release := func() {}
	limit := g.perKey.max
	if p != nil && p.maxStreams > 0 {
		limit = p.maxStreams
	}
	if p != nil && limit > 0 {
		r, err := g.perKey.acquire(p.Name, limit)
		if err != nil {
			g.refused.WithLabelValues(p.metricsLabel()).Inc()
			return nil, nil, err
		}
		release = r
	}
	if g.stall <= 0 {
		if ctx == ss.Context() {
			return ss, release, nil
		}
		return &ctxStream{ServerStream: ss, ctx: ctx}, release, nil
	}
	cctx, cancel := context.WithCancelCause(ctx)
	st := &stallStream{
		ServerStream: ss, ctx: cctx, cancel: cancel, timeout: g.stall, timer: g.newTimer(g.stall),
		msgs: make(chan any), done: make(chan error, 1),
		onStall: func() { g.stalled.WithLabelValues(shortMethod(fullMethod)).Inc() },
	}
	return st, func() { st.close(); release() }, nil
}
