package engine

import (
	"context"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// hide returns r without the reserved rows (hiddenReader), keeping the
// optional read powers the evaluator's hot path asserts on its reader:
// point reads, closure-free batch queries and the planner's statistics.
// A bare hiddenReader has none of them, and the evaluator would fall back
// to iterator closures for every query (twice the allocations per check)
// and plan without statistics. Readers with another combination of powers
// than those of the backends (Pebble and memstore: all three; PostgreSQL:
// statistics) are wrapped without the powers they would lose nothing by
// (answers are the same either way; only the cost differs).
func hide(r store.Reader) store.Reader {
	h := hiddenReader{r}
	sr, stats := r.(store.StatsReader)
	pr, points := r.(store.PointReader)
	br, batch := r.(store.BatchReader)
	switch {
	case stats && points && batch:
		return hiddenFast{hiddenReader: h, pr: pr, br: br, sr: sr}
	case stats:
		return hiddenStats{hiddenReader: h, sr: sr}
	}
	return h
}

// hiddenStats is a hiddenReader over a reader with statistics.
type hiddenStats struct {
	hiddenReader
	sr store.StatsReader
}

// Statistics implements store.StatsReader: the reader's counts (which
// count reserved rows under their own relation names, which no plan of an
// open relation looks up).
func (h hiddenStats) Statistics() *store.Statistics { return h.sr.Statistics() }

// hiddenFast is a hiddenReader over a reader with point reads, batch
// queries and statistics, all three kept.
type hiddenFast struct {
	hiddenReader
	pr store.PointReader
	br store.BatchReader
	sr store.StatsReader
}

var (
	_ store.PointReader = hiddenFast{}
	_ store.BatchReader = hiddenFast{}
	_ store.StatsReader = hiddenFast{}
	_ store.StatsReader = hiddenStats{}
)

// Statistics implements store.StatsReader.
func (h hiddenFast) Statistics() *store.Statistics { return h.sr.Statistics() }

// ReadRelationship implements store.PointReader. A key always names its
// relation, so the read is the reader's (a reserved relation is read only
// when asked for by name, as hiddenReader's queries are).
func (h hiddenFast) ReadRelationship(ctx context.Context, k tuple.Key, now time.Time) (tuple.Relationship, bool, error) {
	return h.pr.ReadRelationship(ctx, k, now)
}

// AppendRelationships implements store.BatchReader: the reader's when f
// names a relation, else hiddenReader's query (which skips the reserved
// rows and keeps the limit) appended to dst.
func (h hiddenFast) AppendRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if f.Relation != "" {
		return h.br.AppendRelationships(ctx, dst, f, opts)
	}
	return appendSeq(dst, h.hiddenReader.QueryRelationships(ctx, f, opts))
}

// AppendReverseRelationships implements store.BatchReader, as
// AppendRelationships.
func (h hiddenFast) AppendReverseRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.ReverseFilter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if f.Relation != "" {
		return h.br.AppendReverseRelationships(ctx, dst, f, opts)
	}
	return appendSeq(dst, h.hiddenReader.ReverseQueryRelationships(ctx, f, opts))
}

// appendSeq appends what seq yields to dst, up to its first error.
func appendSeq(dst []tuple.Relationship, seq func(func(tuple.Relationship, error) bool)) ([]tuple.Relationship, error) {
	for r, err := range seq {
		if err != nil {
			return dst, err
		}
		dst = append(dst, r)
	}
	return dst, nil
}
