package pgstore

import (
	"context"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

var (
	_ store.StatsKeeper = (*Store)(nil)
	_ store.StatsReader = (*reader)(nil)
)

// countResourcesSQL and countSubjectsSQL count the relationships live at
// revision $1 and unexpired at $2 (Unix nanoseconds) by resource kind and
// by subject kind, with their distinct objects: whole-table scans, run by
// the background count only (see store.StatsCounter).
const (
	countResourcesSQL = `SELECT resource_type, relation, count(*), count(DISTINCT resource_id)
FROM pemba_relationships WHERE created_rev <= $1 AND deleted_rev > $1 AND (expires_ns IS NULL OR expires_ns > $2)
GROUP BY 1, 2`
	countSubjectsSQL = `SELECT subject_type, subject_relation, count(*), count(DISTINCT subject_id)
FROM pemba_relationships WHERE created_rev <= $1 AND deleted_rev > $1 AND (expires_ns IS NULL OR expires_ns > $2)
GROUP BY 1, 2`
)

// countStatistics counts the relationships live at the head revision
// (unexpired at the store's clock) with two GROUP BY queries: the
// database does the scan and sends one row per kind, and both counts of
// distinct objects are exact. They run on the primary at the cached head.
func (s *Store) countStatistics(ctx context.Context) (*store.Statistics, error) {
	head := store.Revision(s.head.Load())
	now := nowNanos(s.opts.Now())
	st := &store.Statistics{Revision: head, Resources: map[store.RelationKind]store.Count{}, Subjects: map[store.RelationKind]store.Count{}}
	for _, q := range []struct {
		sql   string
		into  map[store.RelationKind]store.Count
		total bool
	}{
		{countResourcesSQL, st.Resources, true},
		{countSubjectsSQL, st.Subjects, false},
	} {
		rows, err := s.pool.Query(ctx, q.sql, int64(head), now)
		if err != nil {
			return nil, s.wrap(ctx, "count statistics", err)
		}
		for rows.Next() {
			var k store.RelationKind
			var c store.Count
			if err := rows.Scan(&k.Type, &k.Relation, &c.Relationships, &c.Objects); err != nil {
				rows.Close()
				return nil, s.wrap(ctx, "count statistics", err)
			}
			if !q.total && k.Relation == "" {
				k.Relation = tuple.Ellipsis
			}
			if q.total {
				st.Total += c.Relationships
			}
			q.into[k] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.wrap(ctx, "count statistics", err)
		}
	}
	return st, nil
}

// Statistics returns the latest counts of relationships (store.StatsKeeper):
// counted when the store opens and again after enough writes through it
// (writes by other processes sharing the database are not observed).
func (s *Store) Statistics() *store.Statistics { return s.stats.Statistics() }

// RefreshStatistics counts the relationships at the head revision now.
func (s *Store) RefreshStatistics(ctx context.Context) (*store.Statistics, error) {
	if _, err := s.HeadRevision(ctx); err != nil {
		return nil, err
	}
	return s.stats.Refresh(ctx)
}

// Statistics returns the store's counts (store.StatsReader).
func (r *reader) Statistics() *store.Statistics { return r.s.stats.Statistics() }
