package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Import writes every relationship of rels with Touch semantics, after
// validating each against the schema in force. It uses the store's
// store.BulkLoader when there is one (one revision for everything);
// otherwise it writes batches of Limits.MaxUpdatesPerWrite, each its own
// revision. It returns the zookie of the last revision and how many
// relationships were written. A validation error stops the import; with
// batches, the batches before it stay written.
//
// When the schema declares invariants, the bulk loader (which runs no
// checks) is not used: every batch is a write of its own, and must keep
// the invariants like any other write (so order the relationships that a
// batch's invariants need before, or in the same batch as, those that
// need them).
func (e *Engine) Import(ctx context.Context, caller string, rels iter.Seq2[tuple.Relationship, error]) (zookie string, imported int, err error) {
	if err := e.checkOpen(); err != nil {
		return "", 0, err
	}
	e.writeMu.RLock()
	defer e.writeMu.RUnlock()
	head, err := e.heads.head(ctx)
	if err != nil {
		return "", 0, err
	}
	v, err := e.openAt(ctx, head)
	if err != nil {
		return "", 0, err
	}
	if v.c == nil {
		return "", 0, fmt.Errorf("%w: write a schema before importing relationships", ErrNoSchema)
	}
	s := v.c.schema
	validated := func(yield func(tuple.Relationship, error) bool) {
		i := 0
		for r, err := range rels {
			if err == nil {
				err = e.validateRelationship(s, i, r)
			}
			i++
			if !yield(r, err) || err != nil {
				return
			}
		}
	}
	meta := store.WriteMeta{Caller: caller}
	ix := v.c.invariants
	if bl, ok := e.st.(store.BulkLoader); ok && ix == nil {
		rev, n, err := bl.Import(ctx, meta, validated)
		if err != nil {
			return "", 0, e.wrapWrite(err)
		}
		return e.zookieOf(rev), n, nil
	}
	total := 0
	last := head
	batch := make([]tuple.Relationship, 0, e.limits.MaxUpdatesPerWrite)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		now := e.now()
		rev, err := e.st.Update(ctx, meta, func(ctx context.Context, tx store.Tx) error {
			if ix != nil {
				changes := make([]invChange, len(batch))
				for i := range batch {
					changes[i] = invChange{index: total + i, op: store.OpTouch, key: batch[i].Key(), rel: &batch[i]}
				}
				if err := ix.checkInvariants(ctx, tx, changes, now); err != nil {
					return err
				}
			}
			for _, r := range batch {
				if err := tx.Touch(ctx, r); err != nil {
					return fmt.Errorf("engine: import %s: %w", r.Key(), err)
				}
			}
			return nil
		})
		if err != nil {
			return e.wrapWrite(err)
		}
		total += len(batch)
		last = rev
		batch = batch[:0]
		return nil
	}
	for r, err := range validated {
		if err != nil {
			var re *RelationshipError
			if !errors.As(err, &re) {
				err = fmt.Errorf("engine: import source: %w", err)
			}
			return e.zookieOf(last), total, err
		}
		batch = append(batch, r)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return e.zookieOf(last), total, err
			}
		}
	}
	if err := flush(); err != nil {
		return e.zookieOf(last), total, err
	}
	return e.zookieOf(last), total, nil
}
