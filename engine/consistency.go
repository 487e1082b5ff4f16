package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/token"
)

// Mode says how fresh the data behind an answer must be. See
// docs/consistency.md.
type Mode uint8

// Consistency modes.
const (
	// ModeMinimizeLatency (the zero value) answers at a quantized
	// revision: a head revision fetched less than Options.Quantum ago is
	// reused, so concurrent requests share a revision and its cache
	// entries. The answer may miss writes of the last Quantum.
	ModeMinimizeLatency Mode = iota
	// ModeAtLeastAsFresh answers at the newer of the zookie's revision and
	// the quantized one: it sees every write up to the zookie.
	ModeAtLeastAsFresh
	// ModeAtExactSnapshot answers at exactly the zookie's revision; it
	// fails with ErrSnapshotExpired once that revision is compacted.
	ModeAtExactSnapshot
	// ModeFullyConsistent answers at the head revision, fetched for this
	// request. It is the slowest and least cacheable mode.
	ModeFullyConsistent
)

// String names the mode as the API does: "minimize_latency".
func (m Mode) String() string {
	switch m {
	case ModeMinimizeLatency:
		return "minimize_latency"
	case ModeAtLeastAsFresh:
		return "at_least_as_fresh"
	case ModeAtExactSnapshot:
		return "at_exact_snapshot"
	case ModeFullyConsistent:
		return "fully_consistent"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Consistency is the freshness requirement of a read. The zero value is
// MinimizeLatency.
type Consistency struct {
	Mode Mode
	// Zookie is required by ModeAtLeastAsFresh and ModeAtExactSnapshot and
	// must be empty otherwise.
	Zookie string
}

// MinimizeLatency returns the default consistency: a quantized revision.
func MinimizeLatency() Consistency { return Consistency{} }

// AtLeastAsFresh asks for an answer that reflects every write up to the
// revision named by z.
func AtLeastAsFresh(z string) Consistency { return Consistency{Mode: ModeAtLeastAsFresh, Zookie: z} }

// AtExactSnapshot asks for an answer at exactly the revision named by z.
func AtExactSnapshot(z string) Consistency { return Consistency{Mode: ModeAtExactSnapshot, Zookie: z} }

// FullyConsistent asks for an answer at the head revision.
func FullyConsistent() Consistency { return Consistency{Mode: ModeFullyConsistent} }

// headQuantizer remembers the last head revision fetched and when, so that
// MinimizeLatency requests within one quantum share a revision.
type headQuantizer struct {
	st      store.Store
	now     func() time.Time
	quantum time.Duration

	// last is the remembered head and when it was fetched (nil: none yet).
	// An atomic pointer, not a mutex: every MinimizeLatency read loads it.
	last atomic.Pointer[headSample]
}

type headSample struct {
	rev     store.Revision
	fetched time.Time
}

// quantized returns a head revision fetched less than a quantum ago,
// fetching a new one when the remembered one is too old.
func (q *headQuantizer) quantized(ctx context.Context) (store.Revision, error) {
	now := q.now()
	// A clock that went backwards also invalidates the remembered head.
	if l := q.last.Load(); l != nil && !now.Before(l.fetched) && now.Sub(l.fetched) < q.quantum {
		return l.rev, nil
	}
	return q.fetch(ctx, now)
}

// head fetches the head revision. It does not start a quantum: only
// MinimizeLatency reads decide which revision they share, so FullyConsistent
// reads and writes never shift it.
func (q *headQuantizer) head(ctx context.Context) (store.Revision, error) {
	rev, err := q.st.HeadRevision(ctx)
	if err != nil {
		return 0, fmt.Errorf("engine: head revision: %w", err)
	}
	return rev, nil
}

func (q *headQuantizer) fetch(ctx context.Context, now time.Time) (store.Revision, error) {
	rev, err := q.head(ctx)
	if err != nil {
		return 0, err
	}
	for {
		old := q.last.Load()
		next := &headSample{rev: rev, fetched: now}
		// Concurrent fetches may race; the head never moves backwards.
		if old != nil && old.rev > rev {
			next.rev = old.rev
		}
		if q.last.CompareAndSwap(old, next) {
			return next.rev, nil
		}
	}
}

// decodeZookie returns the revision a zookie names, checking that it was
// minted by this store.
func (e *Engine) decodeZookie(z string) (store.Revision, error) {
	rev, err := token.DecodeZookie(e.fingerprint, z)
	if err != nil {
		return 0, &tokenError{ErrInvalidZookie, err}
	}
	return store.Revision(rev), nil
}

// zookieOf mints the zookie of rev.
// The last one minted is remembered: reads share revisions, so most calls
// return it without encoding.
func (e *Engine) zookieOf(rev store.Revision) string {
	if m := e.lastZookie.Load(); m != nil && m.rev == rev {
		return m.z
	}
	z := token.EncodeZookie(e.fingerprint, uint64(rev))
	e.lastZookie.Store(&mintedZookie{rev: rev, z: z})
	return z
}

type mintedZookie struct {
	rev store.Revision
	z   string
}

// resolve turns a consistency requirement into the revision to read at.
func (e *Engine) resolve(ctx context.Context, c Consistency) (store.Revision, error) {
	switch c.Mode {
	case ModeMinimizeLatency, ModeFullyConsistent:
		if c.Zookie != "" {
			return 0, fmt.Errorf("%w: consistency %s takes no zookie", ErrInvalidRequest, c.Mode)
		}
		if c.Mode == ModeFullyConsistent {
			return e.heads.head(ctx)
		}
		return e.heads.quantized(ctx)
	case ModeAtLeastAsFresh, ModeAtExactSnapshot:
		if c.Zookie == "" {
			return 0, fmt.Errorf("%w: consistency %s needs a zookie", ErrInvalidRequest, c.Mode)
		}
		want, err := e.decodeZookie(c.Zookie)
		if err != nil {
			return 0, err
		}
		q, err := e.heads.quantized(ctx)
		if err != nil {
			return 0, err
		}
		if want > q {
			// Newer than the shared revision: make sure it exists at all.
			head, err := e.heads.head(ctx)
			if err != nil {
				return 0, err
			}
			if want > head {
				return 0, &FutureZookieError{Requested: want, Head: head}
			}
		}
		if c.Mode == ModeAtLeastAsFresh {
			return max(want, q), nil
		}
		return want, nil
	}
	return 0, fmt.Errorf("%w: unknown consistency mode %d", ErrInvalidRequest, uint8(c.Mode))
}

// snapshotAt opens a reader at rev, translating store errors.
func (e *Engine) snapshotAt(ctx context.Context, rev store.Revision) (store.Reader, error) {
	r, err := e.st.Snapshot(ctx, rev)
	if err != nil {
		if errors.Is(err, store.ErrRevisionCompacted) {
			return nil, fmt.Errorf("engine: snapshot expired: %w", err)
		}
		if errors.Is(err, store.ErrRevisionFuture) {
			return nil, fmt.Errorf("engine: zookie is from the future: %w", err)
		}
		return nil, fmt.Errorf("engine: snapshot at revision %d: %w", rev, err)
	}
	return e.traceReader(ctx, hiddenReader{r}), nil
}
