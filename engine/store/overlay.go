package store

import (
	"cmp"
	"context"
	"iter"
	"slices"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// Overlay returns a reader that answers as r would if rels had been
// touched in a transaction on top of r's revision that was never
// committed: a relationship of rels replaces a stored one with the same
// key (its caveat and expiration win, and an expired one hides the stored
// one too), and every other one is added. Queries merge both in index
// order and honour filters, After and Limit, and QueryOptions.Now hides
// expired ones, as every backend does. rels must not hold two
// relationships with the same key (the engine refuses such a request);
// Overlay copies the slice, not the relationships' caveat contexts, which
// must not change while the reader is in use.
//
// This is how contextual relationships, which hold for one request only,
// are read: the evaluator sees one Reader and never learns which
// relationships are stored.
func Overlay(r Reader, rels []tuple.Relationship) Reader {
	if len(rels) == 0 {
		return r
	}
	o := &overlay{Reader: r, fwd: slices.Clone(rels), rev: slices.Clone(rels)}
	slices.SortFunc(o.fwd, func(a, b tuple.Relationship) int { return compareForward(a.Key(), b.Key()) })
	slices.SortFunc(o.rev, func(a, b tuple.Relationship) int { return compareReverse(a.Key(), b.Key()) })
	return o
}

// overlay is a Reader with relationships added on top (see Overlay).
type overlay struct {
	Reader                      // the snapshot underneath; Revision and ReadSchema are its own
	fwd    []tuple.Relationship // sorted in forward index order
	rev    []tuple.Relationship // sorted in reverse index order
}

// compareForward orders keys as the forward index does: resource type,
// resource id, relation, subject type, subject id, subject relation.
func compareForward(a, b tuple.Key) int {
	return cmp.Or(
		cmp.Compare(a.Resource.Type, b.Resource.Type), cmp.Compare(a.Resource.ID, b.Resource.ID),
		cmp.Compare(a.Relation, b.Relation),
		cmp.Compare(a.Subject.Type, b.Subject.Type), cmp.Compare(a.Subject.ID, b.Subject.ID),
		cmp.Compare(a.Subject.Relation, b.Subject.Relation))
}

// compareReverse orders keys as the reverse index does: subject type,
// subject id, subject relation, resource type, relation, resource id.
func compareReverse(a, b tuple.Key) int {
	return cmp.Or(
		cmp.Compare(a.Subject.Type, b.Subject.Type), cmp.Compare(a.Subject.ID, b.Subject.ID),
		cmp.Compare(a.Subject.Relation, b.Subject.Relation),
		cmp.Compare(a.Resource.Type, b.Resource.Type), cmp.Compare(a.Relation, b.Relation),
		cmp.Compare(a.Resource.ID, b.Resource.ID))
}

func (o *overlay) QueryRelationships(ctx context.Context, f tuple.Filter, opts QueryOptions) iter.Seq2[tuple.Relationship, error] {
	added := o.matching(o.fwd, f.Matches, compareForward, opts)
	return merge(o.Reader.QueryRelationships, ctx, f, opts, added, compareForward)
}

func (o *overlay) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts QueryOptions) iter.Seq2[tuple.Relationship, error] {
	added := o.matching(o.rev, f.Matches, compareReverse, opts)
	return merge(o.Reader.ReverseQueryRelationships, ctx, f, opts, added, compareReverse)
}

// matching returns the overlay's relationships that match and lie after
// opts.After, in index order, expired ones included: they still replace
// the stored relationship with their key.
func (o *overlay) matching(sorted []tuple.Relationship, match func(tuple.Relationship) bool, order func(a, b tuple.Key) int, opts QueryOptions) []tuple.Relationship {
	var out []tuple.Relationship
	for _, r := range sorted {
		if opts.After != nil && order(r.Key(), *opts.After) <= 0 {
			continue
		}
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// merge yields the union of the stored relationships query returns and
// added (sorted by order, after opts.After, matching the filter), in index
// order: an added relationship replaces a stored one with the same key,
// and Limit counts the merged output.
func merge[F any](query func(context.Context, F, QueryOptions) iter.Seq2[tuple.Relationship, error], ctx context.Context, f F, opts QueryOptions, added []tuple.Relationship, order func(a, b tuple.Key) int) iter.Seq2[tuple.Relationship, error] {
	if len(added) == 0 {
		return query(ctx, f, opts)
	}
	return func(yield func(tuple.Relationship, error) bool) {
		emitted := 0
		// emit yields r unless it has expired; false stops the merge.
		emit := func(r tuple.Relationship) bool {
			if !opts.Now.IsZero() && r.ExpiredAt(opts.Now) {
				return true
			}
			emitted++
			return yield(r, nil) && (opts.Limit == 0 || emitted < opts.Limit)
		}
		stored := opts
		// A replaced stored relationship is read but not yielded: read
		// that many more, so the limit still fills.
		if opts.Limit > 0 {
			stored.Limit = opts.Limit + len(added)
		}
		i := 0
		for r, err := range query(ctx, f, stored) {
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			k := r.Key()
			for i < len(added) && order(added[i].Key(), k) < 0 {
				if !emit(added[i]) {
					return
				}
				i++
			}
			if i < len(added) && order(added[i].Key(), k) == 0 {
				r = added[i] // replaced
				i++
			}
			if !emit(r) {
				return
			}
		}
		for ; i < len(added); i++ {
			if !emit(added[i]) {
				return
			}
		}
	}
}
