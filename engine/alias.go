package engine

import (
	"cmp"
	"context"
	"iter"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// This file makes "@renamed_from(old)" work for evaluation: relationships
// stored under a relation's old name are read as the new relation's, so
// that a relation can be renamed in the schema before its data is
// rewritten. Reads of stored data as such (ReadRelationships, Watch,
// exports, deletes by filter) see the names as stored, so a migration can
// find what is left under the old name.

// hasRenames reports whether any definition of s renames a relation.
func hasRenames(s *schema.Schema) bool {
	for _, d := range s.Definitions {
		if len(d.RenamedFrom) > 0 {
			return true
		}
	}
	return false
}

// aliasReader is a store.Reader that answers a query for a renamed
// relation with the relationships stored under both its names, the old
// ones presented under the new name. A relationship stored under both
// names appears once (the new name's: it is the newer write).
type aliasReader struct {
	store.Reader
	s *schema.Schema
	// stats caches Statistics' answer for the store's latest counts
	// (shared by the readers of one compiled schema; nil: not cached).
	stats *atomic.Pointer[aliasStats]
}

// aliasStats is a store's Statistics value (src) seen through a schema's
// renames (merged).
type aliasStats struct{ src, merged *store.Statistics }

// renamed returns the old name of relation rel of resource type typ, or "".
func (a aliasReader) renamed(typ, rel string) string {
	if typ == "" || rel == "" {
		return ""
	}
	d := a.s.Definitions[typ]
	if d == nil || len(d.RenamedFrom) == 0 {
		return ""
	}
	if r := d.Relations[rel]; r != nil && !r.IsPermission {
		return r.RenamedFrom
	}
	return ""
}

// QueryRelationships merges the new name's and the old name's
// relationships in forward index order.
func (a aliasReader) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	old := a.renamed(f.ResourceType, f.Relation)
	if old == "" {
		return a.Reader.QueryRelationships(ctx, f, opts)
	}
	of, oopts := f, opts
	of.Relation = old
	oopts.After = renameKey(opts.After, old)
	return mergeRenamed(a.Reader.QueryRelationships(ctx, f, opts), a.Reader.QueryRelationships(ctx, of, oopts), f.Relation, opts.Limit, forwardOrder)
}

// ReverseQueryRelationships merges the new name's and the old name's
// relationships in reverse index order.
func (a aliasReader) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	old := a.renamed(f.ResourceType, f.Relation)
	if old == "" {
		return a.Reader.ReverseQueryRelationships(ctx, f, opts)
	}
	of, oopts := f, opts
	of.Relation = old
	oopts.After = renameKey(opts.After, old)
	return mergeRenamed(a.Reader.ReverseQueryRelationships(ctx, f, opts), a.Reader.ReverseQueryRelationships(ctx, of, oopts), f.Relation, opts.Limit, reverseOrder)
}

// The evaluator finds the store's point and batch reads and statistics by
// type assertion (see hiddenpowers.go); aliasReader passes them on for
// every relation that was not renamed, and answers a renamed one's
// through its merged queries and counts.
var (
	_ store.PointReader = aliasReader{}
	_ store.BatchReader = aliasReader{}
	_ store.StatsReader = aliasReader{}
)

// Statistics implements store.StatsReader: the store's counts, with those
// of each renamed relation's old name added to its new name's (as
// resource relation and as subject relation), since the reader presents
// both names' rows under the new one; nil when the store keeps none. An
// object with rows under both names counts twice, so a renamed
// relation's fan-out reads low until the old rows are gone: the counts
// are approximate anyway (store.Statistics).
func (a aliasReader) Statistics() *store.Statistics {
	sr, ok := a.Reader.(store.StatsReader)
	if !ok {
		return nil
	}
	st := sr.Statistics()
	if st == nil {
		return nil
	}
	if a.stats != nil {
		if c := a.stats.Load(); c != nil && c.src == st {
			return c.merged
		}
	}
	out := *st
	out.Resources, out.Subjects = maps.Clone(st.Resources), maps.Clone(st.Subjects)
	add := func(m map[store.RelationKind]store.Count, typ, to, from string) {
		c, ok := m[store.RelationKind{Type: typ, Relation: from}]
		if !ok {
			return
		}
		k := store.RelationKind{Type: typ, Relation: to}
		t := m[k]
		t.Relationships += c.Relationships
		t.Objects += c.Objects
		m[k] = t
	}
	for typ, d := range a.s.Definitions {
		for _, r := range d.Relations {
			if !r.IsPermission && r.RenamedFrom != "" {
				add(out.Resources, typ, r.Name, r.RenamedFrom)
				add(out.Subjects, typ, r.Name, r.RenamedFrom)
			}
		}
	}
	if a.stats != nil {
		a.stats.Store(&aliasStats{src: st, merged: &out})
	}
	return &out
}

// ReadRelationship implements store.PointReader: k, or for a renamed
// relation k under its old name, presented under the new one.
func (a aliasReader) ReadRelationship(ctx context.Context, k tuple.Key, now time.Time) (tuple.Relationship, bool, error) {
	pr, ok := a.Reader.(store.PointReader)
	if !ok {
		return store.ReadByQuery(ctx, a, k, now) // a's query merges both names
	}
	r, found, err := pr.ReadRelationship(ctx, k, now)
	old := a.renamed(k.Resource.Type, k.Relation)
	if err != nil || found || old == "" {
		return r, found, err
	}
	ok2 := k
	ok2.Relation = old
	r, found, err = pr.ReadRelationship(ctx, ok2, now)
	if found {
		r.Relation = k.Relation
	}
	return r, found, err
}

// AppendRelationships implements store.BatchReader.
func (a aliasReader) AppendRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if br, ok := a.Reader.(store.BatchReader); ok && a.renamed(f.ResourceType, f.Relation) == "" {
		return br.AppendRelationships(ctx, dst, f, opts)
	}
	return store.AppendSeq(dst, a.QueryRelationships(ctx, f, opts))
}

// AppendReverseRelationships implements store.BatchReader.
func (a aliasReader) AppendReverseRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.ReverseFilter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if br, ok := a.Reader.(store.BatchReader); ok && a.renamed(f.ResourceType, f.Relation) == "" {
		return br.AppendReverseRelationships(ctx, dst, f, opts)
	}
	return store.AppendSeq(dst, a.ReverseQueryRelationships(ctx, f, opts))
}

// renameKey returns a copy of the cursor k under relation rel.
func renameKey(k *tuple.Key, rel string) *tuple.Key {
	if k == nil {
		return nil
	}
	c := *k
	c.Relation = rel
	return &c
}

// mergeRenamed reads both sequences (the evaluator collects every match
// of a query before it recurses, so nothing is lost by reading them
// whole), renames the old ones to rel, and yields the union in order,
// each key once, at most limit of them (0: all).
func mergeRenamed(cur, old iter.Seq2[tuple.Relationship, error], rel string, limit int, order func(a, b tuple.Relationship) int) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		var all []tuple.Relationship
		seen := map[tuple.Key]bool{}
		for r, err := range cur {
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			seen[r.Key()] = true
			all = append(all, r)
		}
		for r, err := range old {
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			r.Relation = rel
			if !seen[r.Key()] {
				all = append(all, r)
			}
		}
		slices.SortStableFunc(all, order)
		for i, r := range all {
			if limit > 0 && i >= limit {
				return
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

// forwardOrder is the order of QueryRelationships: resource type, id,
// relation, subject type, id, relation.
func forwardOrder(a, b tuple.Relationship) int {
	return cmp.Or(
		cmp.Compare(a.Resource.Type, b.Resource.Type),
		cmp.Compare(a.Resource.ID, b.Resource.ID),
		cmp.Compare(a.Relation, b.Relation),
		cmp.Compare(a.Subject.Type, b.Subject.Type),
		cmp.Compare(a.Subject.ID, b.Subject.ID),
		cmp.Compare(a.Subject.Relation, b.Subject.Relation),
	)
}

// reverseOrder is the order of ReverseQueryRelationships: subject type,
// id, relation, resource type, relation, id.
func reverseOrder(a, b tuple.Relationship) int {
	return cmp.Or(
		cmp.Compare(a.Subject.Type, b.Subject.Type),
		cmp.Compare(a.Subject.ID, b.Subject.ID),
		cmp.Compare(a.Subject.Relation, b.Subject.Relation),
		cmp.Compare(a.Resource.Type, b.Resource.Type),
		cmp.Compare(a.Relation, b.Relation),
		cmp.Compare(a.Resource.ID, b.Resource.ID),
	)
}

// evalReader is the reader the evaluator gets for v: v's snapshot, read
// through the schema's renames when it has any.
func (v *view) evalReader() store.Reader {
	if v.c != nil && v.c.renames {
		return aliasReader{Reader: v.reader, s: v.c.schema, stats: &v.c.aliasStats}
	}
	return v.reader
}

// renamedRelation returns the relation that r's relation was renamed to
// in s (@renamed_from), or nil when it was not.
func renamedRelation(s *schema.Schema, r tuple.Relationship) *schema.Relation {
	if d := s.Definitions[r.Resource.Type]; d != nil {
		return d.RenamedFrom[r.Relation]
	}
	return nil
}
