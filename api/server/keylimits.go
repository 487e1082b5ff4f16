package server

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// check refuses limits that cannot be met.
func (l KeyLimits) check() error {
	switch {
	case l.RequestsPerSecond < 0 || math.IsNaN(l.RequestsPerSecond) || math.IsInf(l.RequestsPerSecond, 0):
		return fmt.Errorf("requests per second must be a positive number, not %v", l.RequestsPerSecond)
	case l.Burst < 0:
		return fmt.Errorf("burst must not be negative, not %d", l.Burst)
	case l.Burst > 0 && l.RequestsPerSecond == 0:
		return fmt.Errorf("burst needs requests_per_second")
	case l.Concurrent < 0:
		return fmt.Errorf("concurrent must not be negative, not %d", l.Concurrent)
	case l.Streams < 0:
		return fmt.Errorf("streams must not be negative, not %d", l.Streams)
	case l.MaxLookupLimit < 0:
		return fmt.Errorf("max_lookup_limit must not be negative, not %d", l.MaxLookupLimit)
	}
	return nil
}

// keyLimiter enforces one key's rate (a token bucket) and concurrency.
// It is shared by every call of the key and survives key reloads that
// leave the key's limits unchanged.
type keyLimiter struct {
	limits KeyLimits
	now    func() time.Time

	mu       sync.Mutex
	tokens   float64   // in the bucket at last
	last     time.Time // of the last refill
	inFlight int
}

// newKeyLimiter returns the limiter of limits, nil when they limit
// neither rate nor concurrency.
func newKeyLimiter(l KeyLimits, now func() time.Time) *keyLimiter {
	if l.RequestsPerSecond == 0 && l.Concurrent == 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	k := &keyLimiter{limits: l, now: now}
	k.tokens = float64(k.burst())
	k.last = now()
	return k
}

func (k *keyLimiter) burst() int {
	if k.limits.Burst > 0 {
		return k.limits.Burst
	}
	return max(1, int(math.Ceil(k.limits.RequestsPerSecond)))
}

// KeyLimitError is a call refused by its key's rate or concurrency
// limit. It matches ErrKeyLimit; RetryAfter (for the rate) says when a
// call would be admitted.
type KeyLimitError struct {
	Caller     string
	Limit      string // "requests per second" or "concurrent requests"
	Value      float64
	RetryAfter time.Duration
}

func (e *KeyLimitError) Error() string {
	msg := fmt.Sprintf("server: key limit exceeded: caller %q is over its limit of %v %s", e.Caller, e.Value, e.Limit)
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf("; retry after %v", e.RetryAfter.Round(time.Millisecond))
	}
	return msg
}

// Is makes a *KeyLimitError match ErrKeyLimit.
func (e *KeyLimitError) Is(target error) bool { return target == ErrKeyLimit }

// acquire admits one call of caller, or refuses it with a
// *KeyLimitError. held says whether the call took a concurrency slot,
// which it must give back with release when it ends.
func (k *keyLimiter) acquire(caller string) (held bool, err error) {
	if k == nil {
		return false, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if c := k.limits.Concurrent; c > 0 && k.inFlight >= c {
		return false, &KeyLimitError{Caller: caller, Limit: "concurrent requests", Value: float64(c)}
	}
	if r := k.limits.RequestsPerSecond; r > 0 {
		now := k.now()
		if el := now.Sub(k.last).Seconds(); el > 0 {
			k.tokens = min(float64(k.burst()), k.tokens+el*r)
		}
		k.last = now
		if k.tokens < 1 {
			wait := time.Duration((1 - k.tokens) / r * float64(time.Second))
			return false, &KeyLimitError{Caller: caller, Limit: "requests per second", Value: r, RetryAfter: wait}
		}
		k.tokens--
	}
	if k.limits.Concurrent == 0 {
		return false, nil
	}
	k.inFlight++
	return true, nil
}

// release gives back a concurrency slot taken by acquire.
func (k *keyLimiter) release() {
	k.mu.Lock()
	k.inFlight--
	k.mu.Unlock()
}
