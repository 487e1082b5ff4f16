// Package txbuf holds the bookkeeping that a store backend's write
// transaction shares with every other backend that buffers writes until
// commit: one pending change per key (the last write wins), the schema
// text if one was written, the count of operations against the batch
// limit, a sticky error that aborts the commit, and the "finished" flag
// that makes a transaction unusable once its Update has returned.
//
// A Buffer knows nothing of how a backend reads the previous revision or
// applies the changes: the backend passes a Querier for reads and takes
// Changes and Schema when it commits. The change type is the backend's
// own, described to the Buffer by a View function.
package txbuf

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// View describes a backend's change: its kind, the key it writes, and the
// relationship that filters match it against (only read for changes that
// are not deletions).
type View[C any] func(c C) (op store.Op, k tuple.Key, rel tuple.Relationship)

// Config configures a Buffer.
type Config[C any] struct {
	// Prefix starts the Buffer's own error messages ("pebblestore").
	Prefix string
	// MaxOps is the number of operations Count allows.
	MaxOps int
	// Done is returned by Check once the transaction is finished.
	Done error
	// View describes a change.
	View View[C]
}

// Buffer is the buffered state of one write transaction. It is not safe
// for concurrent use, like the transaction it serves.
type Buffer[C any] struct {
	cfg      Config[C]
	pending  map[tuple.Key]int // index into changes
	changes  []C
	schema   *string
	ops      int
	err      error // sticky: the transaction cannot commit
	finished bool
}

// New returns an empty Buffer.
func New[C any](cfg Config[C]) *Buffer[C] {
	return &Buffer[C]{cfg: cfg, pending: map[tuple.Key]int{}}
}

// Check returns cfg.Done once the transaction is finished, else the
// sticky error, if any.
func (b *Buffer[C]) Check() error {
	if b.finished {
		return b.cfg.Done
	}
	return b.err
}

// Fail makes err sticky, so that any failed operation aborts the
// transaction even if its caller ignores the error, and returns err. Only
// the first error sticks, and none after Finish.
func (b *Buffer[C]) Fail(err error) error {
	if err != nil && b.err == nil && !b.finished {
		b.err = err
	}
	return err
}

// Count charges one operation against MaxOps; past it, it fails with
// store.ErrBatchTooLarge.
func (b *Buffer[C]) Count() error {
	b.ops++
	if b.ops > b.cfg.MaxOps {
		return fmt.Errorf("%s: more than %d operations: %w", b.cfg.Prefix, b.cfg.MaxOps, store.ErrBatchTooLarge)
	}
	return nil
}

// Record stores c as the change of key k, replacing an earlier change of
// k in place (so changes keep the order of each key's first write).
func (b *Buffer[C]) Record(k tuple.Key, c C) {
	if i, ok := b.pending[k]; ok {
		b.changes[i] = c
		return
	}
	b.pending[k] = len(b.changes)
	b.changes = append(b.changes, c)
}

// Pending returns the change recorded for k, if any.
func (b *Buffer[C]) Pending(k tuple.Key) (C, bool) {
	if i, ok := b.pending[k]; ok {
		return b.changes[i], true
	}
	var zero C
	return zero, false
}

// Changes returns the recorded changes, one per key, in the order of each
// key's first write. The slice belongs to the Buffer.
func (b *Buffer[C]) Changes() []C { return b.changes }

// WriteSchema records text as the new schema, after Check.
func (b *Buffer[C]) WriteSchema(text string) error {
	if err := b.Check(); err != nil {
		return err
	}
	b.schema = &text
	return nil
}

// Schema returns the schema text written, or nil.
func (b *Buffer[C]) Schema() *string { return b.schema }

// Finish marks the transaction finished; fnErr is what the transaction's
// function returned. It returns the error that must stop the commit:
// fnErr, else the sticky error, else ctx.Err().
func (b *Buffer[C]) Finish(ctx context.Context, fnErr error) error {
	b.finished = true
	if fnErr == nil {
		fnErr = b.err
	}
	if fnErr == nil {
		fnErr = ctx.Err()
	}
	return fnErr
}

// Querier reads relationships at the revision the transaction builds on.
type Querier interface {
	QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error]
}

// Get returns the relationship with key k that q sees, expired or not.
func Get(ctx context.Context, q Querier, k tuple.Key) (tuple.Relationship, bool, error) {
	return store.ReadByQuery(ctx, q, k, time.Time{})
}

// Exists reports whether key k holds a relationship as the transaction
// would leave it so far: its own pending change if there is one, else an
// unexpired (at now) relationship that q sees. Create fails when it does.
func (b *Buffer[C]) Exists(ctx context.Context, q Querier, k tuple.Key, now func() time.Time) (bool, error) {
	if c, ok := b.Pending(k); ok {
		op, _, _ := b.cfg.View(c)
		return op != store.OpDelete, nil
	}
	cur, found, err := Get(ctx, q, k)
	if err != nil {
		return false, err
	}
	return found && !cur.ExpiredAt(now()), nil
}

// Matching returns the keys DeleteMatching(f, limit) deletes: the matches
// q sees that this transaction has not deleted, and the transaction's own
// live writes that match, sorted by compare (the forward index order) and
// cut to limit when limit > 0. It records nothing.
func (b *Buffer[C]) Matching(ctx context.Context, q Querier, f tuple.Filter, limit int, compare func(a, b tuple.Key) int) ([]tuple.Key, error) {
	var keys []tuple.Key
	seen := map[tuple.Key]bool{}
	opts := store.QueryOptions{}
	if limit > 0 {
		// Pending deletions can hide at most len(changes) matches.
		opts.Limit = limit + len(b.changes)
	}
	for rel, err := range q.QueryRelationships(ctx, f, opts) {
		if err != nil {
			return nil, err
		}
		k := rel.Key()
		if c, ok := b.Pending(k); ok {
			if op, _, _ := b.cfg.View(c); op == store.OpDelete {
				continue
			}
		}
		seen[k] = true
		keys = append(keys, k)
	}
	for _, c := range b.changes {
		if op, k, rel := b.cfg.View(c); op != store.OpDelete && !seen[k] && f.Matches(rel) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compare)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	return keys, nil
}
