package memstore

import (
	"context"
	"iter"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// batchSize is how many relationships a query copies under the read lock
// before it releases the lock to yield them.
const batchSize = 128

// reader is a snapshot at one revision.
type reader struct {
	s   *Store
	rev store.Revision
}

func (r *reader) Revision() store.Revision { return r.rev }

func (r *reader) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return r.s.scan(ctx, r.rev, forwardPlan(f), opts)
}

func (r *reader) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return r.s.scan(ctx, r.rev, reversePlan(f), opts)
}

func (r *reader) ReadSchema(ctx context.Context) (string, store.Revision, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, err
	}
	s := r.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkReadable(r.rev); err != nil {
		return "", 0, err
	}
	for i := len(s.schemas) - 1; i >= 0; i-- {
		if v := s.schemas[i]; v.rev <= r.rev {
			return v.text, v.rev, nil
		}
	}
	return "", 0, nil
}

// plan says how to answer one query from one index: where to start, when to
// stop, and which relationships in between match.
type plan struct {
	forward bool
	start   fields                        // the smallest key that can match
	prefix  int                           // start[:prefix] is fixed by the filter
	match   func(tuple.Relationship) bool // the filter itself
}

// fixed is one filter field: its value, and whether the filter fixes it.
type fixed struct {
	value string
	ok    bool
}

func field(v string) fixed { return fixed{v, v != ""} }

// subjectRelation maps a SubjectFilter relation to an index field: "" is
// any, Ellipsis fixes the plain (empty) relation.
func subjectRelation(rel string) fixed {
	if rel == tuple.Ellipsis {
		return fixed{"", true}
	}
	return field(rel)
}

func newPlan(forward bool, fs [6]fixed, match func(tuple.Relationship) bool) plan {
	p := plan{forward: forward, match: match}
	for p.prefix < len(fs) && fs[p.prefix].ok {
		p.start[p.prefix] = fs[p.prefix].value
		p.prefix++
	}
	return p
}

func forwardPlan(f tuple.Filter) plan {
	fs := [6]fixed{field(f.ResourceType), field(f.ResourceID), field(f.Relation)}
	if f.Subject != nil {
		fs[3], fs[4], fs[5] = field(f.Subject.Type), field(f.Subject.ID), subjectRelation(f.Subject.Relation)
	}
	return newPlan(true, fs, f.Matches)
}

func reversePlan(f tuple.ReverseFilter) plan {
	fs := [6]fixed{
		field(f.Subject.Type), field(f.Subject.ID), subjectRelation(f.Subject.Relation),
		field(f.ResourceType), field(f.Relation),
	}
	return newPlan(false, fs, f.Matches)
}

// scan runs p at revision rev. It copies up to batchSize results under the
// read lock, releases it, yields them, and seeks again strictly after the
// last key it examined.
func (s *Store) scan(ctx context.Context, rev store.Revision, p plan, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		ix := &s.reverse
		if p.forward {
			ix = &s.forward
		}
		from, strict := p.start, false
		if opts.After != nil {
			if after := ix.order(*opts.After); compareFields(after, from) >= 0 {
				from, strict = after, true
			}
		}
		remaining := opts.Limit
		// One buffer serves every batch (yielded values are copies); it
		// starts small because most queries are point lookups.
		var buf []tuple.Relationship
		for {
			if err := ctx.Err(); err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			batch, last, done, err := s.scanBatch(buf[:0], ix, rev, p, from, strict, opts.Now, remaining)
			buf = batch
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			for _, r := range batch {
				if !yield(r, nil) {
					return
				}
			}
			if opts.Limit > 0 {
				remaining -= len(batch)
				if remaining == 0 {
					return
				}
			}
			if done {
				return
			}
			from, strict = last, true
		}
	}
}

// scanBatch appends to batch up to batchSize matching relationships (fewer
// when limit > 0 asks for fewer) starting at from. It returns the fields of the
// last key examined and whether the scan reached the end of the prefix.
func (s *Store) scanBatch(batch []tuple.Relationship, ix *index, rev store.Revision, p plan, from fields, strict bool, now time.Time, limit int) (_ []tuple.Relationship, last fields, done bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkReadable(rev); err != nil {
		return nil, last, true, err
	}
	want := batchSize
	if limit > 0 {
		want = min(want, limit)
	}
	hide := !now.IsZero()
	examined := 0
	for at := ix.search(from, strict); ; at = ix.next(at) {
		rec := ix.at(at)
		if rec == nil {
			return batch, last, true, nil
		}
		k := ix.order(rec.key)
		if !samePrefix(k, p.start, p.prefix) {
			return batch, last, true, nil
		}
		last = k
		examined++
		if rel, ok := rec.visible(rev); ok && p.match(rel) && !(hide && rel.ExpiredAt(now)) {
			batch = append(batch, copyRel(rel))
			if len(batch) == want {
				return batch, last, false, nil
			}
		}
		// Bound the time the lock is held when few keys match.
		if examined >= 16*batchSize {
			return batch, last, false, nil
		}
	}
}

func samePrefix(a, b fields, n int) bool {
	for i := range n {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var _ store.PointReader = (*reader)(nil)

// ReadRelationship reads the relationship with key k (store.PointReader).
func (r *reader) ReadRelationship(ctx context.Context, k tuple.Key, now time.Time) (tuple.Relationship, bool, error) {
	if err := ctx.Err(); err != nil {
		return tuple.Relationship{}, false, err
	}
	s := r.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkReadable(r.rev); err != nil {
		return tuple.Relationship{}, false, err
	}
	rec := s.records[k]
	if rec == nil {
		return tuple.Relationship{}, false, nil
	}
	rel, ok := rec.visible(r.rev)
	if !ok || !now.IsZero() && rel.ExpiredAt(now) {
		return tuple.Relationship{}, false, nil
	}
	return copyRel(rel), true, nil
}

var _ store.BatchReader = (*reader)(nil)

// AppendRelationships appends the answer of QueryRelationships to dst
// (store.BatchReader).
func (r *reader) AppendRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	return store.AppendSeq(dst, r.QueryRelationships(ctx, f, opts))
}

// AppendReverseRelationships appends the answer of
// ReverseQueryRelationships to dst (store.BatchReader).
func (r *reader) AppendReverseRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.ReverseFilter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	return store.AppendSeq(dst, r.ReverseQueryRelationships(ctx, f, opts))
}
