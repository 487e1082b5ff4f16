package store

import (
	"context"
	"iter"
	"time"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// ReadByQuery is a point read through q's QueryRelationships, for readers
// without the PointReader power: the relationship with key k that q sees,
// hiding those expired at now unless now is zero.
func ReadByQuery(ctx context.Context, q interface {
	QueryRelationships(ctx context.Context, f tuple.Filter, opts QueryOptions) iter.Seq2[tuple.Relationship, error]
}, k tuple.Key, now time.Time) (tuple.Relationship, bool, error) {
	f := tuple.Filter{
		ResourceType: k.Resource.Type, ResourceID: k.Resource.ID, Relation: k.Relation,
		Subject: &tuple.SubjectFilter{Type: k.Subject.Type, ID: k.Subject.ID, Relation: k.Subject.Relation},
	}
	if k.Subject.Relation == "" {
		f.Subject.Relation = tuple.Ellipsis
	}
	for r, err := range q.QueryRelationships(ctx, f, QueryOptions{Now: now, Limit: 1}) {
		return r, err == nil, err
	}
	return tuple.Relationship{}, false, nil
}

// AppendSeq appends what seq yields to dst, up to its first error: a
// query's answer in the form of the BatchReader power. Not inlined: the
// range over seq would move its callers' variables to the heap on their
// batch path too (the evaluator's reads).
//
//go:noinline
func AppendSeq(dst []tuple.Relationship, seq iter.Seq2[tuple.Relationship, error]) ([]tuple.Relationship, error) {
	for r, err := range seq {
		if err != nil {
			return dst, err
		}
		dst = append(dst, r)
	}
	return dst, nil
}
