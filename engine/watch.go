package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/pemba-authz/pemba/engine/store"
)

// WatchEvent is one committed transaction and the zookie of its revision.
type WatchEvent struct {
	store.ChangeSet
	Zookie string
}

// Watch yields every change set committed after the revision named by
// afterZookie ("" means after the current head), then waits for new ones
// until ctx is done. Errors end the sequence.
func (e *Engine) Watch(ctx context.Context, afterZookie string) iter.Seq2[WatchEvent, error] {
	return func(yield func(WatchEvent, error) bool) {
		if err := e.checkOpen(); err != nil {
			yield(WatchEvent{}, err)
			return
		}
		var after store.Revision
		var err error
		if afterZookie == "" {
			after, err = e.heads.head(ctx)
		} else {
			after, err = e.resolve(ctx, AtExactSnapshot(afterZookie))
		}
		if err != nil {
			yield(WatchEvent{}, err)
			return
		}
		for cs, err := range e.st.Watch(ctx, after) {
			if err != nil {
				if errors.Is(err, store.ErrRevisionCompacted) {
					err = fmt.Errorf("engine: watch: snapshot expired: %w", err)
				}
				yield(WatchEvent{}, err)
				return
			}
			if !yield(WatchEvent{ChangeSet: cs, Zookie: e.zookieOf(cs.Revision)}, nil) {
				return
			}
		}
	}
}
