package memstore

import (
	"context"
	"iter"
	"slices"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// pendingWrite is the state a transaction leaves a key in.
type pendingWrite struct {
	deleted bool
	rel     tuple.Relationship
}

// tx is a write transaction. Its writes are buffered until Update commits
// them; its reads see the previous revision.
type tx struct {
	s        *Store
	prev     *reader
	pending  map[tuple.Key]pendingWrite
	changes  []store.Change
	ops      int     // Touch, Create and Delete calls so far
	schema   *string // non-nil when WriteSchema was called
	err      error   // the first error returned by a method; aborts the commit
	finished bool
}

func newTx(s *Store, prev store.Revision) *tx {
	return &tx{s: s, prev: &reader{s: s, rev: prev}, pending: make(map[tuple.Key]pendingWrite)}
}

// fail records err as the transaction's abort reason and returns it.
func (t *tx) fail(err error) error {
	if t.err == nil {
		t.err = err
	}
	return err
}

// begin checks a Touch, Create or Delete call against the batch limit.
func (t *tx) begin() error {
	if t.finished {
		return store.ErrTxDone
	}
	t.ops++
	if t.ops > t.s.maxBatch {
		return t.fail(errorf("more than %d operations in one transaction: %w", t.s.maxBatch, store.ErrBatchTooLarge))
	}
	return nil
}

// current returns the relationship stored under k as this transaction
// would leave it so far: its own pending write, else the previous revision.
func (t *tx) current(k tuple.Key) (tuple.Relationship, bool) {
	if w, ok := t.pending[k]; ok {
		return w.rel, !w.deleted
	}
	s := t.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if rec := s.records[k]; rec != nil {
		return rec.visible(t.prev.rev)
	}
	return tuple.Relationship{}, false
}

func (t *tx) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if t.finished {
		return func(yield func(tuple.Relationship, error) bool) { yield(tuple.Relationship{}, store.ErrTxDone) }
	}
	return t.prev.QueryRelationships(ctx, f, opts)
}

// ReverseQueryRelationships implements store.ReverseTx.
func (t *tx) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if t.finished {
		return func(yield func(tuple.Relationship, error) bool) { yield(tuple.Relationship{}, store.ErrTxDone) }
	}
	return t.prev.ReverseQueryRelationships(ctx, f, opts)
}

// normalize validates r and returns a private copy with its expiration in UTC.
func normalize(r tuple.Relationship) (tuple.Relationship, error) {
	if err := r.Validate(); err != nil {
		return r, errorf("relationship %s: %w", r.Key(), err)
	}
	r = copyRel(r)
	if !r.Expiration.IsZero() {
		r.Expiration = r.Expiration.UTC()
	}
	return r, nil
}

func (t *tx) Touch(ctx context.Context, r tuple.Relationship) error {
	if err := t.begin(); err != nil {
		return err
	}
	r, err := normalize(r)
	if err != nil {
		return t.fail(err)
	}
	t.pending[r.Key()] = pendingWrite{rel: r}
	t.changes = append(t.changes, store.Change{Op: store.OpTouch, Relationship: r})
	return nil
}

func (t *tx) Create(ctx context.Context, r tuple.Relationship) error {
	if err := t.begin(); err != nil {
		return err
	}
	r, err := normalize(r)
	if err != nil {
		return t.fail(err)
	}
	k := r.Key()
	if old, ok := t.current(k); ok && !old.ExpiredAt(t.s.now()) {
		return t.fail(&store.AlreadyExistsError{Key: k})
	}
	t.pending[k] = pendingWrite{rel: r}
	t.changes = append(t.changes, store.Change{Op: store.OpCreate, Relationship: r})
	return nil
}

func (t *tx) Delete(ctx context.Context, k tuple.Key) error {
	if err := t.begin(); err != nil {
		return err
	}
	if err := (tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}).Validate(); err != nil {
		return t.fail(errorf("delete %s: %w", k, err))
	}
	old, ok := t.current(k)
	if !ok {
		return nil // absent: nothing to do, nothing to record
	}
	t.pending[k] = pendingWrite{deleted: true}
	t.changes = append(t.changes, store.Change{Op: store.OpDelete, Relationship: old})
	return nil
}

// DeleteMatching deletes, in forward index order, up to limit
// relationships matching f as this transaction would leave them so far
// (expired ones included: they are still stored).
func (t *tx) DeleteMatching(ctx context.Context, f tuple.Filter, limit int) (int, error) {
	if t.finished {
		return 0, store.ErrTxDone
	}
	var victims []tuple.Relationship
	for r, err := range t.prev.QueryRelationships(ctx, f, store.QueryOptions{}) {
		if err != nil {
			return 0, t.fail(err)
		}
		if _, overridden := t.pending[r.Key()]; !overridden {
			victims = append(victims, r)
		}
	}
	for _, w := range t.pending {
		if !w.deleted && f.Matches(w.rel) {
			victims = append(victims, w.rel)
		}
	}
	slices.SortFunc(victims, func(a, b tuple.Relationship) int {
		return compareFields(forwardFields(a.Key()), forwardFields(b.Key()))
	})
	if limit > 0 && len(victims) > limit {
		victims = victims[:limit]
	}
	for _, r := range victims {
		t.pending[r.Key()] = pendingWrite{deleted: true}
		t.changes = append(t.changes, store.Change{Op: store.OpDelete, Relationship: r})
	}
	return len(victims), nil
}

func (t *tx) WriteSchema(ctx context.Context, text string) error {
	if t.finished {
		return store.ErrTxDone
	}
	t.schema = &text
	return nil
}
