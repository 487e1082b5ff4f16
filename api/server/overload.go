package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Overload protection: a server-wide limit on the calls running at once,
// with a bounded queue in front of it, and a separate limit on the
// streams that read without bound (lookups, reads, exports, imports).
//
// A unary call takes a slot or waits in the queue, first come first
// served. It is shed at once, with RESOURCE_EXHAUSTED and a
// google.rpc.RetryInfo saying when to come back, when the queue is full or
// when its deadline cannot be met: the expected wait (its place in the
// queue times the recent service time per slot) plus its own service time
// ends after its deadline. A call whose deadline passes while it waits is
// shed too. A shed call never reached its handler, so retrying it (a write
// included) is safe; that is what the RetryInfo promises, and what the Go
// client relies on.
//
// A limited stream takes a stream slot or is shed at once: streams run
// long, so a queue would only hold their callers. What one stream holds
// in memory is bounded: a read or export by its page size
// (MaxExportBatch), a lookup by engine.Limits.MaxLookupNodes (its walk
// is complete before its first result, whatever its page size), so the
// limit bounds the memory of all of them.
//
// Health checks, reflection, cluster dispatch (a peer waiting on a peer
// that waits on it would deadlock) and watches (open for hours) are not
// limited.

// Overload configures overload protection. The zero value turns it off.
type Overload struct {
	// MaxConcurrent is the number of unary calls (and non-limited streams
	// other than watches) running at once; 0 turns the limit off.
	MaxConcurrent int
	// MaxQueue is the number of calls that may wait for a slot; beyond
	// it, calls are shed at once. 0 sheds every call that finds no slot.
	MaxQueue int
	// MaxStreams is the number of lookups, relationship reads, exports
	// and imports running at once; 0 turns the limit off.
	MaxStreams int
	// MaxStreamsPerKey bounds the limited streams one authenticated
	// caller holds at once; 0 turns the limit off (see streamguard.go).
	MaxStreamsPerKey int
	// StreamStallTimeout ends a limited stream whose client has accepted
	// no message for that long (DEADLINE_EXCEEDED, reason
	// STREAM_STALLED); 0 turns the cut-off off.
	StreamStallTimeout time.Duration
}

// DefaultStreamStallTimeout is pemba serve's default -stream-stall-timeout:
// far longer than any client that reads takes between two messages.
const DefaultStreamStallTimeout = time.Minute

// DefaultMaxStreamsPerKey is pemba serve's default -max-streams-per-key:
// half of DefaultMaxStreams, so one key leaves room for the others.
const DefaultMaxStreamsPerKey = DefaultMaxStreams / 2

// DefaultMaxStreams is pemba serve's default -max-concurrent-streams: high
// enough not to be met by a healthy deployment's clients, low enough that
// the pages those streams hold (about MaxExportBatch relationships each)
// fit in memory.
const DefaultMaxStreams = 256

// ErrOverloaded marks a call the server shed because it is overloaded; see
// *OverloadError. Nothing of the call was done.
var ErrOverloaded = errors.New("server: overloaded")

// OverloadError is a shed call: why, and when to try again.
type OverloadError struct {
	Reason     string
	RetryAfter time.Duration
	// why labels the shed counter: queue_full, deadline, waited, streams.
	why string
}

// Error implements error.
func (e *OverloadError) Error() string {
	return fmt.Sprintf("server overloaded: %s; nothing was done, retry after %s", e.Reason, e.RetryAfter.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrOverloaded) true.
func (e *OverloadError) Is(target error) bool { return target == ErrOverloaded }

// minRetryAfter is the shortest wait a shed call is told to keep, so that
// clients do not come back before anything could have changed.
const minRetryAfter = 10 * time.Millisecond

// limiter is a counting semaphore with a FIFO queue and deadline-aware
// admission.
type limiter struct {
	max, maxQueue int
	now           func() time.Time

	mu      sync.Mutex
	running int
	queue   []*waiter
	// service is the recent time a call holds a slot (an exponentially
	// weighted moving average); 0 until the first call ends.
	service time.Duration
	// estimate, when set (tests), replaces service.
	estimate func() time.Duration
	// onQueued, when set (tests), is called with the queue length after a
	// call joins the queue, outside the lock.
	onQueued func(n int)
	// peakRunning and peakQueue are the high-water marks, for tests.
	peakRunning, peakQueue int
}

type waiter struct {
	ready chan struct{} // closed when the waiter is given a slot
	given bool          // under mu: the slot was handed over
}

func newLimiter(max, maxQueue int) *limiter {
	return &limiter{max: max, maxQueue: maxQueue, now: time.Now}
}

// serviceTime returns the expected time a call holds a slot.
func (l *limiter) serviceTime() time.Duration {
	if l.estimate != nil {
		return l.estimate()
	}
	return l.service
}

// acquire takes a slot, waiting in the queue if it may; the returned
// release gives it back. It fails with an *OverloadError.
func (l *limiter) acquire(ctx context.Context) (release func(), err error) {
	l.mu.Lock()
	if l.running < l.max && len(l.queue) == 0 {
		l.running++
		l.peakRunning = max(l.peakRunning, l.running)
		l.mu.Unlock()
		return l.releaser(), nil
	}
	per := l.serviceTime()
	pos := len(l.queue) + 1
	// The queue drains l.max calls per service time.
	wait := time.Duration((pos+l.max-1)/l.max) * per
	if len(l.queue) >= l.maxQueue {
		l.mu.Unlock()
		return nil, &OverloadError{Reason: fmt.Sprintf("%d calls running and %d waiting, the most allowed", l.max, l.maxQueue), RetryAfter: max(wait, minRetryAfter), why: "queue_full"}
	}
	if dl, ok := ctx.Deadline(); ok {
		if left := dl.Sub(l.now()); left < wait+per {
			l.mu.Unlock()
			return nil, &OverloadError{
				Reason:     fmt.Sprintf("the deadline (%s away) cannot be met: about %s of waiting for one of %d slots, behind %d calls, and %s of work", left.Round(time.Millisecond), wait.Round(time.Millisecond), l.max, pos-1, per.Round(time.Millisecond)),
				RetryAfter: max(wait, minRetryAfter),
				why:        "deadline",
			}
		}
	}
	w := &waiter{ready: make(chan struct{})}
	l.queue = append(l.queue, w)
	n := len(l.queue)
	l.peakQueue = max(l.peakQueue, n)
	hook := l.onQueued
	l.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	select {
	case <-w.ready:
		return l.releaser(), nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	if w.given {
		// The slot arrived as the context ended: pass it on, without
		// counting an instant of service in the average.
		l.handOn()
		l.mu.Unlock()
	} else {
		for i, q := range l.queue {
			if q == w {
				l.queue = append(l.queue[:i], l.queue[i+1:]...)
				break
			}
		}
		l.mu.Unlock()
	}
	return nil, &OverloadError{Reason: "the deadline passed while the call waited for a slot", RetryAfter: max(wait, minRetryAfter), why: "waited"}
}

// releaser returns the release function of a slot taken now.
func (l *limiter) releaser() func() {
	start := l.now()
	var once sync.Once
	return func() {
		once.Do(func() {
			d := l.now().Sub(start)
			l.mu.Lock()
			if l.service == 0 {
				l.service = d
			} else {
				l.service += (d - l.service) / 8
			}
			l.handOn()
			l.mu.Unlock()
		})
	}
}

// handOn gives a freed slot to the first waiter (running stays), or
// frees it. l.mu is held.
func (l *limiter) handOn() {
	if len(l.queue) > 0 {
		w := l.queue[0]
		l.queue = l.queue[1:]
		w.given = true
		close(w.ready)
		return
	}
	l.running--
}

// tryAcquire takes a slot without waiting.
func (l *limiter) tryAcquire() (func(), bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running >= l.max {
		return nil, false
	}
	l.running++
	l.peakRunning = max(l.peakRunning, l.running)
	return l.releaser(), true
}

// state returns the calls running and waiting.
func (l *limiter) state() (running, queued int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running, len(l.queue)
}

// overload is the server's overload protection.
type overload struct {
	calls   *limiter // nil: unlimited
	streams *limiter // nil: unlimited
	shed    *prometheus.CounterVec
}

func newOverload(cfg Overload, reg prometheus.Registerer) (*overload, error) {
	o := &overload{}
	if cfg.MaxConcurrent < 0 || cfg.MaxQueue < 0 || cfg.MaxStreams < 0 {
		return nil, fmt.Errorf("server: negative overload limit (%+v)", cfg)
	}
	if cfg.MaxConcurrent > 0 {
		o.calls = newLimiter(cfg.MaxConcurrent, cfg.MaxQueue)
	}
	if cfg.MaxStreams > 0 {
		o.streams = newLimiter(cfg.MaxStreams, 0)
	}
	o.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "pemba", Subsystem: "grpc", Name: "shed_total",
		Help: "Calls shed by overload protection (RESOURCE_EXHAUSTED, reason OVERLOADED), by method and why: queue_full, deadline, waited, streams.",
	}, []string{"method", "why"})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "pemba", Subsystem: "grpc", Name: name, Help: help}, f)
	}
	cs := []prometheus.Collector{
		o.shed,
		gauge("admitted", "Calls holding one of the -max-concurrent-requests slots.", func() float64 { r, _ := o.calls.stateOrZero(); return float64(r) }),
		gauge("queued", "Calls waiting for one of the -max-concurrent-requests slots.", func() float64 { _, q := o.calls.stateOrZero(); return float64(q) }),
		gauge("streams_admitted", "Lookups, reads, exports and imports holding one of the -max-concurrent-streams slots.", func() float64 { r, _ := o.streams.stateOrZero(); return float64(r) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register overload metrics: %w", err)
		}
	}
	return o, nil
}

// stateOrZero is state for a limiter that may be nil.
func (l *limiter) stateOrZero() (int, int) {
	if l == nil {
		return 0, 0
	}
	return l.state()
}

// unlimited reports whether method escapes overload protection.
func unlimited(fullMethod string) bool {
	for _, p := range []string{"/grpc.health.", "/grpc.reflection.", "/pemba.v1.DispatchService/"} {
		if strings.HasPrefix(fullMethod, p) {
			return true
		}
	}
	return strings.HasPrefix(methodOf(fullMethod), "Watch")
}

// methodOf returns "CheckPermission" of "/pemba.v1.PermissionsService/CheckPermission".
func methodOf(fullMethod string) string {
	return fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
}

// admit admits a unary call, or sheds it. A nil overload admits all.
func (o *overload) admit(ctx context.Context, fullMethod string) (func(), error) {
	if o == nil || o.calls == nil || unlimited(fullMethod) {
		return func() {}, nil
	}
	release, err := o.calls.acquire(ctx)
	if err != nil {
		o.count(fullMethod, err)
		return nil, err
	}
	return release, nil
}

// admitStream admits a stream: watches and the unlimited services pass,
// the rest take a stream slot or are shed at once.
func (o *overload) admitStream(fullMethod string) (func(), error) {
	if o == nil || o.streams == nil || unlimited(fullMethod) {
		return func() {}, nil
	}
	release, ok := o.streams.tryAcquire()
	if !ok {
		err := &OverloadError{Reason: fmt.Sprintf("%d lookups, reads, exports and imports running, the most allowed", o.streams.max), RetryAfter: max(o.streams.serviceTime(), minRetryAfter), why: "streams"}
		o.count(fullMethod, err)
		return nil, err
	}
	return release, nil
}

// count records a shed call.
func (o *overload) count(fullMethod string, err error) {
	var oe *OverloadError
	if errors.As(err, &oe) {
		o.shed.WithLabelValues(shortMethod(fullMethod), oe.why).Inc()
	}
}
