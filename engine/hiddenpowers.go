package engine

import (
	"context"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// The evaluator discovers the store's read powers (store.PointReader,
// store.BatchReader, store.StatsReader) by type assertion on the reader it
// is given, and hiddenReader embeds only store.Reader: without these
// methods, every reader the engine opens would hide the powers, and the
// evaluator would read through the iterators and plan without statistics.
// They pass the calls on where the store's reader has the power (a point
// read and a query naming a relation never meet a reserved row they did
// not ask for), and answer through the filtered queries otherwise.

var (
	_ store.PointReader = hiddenReader{}
	_ store.BatchReader = hiddenReader{}
	_ store.StatsReader = hiddenReader{}
)

// ReadRelationship implements store.PointReader.
func (h hiddenReader) ReadRelationship(ctx context.Context, k tuple.Key, now time.Time) (tuple.Relationship, bool, error) {
	if pr, ok := h.Reader.(store.PointReader); ok {
		return pr.ReadRelationship(ctx, k, now)
	}
	return store.ReadByQuery(ctx, h.Reader, k, now)
}

// AppendRelationships implements store.BatchReader.
func (h hiddenReader) AppendRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if br, ok := h.Reader.(store.BatchReader); ok && f.Relation != "" {
		return br.AppendRelationships(ctx, dst, f, opts)
	}
	return store.AppendSeq(dst, h.QueryRelationships(ctx, f, opts))
}

// AppendReverseRelationships implements store.BatchReader.
func (h hiddenReader) AppendReverseRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.ReverseFilter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if br, ok := h.Reader.(store.BatchReader); ok && f.Relation != "" {
		return br.AppendReverseRelationships(ctx, dst, f, opts)
	}
	return store.AppendSeq(dst, h.ReverseQueryRelationships(ctx, f, opts))
}

// Statistics implements store.StatsReader: the store's counts (the
// reserved relations' among them, which no schema relation is named
// like), or nil when it keeps none.
func (h hiddenReader) Statistics() *store.Statistics {
	if sr, ok := h.Reader.(store.StatsReader); ok {
		return sr.Statistics()
	}
	return nil
}
