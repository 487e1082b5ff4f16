package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
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
//
// Relationships of the nested-group index's relations make the import
// leave the index stale (a bulk load: its own revision reads as stale)
// or maintain it batch by batch. Import returns once the relationships
// are committed; a stale index is rebuilt in the background
// (nestedbuild.go; WaitNestedIndex waits for it), and checks walk those
// relations meanwhile, with the same answers. A large import then has
// the store compacted in the background (Options.CompactAfterImport;
// WaitCompaction waits for it).
func (e *Engine) Import(ctx context.Context, caller string, rels iter.Seq2[tuple.Relationship, error]) (zookie string, imported int, err error) {
	zookie, imported, stale, err := e.importLocked(ctx, caller, rels)
	e.rebuildStale(ctx, stale)
	e.compactAfterImport(imported)
	return zookie, imported, err
}

// importLocked is Import under the write lock, returning also the
// relations whose nested-group index the import left stale.
func (e *Engine) importLocked(ctx context.Context, caller string, rels iter.Seq2[tuple.Relationship, error]) (zookie string, imported int, stale []*schema.Relation, err error) {
	if err := e.checkOpen(); err != nil {
		return "", 0, nil, err
	}
	e.writeMu.RLock()
	defer e.writeMu.RUnlock()
	head, err := e.heads.head(ctx)
	if err != nil {
		return "", 0, nil, err
	}
	v, err := e.openAt(ctx, head)
	if err != nil {
		return "", 0, nil, err
	}
	if v.c == nil {
		return "", 0, nil, fmt.Errorf("%w: write a schema before importing relationships", ErrNoSchema)
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
	meta, err := writeMeta(ctx, caller, OpNameImportRelationships)
	if err != nil {
		return "", 0, nil, err
	}
	ix := v.c.invariants
	nested := v.c.nested
	if bl, ok := e.st.(store.BulkLoader); ok && ix == nil {
		// The loader writes only what it is given: the index of the
		// relations whose edges it loads is marked stale by the load
		// and rebuilt after it.
		seen := map[*nestedRel]bool{}
		rev, n, err := bl.Import(ctx, meta, staleOnLoad(nested, validated, seen))
		for r := range seen {
			stale = append(stale, r.rel)
		}
		if err != nil {
			return "", 0, stale, e.wrapWrite(err)
		}
		return e.zookieOf(rev), n - len(seen), stale, nil
	}
	total := 0
	last := head
	size := e.limits.MaxUpdatesPerWrite
	if len(nested) > 0 && size >= e.batchOps() {
		size = max(1, e.batchOps()-1) // room to mark the nested index stale
	}
	batch := make([]tuple.Relationship, 0, size)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		now := e.now()
		rev, err := e.st.Update(ctx, meta, func(ctx context.Context, raw store.Tx) error {
			tx := hiddenTx{raw}
			if ix != nil {
				changes := make([]invChange, len(batch))
				for i := range batch {
					changes[i] = invChange{index: total + i, op: store.OpTouch, key: batch[i].Key(), rel: &batch[i]}
				}
				if err := ix.checkInvariants(ctx, tx, changes, now); err != nil {
					return err
				}
			}
			nb := nestedBatch{ix: nested}
			for _, r := range batch {
				nb.note(r.Key(), true)
				if err := tx.Touch(ctx, r); err != nil {
					return fmt.Errorf("engine: import %s: %w", r.Key(), err)
				}
			}
			s, err := nb.apply(ctx, e, tx, e.batchOps()-len(batch))
			stale = append(stale, s...)
			return err
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
			return e.zookieOf(last), total, stale, err
		}
		batch = append(batch, r)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return e.zookieOf(last), total, stale, err
			}
		}
	}
	if err := flush(); err != nil {
		return e.zookieOf(last), total, stale, err
	}
	return e.zookieOf(last), total, stale, nil
}
