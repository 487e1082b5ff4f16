// Package changefeed is the Watch loop that store backends with a
// changelog share: read a bounded batch of change sets after a cursor,
// yield them, and when there are none, wait for a commit, the end of the
// context or the store's closing.
//
// The backend supplies how to read its changelog and how commits wake
// watchers; what is yielded is decided only by the changelog, read in
// revision order, so a missed wake-up can delay a change set but never
// lose one. Signal is the wake-up that commits broadcast.
package changefeed

import (
	"context"
	"iter"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
)

// Source is a backend's changelog as Watch reads it.
type Source struct {
	// Wake returns a channel that the next commit closes.
	Wake func() <-chan struct{}
	// Read returns up to max change sets committed after revision after,
	// in revision order; none when there is nothing new. It fails with a
	// *store.CompactedError when after is older than the GC horizon.
	Read func(ctx context.Context, after store.Revision, max int) ([]store.ChangeSet, error)
	// Batch bounds the change sets read per round (Read's max).
	Batch int
	// Closed is closed when the store closes.
	Closed <-chan struct{}
	// Poll, when positive, bounds how long Watch waits without a wake-up
	// before it reads again.
	Poll time.Duration
}

// Watch yields the change sets committed after revision after, then waits
// for more, as store.Store.Watch specifies: the sequence ends with the
// first error of Read, with ctx.Err() once ctx is done, or with
// store.ErrClosed once src.Closed is closed.
func Watch(ctx context.Context, after store.Revision, src Source) iter.Seq2[store.ChangeSet, error] {
	return func(yield func(store.ChangeSet, error) bool) {
		cur := after
		for {
			if err := ctx.Err(); err != nil {
				yield(store.ChangeSet{}, err)
				return
			}
			// Take the channel before reading, so a commit between the
			// read and the wait still wakes us.
			wake := src.Wake()
			sets, err := src.Read(ctx, cur, src.Batch)
			if err != nil {
				yield(store.ChangeSet{}, err)
				return
			}
			for _, cs := range sets {
				if !yield(cs, nil) {
					return
				}
				cur = cs.Revision
			}
			if len(sets) > 0 {
				continue
			}
			var poll <-chan time.Time // nil: no polling
			var timer *time.Timer
			if src.Poll > 0 {
				timer = time.NewTimer(src.Poll)
				poll = timer.C
			}
			select {
			case <-wake:
			case <-poll:
			case <-ctx.Done():
				stop(timer)
				yield(store.ChangeSet{}, ctx.Err())
				return
			case <-src.Closed:
				stop(timer)
				yield(store.ChangeSet{}, store.ErrClosed)
				return
			}
			stop(timer)
		}
	}
}

func stop(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}
