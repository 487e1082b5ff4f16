package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// The evaluator's read powers. Each call is one statement, one round
// trip: a point read by the whole key (the primary key's prefix), and a
// query appended to the caller's slice without paging (the evaluator
// reads every answer before it recurses anyway), where the iterators of
// QueryRelationships page by pageSize. Both check the horizon in the same
// statement, as the scans do (see buildQuery).

var (
	_ store.PointReader = (*reader)(nil)
	_ store.BatchReader = (*reader)(nil)
)

// readRelationshipSQL reads the version of one key live at revision $1
// ($2-$7 the key in forward order) and, unless $8 is NULL, unexpired at
// $8 (Unix nanoseconds), with the horizon. Only what the caller lacks
// comes back: the key is the caller's.
const readRelationshipSQL = `SELECT h.horizon, COALESCE(r.found, false), r.caveat_name, r.caveat_context, r.expires_ns
FROM pemba_horizon h LEFT JOIN LATERAL (
	SELECT true AS found, caveat_name, caveat_context, expires_ns
	FROM pemba_relationships
	WHERE h.horizon <= $1 AND created_rev <= $1 AND deleted_rev > $1
		AND resource_type = $2 AND resource_id = $3 AND relation = $4
		AND subject_type = $5 AND subject_id = $6 AND subject_relation = $7
		AND ($8::bigint IS NULL OR expires_ns IS NULL OR expires_ns > $8)
	LIMIT 1
) r ON true`

// ReadRelationship reads the relationship with key k visible at the
// reader's revision and, when now is not zero, unexpired at now
// (store.PointReader): one statement.
func (r *reader) ReadRelationship(ctx context.Context, k tuple.Key, now time.Time) (tuple.Relationship, bool, error) {
	srel := k.Subject.Relation
	if srel == tuple.Ellipsis {
		srel = ""
	}
	var at any // NULL: expired relationships too
	if !now.IsZero() {
		at = nowNanos(now)
	}
	args := [...]any{int64(r.rev), k.Resource.Type, k.Resource.ID, k.Relation, k.Subject.Type, k.Subject.ID, srel, at}
	rel, found, err := r.readOn(ctx, r.q, k, args[:])
	if err != nil && r.onReplica && retryOnPrimary(ctx, err) {
		r.s.opts.Logger.Debug("pgstore: read replica query failed; using the primary", "err", err)
		return r.readOn(ctx, r.s.pool, k, args[:])
	}
	return rel, found, err
}

func (r *reader) readOn(ctx context.Context, q querier, k tuple.Key, args []any) (tuple.Relationship, bool, error) {
	if err := r.s.checkOpen(); err != nil {
		return tuple.Relationship{}, false, err
	}
	rows, err := q.Query(ctx, readRelationshipSQL, args...)
	if err != nil {
		return tuple.Relationship{}, false, r.s.wrap(ctx, "read relationship", err)
	}
	defer rows.Close()
	var (
		horizon    int64
		found      bool
		caveatName pgtype.Text
		caveatCtx  []byte
		expires    pgtype.Int8
	)
	if rows.Next() {
		if err := rows.Scan(&horizon, &found, &caveatName, &caveatCtx, &expires); err != nil {
			return tuple.Relationship{}, false, r.s.wrap(ctx, "read relationship", err)
		}
	}
	if err := rows.Err(); err != nil {
		return tuple.Relationship{}, false, r.s.wrap(ctx, "read relationship", err)
	}
	if store.Revision(horizon) > r.rev {
		r.s.advanceHorizon(store.Revision(horizon))
		return tuple.Relationship{}, false, &store.CompactedError{Requested: r.rev, Horizon: store.Revision(horizon)}
	}
	if !found {
		return tuple.Relationship{}, false, nil
	}
	rel, err := decodeRelationship(k, caveatName, caveatCtx, expires)
	if err != nil {
		return tuple.Relationship{}, false, err
	}
	return rel, true, nil
}

// AppendRelationships appends the answer of QueryRelationships to dst
// (store.BatchReader): one statement, not paged.
func (r *reader) AppendRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	return r.appendAll(ctx, dst, forwardCols, forwardValues, forwardConds(f), opts)
}

// AppendReverseRelationships appends the answer of
// ReverseQueryRelationships to dst (store.BatchReader): one statement,
// not paged.
func (r *reader) AppendReverseRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.ReverseFilter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	return r.appendAll(ctx, dst, reverseCols, reverseValues, reverseConds(f), opts)
}

// appendAll appends the relationships visible at r.rev that satisfy cs,
// in the order of cols, to dst with one statement: scan's query with no
// page size (LIMIT NULL) unless opts.Limit sets one.
func (r *reader) appendAll(ctx context.Context, dst []tuple.Relationship, cols []string, values func(tuple.Key) []any, cs []cond, opts store.QueryOptions) ([]tuple.Relationship, error) {
	args := make([]any, 0, 2+len(cs)+1+len(cols))
	var limit any // NULL: no limit
	if opts.Limit > 0 {
		limit = int64(opts.Limit)
	}
	args = append(args, int64(r.rev), limit)
	for _, c := range cs {
		args = append(args, c.val)
	}
	if !opts.Now.IsZero() {
		args = append(args, nowNanos(opts.Now))
	}
	if opts.After != nil {
		args = append(args, values(*opts.After)...)
	}
	sql := cachedQuery(cols, cs, !opts.Now.IsZero(), opts.After != nil)
	return r.page(ctx, sql, args, dst)
}
