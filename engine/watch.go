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
		for cs, err := range e.watchStore(ctx, after) {
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

// CheckDefinitions reports, as ErrUnknownDefinition naming the first,
// whether any of types is not a definition of the head's schema: a Watch
// filtered to a type that does not exist would wait forever for nothing.
func (e *Engine) CheckDefinitions(ctx context.Context, types []string) error {
	if len(types) == 0 {
		return nil
	}
	v, err := e.open(ctx, FullyConsistent())
	if err != nil {
		return err
	}
	for _, t := range types {
		if v.c == nil || v.c.schema.Definitions[t] == nil {
			return fmt.Errorf("%w %q (the schema defines no such type)", ErrUnknownDefinition, t)
		}
	}
	return nil
}
