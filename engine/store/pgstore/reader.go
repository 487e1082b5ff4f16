package pgstore

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// querier runs queries: the pool for readers, a pgx.Tx inside Update.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// pageSize is how many relationships one query statement fetches. A scan
// reads a page completely and releases the connection before yielding, so
// callers may nest queries or write inside the loop without holding (or
// exhausting) pool connections; the next page resumes after the last key,
// which is exact because a revision's rows never change.
const pageSize = 500

// index orders name the key columns of the two indexes, in order.
var (
	forwardCols = []string{"resource_type", "resource_id", "relation", "subject_type", "subject_id", "subject_relation"}
	reverseCols = []string{"subject_type", "subject_id", "subject_relation", "resource_type", "relation", "resource_id"}
)

// forwardValues and reverseValues are a key's values in index order.
func forwardValues(k tuple.Key) []any {
	return []any{k.Resource.Type, k.Resource.ID, k.Relation, k.Subject.Type, k.Subject.ID, k.Subject.Relation}
}

func reverseValues(k tuple.Key) []any {
	return []any{k.Subject.Type, k.Subject.ID, k.Subject.Relation, k.Resource.Type, k.Relation, k.Resource.ID}
}

// reader is a snapshot at one revision. It holds no connection.
type reader struct {
	s   *Store
	q   querier
	rev store.Revision
	// onReplica: q is a read replica; a failed statement is retried on
	// the primary.
	onReplica bool
}

func (r *reader) Revision() store.Revision { return r.rev }

// cond is one equality condition of a query.
type cond struct {
	col string
	val string
}

func subjectConds(sf tuple.SubjectFilter) []cond {
	cs := []cond{{"subject_type", sf.Type}}
	if sf.ID != "" {
		cs = append(cs, cond{"subject_id", sf.ID})
	}
	switch sf.Relation {
	case "":
	case tuple.Ellipsis:
		cs = append(cs, cond{"subject_relation", ""})
	default:
		cs = append(cs, cond{"subject_relation", sf.Relation})
	}
	return cs
}

func (r *reader) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return r.scan(ctx, forwardCols, forwardValues, forwardConds(f), opts)
}

func (r *reader) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return r.scan(ctx, reverseCols, reverseValues, reverseConds(f), opts)
}

// forwardConds and reverseConds are a filter's conditions, in the order
// of the columns of their index.
func forwardConds(f tuple.Filter) []cond {
	var cs []cond
	if f.ResourceType != "" {
		cs = append(cs, cond{"resource_type", f.ResourceType})
	}
	if f.ResourceID != "" {
		cs = append(cs, cond{"resource_id", f.ResourceID})
	}
	if f.Relation != "" {
		cs = append(cs, cond{"relation", f.Relation})
	}
	if f.Subject != nil {
		cs = append(cs, subjectConds(*f.Subject)...)
	}
	return cs
}

func reverseConds(f tuple.ReverseFilter) []cond {
	cs := subjectConds(f.Subject)
	if f.ResourceType != "" {
		cs = append(cs, cond{"resource_type", f.ResourceType})
	}
	if f.Relation != "" {
		cs = append(cs, cond{"relation", f.Relation})
	}
	return cs
}

// queries caches buildQuery's statements by shape: the index (forward,
// reverse), the columns with a condition (a bit each, in index order),
// and whether the expiration and the cursor are bound. Conditions come
// in index order (forwardConds, reverseConds), so a shape is one text.
var queries [2][1 << 6][2][2]atomic.Pointer[string]

// cachedQuery is buildQuery(cols, cs, withNow, withAfter), built once
// per shape.
func cachedQuery(cols []string, cs []cond, withNow, withAfter bool) string {
	dir := 0
	if &cols[0] == &reverseCols[0] {
		dir = 1
	}
	mask, next := 0, 0
	for _, c := range cs {
		i := slices.Index(cols[next:], c.col)
		if i < 0 {
			return buildQuery(cols, cs, withNow, withAfter) // not in index order
		}
		next += i
		mask |= 1 << next
		next++
	}
	p := &queries[dir][mask][b2i(withNow)][b2i(withAfter)]
	if q := p.Load(); q != nil {
		return *q
	}
	q := buildQuery(cols, cs, withNow, withAfter)
	p.Store(&q)
	return q
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// relColumns are the columns a query returns after the horizon.
const relColumns = `COALESCE(r.found, false), COALESCE(r.resource_type, ''), COALESCE(r.resource_id, ''),
	COALESCE(r.relation, ''), COALESCE(r.subject_type, ''), COALESCE(r.subject_id, ''),
	COALESCE(r.subject_relation, ''), r.caveat_name, r.caveat_context, r.expires_ns`

// buildQuery returns the SQL of one page of a scan. Parameters: $1 the
// revision, $2 the page size, then the conditions' values, then the
// expiration instant if withNow, then the cursor's six values if
// withAfter.
//
// The horizon row is joined to the scan in one statement, so the check
// and the rows come from one snapshot: GC commits a new horizon before it
// deletes anything, so a snapshot that still sees horizon <= $1 predates
// every deletion that could affect revision $1. The outer join yields the
// horizon even when nothing matches; the scan's order survives the
// nested loop over the single horizon row.
func buildQuery(cols []string, cs []cond, withNow, withAfter bool) string {
	var b strings.Builder
	b.WriteString("SELECT h.horizon, ")
	b.WriteString(relColumns)
	b.WriteString(`
FROM pemba_horizon h LEFT JOIN LATERAL (
	SELECT true AS found, resource_type, resource_id, relation, subject_type, subject_id, subject_relation,
		caveat_name, caveat_context, expires_ns
	FROM pemba_relationships
	WHERE h.horizon <= $1 AND created_rev <= $1 AND deleted_rev > $1`)
	n := 3
	for _, c := range cs {
		fmt.Fprintf(&b, " AND %s = $%d", c.col, n)
		n++
	}
	if withNow {
		fmt.Fprintf(&b, " AND (expires_ns IS NULL OR expires_ns > $%d)", n)
		n++
	}
	if withAfter {
		b.WriteString(" AND (")
		b.WriteString(strings.Join(cols, ", "))
		b.WriteString(") > (")
		for i := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("$" + strconv.Itoa(n))
			n++
		}
		b.WriteString(")")
	}
	b.WriteString("\n\tORDER BY ")
	b.WriteString(strings.Join(cols, ", "))
	b.WriteString("\n\tLIMIT $2\n) r ON true")
	return b.String()
}

// scan yields the relationships visible at r.rev that satisfy cs, in the
// order of cols, a page at a time.
func (r *reader) scan(ctx context.Context, cols []string, values func(tuple.Key) []any, cs []cond, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		var sqlFirst, sqlNext string // with and without a cursor
		base := make([]any, 0, 2+len(cs)+1+len(cols))
		base = append(base, int64(r.rev), 0)
		for _, c := range cs {
			base = append(base, c.val)
		}
		if !opts.Now.IsZero() {
			base = append(base, nowNanos(opts.Now))
		}
		after := opts.After
		remaining := opts.Limit
		var page []tuple.Relationship
		for {
			n := pageSize
			if opts.Limit > 0 {
				n = min(n, remaining)
			}
			args := slices.Clone(base)
			args[1] = n
			var sql string
			if after == nil {
				if sqlFirst == "" {
					sqlFirst = cachedQuery(cols, cs, !opts.Now.IsZero(), false)
				}
				sql = sqlFirst
			} else {
				if sqlNext == "" {
					sqlNext = cachedQuery(cols, cs, !opts.Now.IsZero(), true)
				}
				sql = sqlNext
				args = append(args, values(*after)...)
			}
			var err error
			page, err = r.page(ctx, sql, args, page[:0])
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			for _, rel := range page {
				if !yield(rel, nil) {
					return
				}
			}
			if len(page) < n {
				return
			}
			if opts.Limit > 0 {
				if remaining -= len(page); remaining <= 0 {
					return
				}
			}
			k := page[len(page)-1].Key()
			after = &k
		}
	}
}

// nowNanos converts a query's expiration instant to the stored form,
// clamped to the storable range.
func nowNanos(t time.Time) int64 {
	switch {
	case t.Before(minExpiration):
		return minExpiration.UnixNano()
	case t.After(maxExpiration):
		return maxExpiration.UnixNano()
	}
	return t.UnixNano()
}

// page runs one page query and appends its relationships to out.
func (r *reader) page(ctx context.Context, sql string, args []any, out []tuple.Relationship) ([]tuple.Relationship, error) {
	n := len(out)
	res, err := r.pageOn(ctx, r.q, sql, args, out)
	if err != nil && r.onReplica && retryOnPrimary(ctx, err) {
		r.s.opts.Logger.Debug("pgstore: read replica query failed; using the primary", "err", err)
		return r.pageOn(ctx, r.s.pool, sql, args, res[:n])
	}
	return res, err
}

func (r *reader) pageOn(ctx context.Context, q querier, sql string, args []any, out []tuple.Relationship) ([]tuple.Relationship, error) {
	if err := r.s.checkOpen(); err != nil {
		return out, err
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return out, r.s.wrap(ctx, "query", err)
	}
	defer rows.Close()
	var (
		horizon    int64
		found      bool
		k          tuple.Key
		caveatName pgtype.Text
		caveatCtx  []byte
		expires    pgtype.Int8
	)
	for rows.Next() {
		if err := rows.Scan(&horizon, &found, &k.Resource.Type, &k.Resource.ID, &k.Relation,
			&k.Subject.Type, &k.Subject.ID, &k.Subject.Relation, &caveatName, &caveatCtx, &expires); err != nil {
			return out, r.s.wrap(ctx, "scan", err)
		}
		if store.Revision(horizon) > r.rev {
			r.s.advanceHorizon(store.Revision(horizon))
			return out, &store.CompactedError{Requested: r.rev, Horizon: store.Revision(horizon)}
		}
		if !found {
			continue
		}
		rel, err := decodeRelationship(k, caveatName, caveatCtx, expires)
		if err != nil {
			return out, err
		}
		out = append(out, rel)
	}
	if err := rows.Err(); err != nil {
		return out, r.s.wrap(ctx, "query", err)
	}
	return out, nil
}

// ReadSchema returns the newest schema text written at or before the
// reader's revision, with the same horizon check as the queries.
func (r *reader) ReadSchema(ctx context.Context) (string, store.Revision, error) {
	text, rev, err := r.readSchemaOn(ctx, r.q)
	if err != nil && r.onReplica && retryOnPrimary(ctx, err) {
		r.s.opts.Logger.Debug("pgstore: read replica query failed; using the primary", "err", err)
		return r.readSchemaOn(ctx, r.s.pool)
	}
	return text, rev, err
}

// readSchemaQuery reads the newest schema at or before revision $1 and
// the horizon, in one snapshot (as buildQuery's scans).
const readSchemaQuery = `SELECT h.horizon, s.revision, s.text
FROM pemba_horizon h LEFT JOIN LATERAL (
	SELECT revision, text FROM pemba_schemas
	WHERE h.horizon <= $1 AND revision <= $1
	ORDER BY revision DESC LIMIT 1
) s ON true`

func (r *reader) readSchemaOn(ctx context.Context, q querier) (string, store.Revision, error) {
	if err := r.s.checkOpen(); err != nil {
		return "", 0, err
	}
	rows, err := q.Query(ctx, readSchemaQuery, int64(r.rev))
	if err != nil {
		return "", 0, r.s.wrap(ctx, "read schema", err)
	}
	defer rows.Close()
	var (
		horizon int64
		rev     pgtype.Int8
		text    pgtype.Text
	)
	if rows.Next() {
		if err := rows.Scan(&horizon, &rev, &text); err != nil {
			return "", 0, r.s.wrap(ctx, "read schema", err)
		}
	}
	if err := rows.Err(); err != nil {
		return "", 0, r.s.wrap(ctx, "read schema", err)
	}
	if store.Revision(horizon) > r.rev {
		return "", 0, &store.CompactedError{Requested: r.rev, Horizon: store.Revision(horizon)}
	}
	return text.String, store.Revision(rev.Int64), nil
}
