package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// reader is a snapshot at one revision. It holds no Pebble resources: each
// query takes an iterator (a consistent view of the LSM) from the pool for
// its whole run.
type reader struct {
	s   *Store
	rev store.Revision
}

func (r *reader) Revision() store.Revision { return r.rev }

// Statistics returns the store's counts (store.StatsReader).
func (r *reader) Statistics() *store.Statistics { return r.s.stats.Statistics() }

func (r *reader) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	var after []byte
	if opts.After != nil {
		after = forwardTupleKey(nil, *opts.After)
	}
	prefix, exact := forwardPrefix(f)
	match := f.Matches
	if exact {
		match = nil // every key under the prefix matches
	}
	return r.s.scan(ctx, r.rev, prefix, after, match, opts)
}

func (r *reader) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	var after []byte
	if opts.After != nil {
		after = reverseTupleKey(nil, *opts.After)
	}
	prefix, exact := reversePrefix(f)
	match := f.Matches
	if exact {
		match = nil
	}
	return r.s.scan(ctx, r.rev, prefix, after, match, opts)
}

func (r *reader) ReadSchema(ctx context.Context) (string, store.Revision, error) {
	if err := r.s.acquire(); err != nil {
		return "", 0, err
	}
	defer r.s.release()
	pi, err := r.s.iter(r.rev, []byte{tagSchema}, []byte{tagSchema + 1})
	if err != nil {
		return "", 0, err
	}
	defer r.s.putIter(pi)
	it := pi.it
	if !it.SeekGE(schemaKey(r.rev)) {
		return "", 0, it.Error()
	}
	key := it.Key()
	if len(key) != 1+revLen {
		return "", 0, corruptKey(key, "not a schema key")
	}
	val, err := it.ValueAndErr()
	if err != nil {
		return "", 0, fmt.Errorf("pebblestore: read schema: %w", err)
	}
	return string(val), store.Revision(^binary.BigEndian.Uint64(key[1:])), nil
}

// newIter returns an iterator over [lower, upper) that sees every version
// a reader at rev needs. It checks the GC horizon after taking the
// iterator: GC publishes a new horizon before it deletes anything, so if
// rev is still at or above the horizon now, the iterator's view predates
// every deletion that could affect rev.
func (s *Store) newIter(rev store.Revision, lower, upper []byte) (*pebble.Iterator, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: %w", err)
	}
	if hz := store.Revision(s.horizon.Load()); rev < hz {
		it.Close()
		return nil, &store.CompactedError{Requested: rev, Horizon: hz}
	}
	return it, nil
}

// maxNexts is how many times a scan steps over versions it does not need
// with Next before it seeks instead: Next is cheaper while there are few
// versions (the common case after GC), a seek bounds the cost when a tuple
// was rewritten many times inside the GC window.
const maxNexts = 3

// scan yields the relationships visible at rev under prefix, in key order,
// starting strictly after the tuple key after (if any), that match (every
// one when match is nil) and have not expired at opts.Now.
func (s *Store) scan(ctx context.Context, rev store.Revision, prefix, after []byte, match func(tuple.Relationship) bool, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		home := s.readerShard()
		if err := s.acquireReader(home); err != nil {
			yield(tuple.Relationship{}, err)
			return
		}
		defer s.releaseReader(home)
		if err := s.scanLocked(ctx, home, rev, prefix, after, match, opts, yield); err != nil {
			yield(tuple.Relationship{}, err)
		}
	}
}

func (s *Store) scanLocked(ctx context.Context, home int, rev store.Revision, prefix, after []byte, match func(tuple.Relationship) bool, opts store.QueryOptions, yield func(tuple.Relationship, error) bool) error {
	// A prefix of all six components names one tuple (the Check hot
	// path): seek straight to its newest version at or below rev, and stop
	// after it.
	point := bytes.Count(prefix, []byte{0}) == 6
	start := prefix
	if point {
		// Appends into prefix's spare capacity: prefix itself is unchanged.
		start = appendRev(prefix, rev)
	}
	if after != nil {
		// prefixEnd of a tuple key is past all of its versions.
		if a := prefixEnd(after); bytes.Compare(a, start) > 0 {
			start = a
		}
	}
	// Prefix mode: Pebble consults the bloom filters over tuple keys
	// (comparer.go), skips the sstables without this tuple, and stays
	// within it without bounds.
	prefixMode := point && len(start) == len(prefix)+revLen
	lower, upper := prefix, upperBound(prefix)
	if prefixMode {
		lower, upper = nil, nil
	}
	pi, err := s.iterAt(home, rev, lower, upper)
	if err != nil {
		return err
	}
	defer s.putIter(pi)
	it := pi.it
	var (
		// done is the tuple key whose visible version was handled, when
		// hasDone; on the stack unless a key is longer than doneBuf.
		doneBuf [128]byte
		done    = doneBuf[:0]
		hasDone bool
		steps   int // Next calls spent skipping versions
		n       int // relationships yielded
		seen    int
	)
	var ok bool
	if prefixMode {
		ok = it.SeekPrefixGE(start)
	} else {
		ok = it.SeekGE(start)
	}
	for ok {
		if seen++; seen%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		key := it.Key()
		if len(key) < 1+revLen {
			return corruptKey(key, "too short")
		}
		tk := key[:len(key)-revLen]
		if hasDone && bytes.Equal(tk, done) {
			// An older version of a tuple already decided.
			if steps++; steps > maxNexts {
				ok, steps = it.SeekGE(prefixEnd(done)), 0
			} else {
				ok = it.Next()
			}
			continue
		}
		if krev := store.Revision(^binary.BigEndian.Uint64(key[len(key)-revLen:])); krev > rev {
			// Newer than the snapshot.
			if steps++; steps > maxNexts {
				ok, steps = it.SeekGE(appendRev(bytes.Clone(tk), rev)), 0
			} else {
				ok = it.Next()
			}
			continue
		}
		done, steps, hasDone = append(done[:0], tk...), 0, true
		val, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: read value: %w", err)
		}
		v, err := decodeValue(val)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, key)
		}
		if point {
			// Later keys are older versions of the same tuple.
			ok = false
		}
		if v.tombstone || !opts.Now.IsZero() && !v.expiration.IsZero() && !opts.Now.Before(v.expiration) {
			ok = ok && it.Next()
			continue
		}
		k, err := decodeTupleKey(tk)
		if err != nil {
			return err
		}
		rel := v.relationship(k)
		if match != nil && !match(rel) {
			ok = ok && it.Next()
			continue
		}
		if !yield(rel, nil) {
			return nil
		}
		if n++; opts.Limit > 0 && n >= opts.Limit {
			return nil
		}
		ok = ok && it.Next()
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: scan: %w", err)
	}
	return nil
}

// readChangeHeader reads the header of the change set of rev.
func (s *Store) readChangeHeader(rev store.Revision) (changeHeader, error) {
	v, closer, err := s.db.Get(changelogKey(rev, 0))
	if err != nil {
		return changeHeader{}, fmt.Errorf("pebblestore: read changelog of revision %d: %w", rev, err)
	}
	defer closer.Close()
	h, err := decodeChangeHeader(v)
	if err != nil {
		return changeHeader{}, fmt.Errorf("revision %d: %w", rev, err)
	}
	return h, nil
}

var _ store.PointReader = (*reader)(nil)

// ReadRelationship reads the relationship with key k (store.PointReader):
// one SeekPrefixGE to the newest version of k's tuple key at or below the
// reader's revision, as scanLocked's point reads, but with the key built
// in the pooled iterator's buffer and never decoded (k already holds its
// strings).
func (r *reader) ReadRelationship(ctx context.Context, k tuple.Key, now time.Time) (tuple.Relationship, bool, error) {
	if err := ctx.Err(); err != nil {
		return tuple.Relationship{}, false, err
	}
	s := r.s
	home := s.readerShard()
	if err := s.acquireReader(home); err != nil {
		return tuple.Relationship{}, false, err
	}
	defer s.releaseReader(home)
	pi, err := s.iterAt(home, r.rev, nil, nil)
	if err != nil {
		return tuple.Relationship{}, false, err
	}
	defer s.putIter(pi)
	seek := appendRev(forwardTupleKey(pi.key[:0], k), r.rev)
	pi.key = seek
	tk := seek[:len(seek)-revLen]
	it := pi.it
	if !it.SeekPrefixGE(seek) {
		if err := it.Error(); err != nil {
			return tuple.Relationship{}, false, fmt.Errorf("pebblestore: read: %w", err)
		}
		return tuple.Relationship{}, false, nil
	}
	key := it.Key()
	if len(key) != len(seek) || !bytes.Equal(key[:len(tk)], tk) {
		return tuple.Relationship{}, false, nil
	}
	val, err := it.ValueAndErr()
	if err != nil {
		return tuple.Relationship{}, false, fmt.Errorf("pebblestore: read value: %w", err)
	}
	v, err := decodeValue(val)
	if err != nil {
		return tuple.Relationship{}, false, fmt.Errorf("%w (key %q)", err, key)
	}
	if v.tombstone || !now.IsZero() && !v.expiration.IsZero() && !now.Before(v.expiration) {
		return tuple.Relationship{}, false, nil
	}
	return v.relationship(k), true, nil
}

var _ store.BatchReader = (*reader)(nil)

// AppendRelationships appends the answer of QueryRelationships to dst
// (store.BatchReader), calling scanLocked directly so that neither the
// filter's match nor the append escapes to the heap.
func (r *reader) AppendRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	var after []byte
	if opts.After != nil {
		after = forwardTupleKey(nil, *opts.After)
	}
	buf := r.s.takeKeyBuf()
	defer r.s.putKeyBuf(buf)
	prefix, exact := forwardPrefixInto(buf.b, f)
	buf.b = prefix
	if exact {
		return r.appendScan(ctx, dst, prefix, after, nil, opts)
	}
	fc := f // only a filter that decides escapes, into the closure
	return r.appendScan(ctx, dst, prefix, after, fc.Matches, opts)
}

// AppendReverseRelationships appends the answer of
// ReverseQueryRelationships to dst (store.BatchReader).
func (r *reader) AppendReverseRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.ReverseFilter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	var after []byte
	if opts.After != nil {
		after = reverseTupleKey(nil, *opts.After)
	}
	buf := r.s.takeKeyBuf()
	defer r.s.putKeyBuf(buf)
	prefix, exact := reversePrefixInto(buf.b, f)
	buf.b = prefix
	if exact {
		return r.appendScan(ctx, dst, prefix, after, nil, opts)
	}
	fc := f
	return r.appendScan(ctx, dst, prefix, after, fc.Matches, opts)
}

// keyBuf is a reusable buffer for the keys of a batch query: Pebble
// copies its bounds and seek keys, so the buffer is free again once the
// query returns.
type keyBuf struct{ b []byte }

// maxKeyBuf bounds the buffers kept for reuse.
const maxKeyBuf = 4 << 10

func (s *Store) takeKeyBuf() *keyBuf {
	if b, ok := s.keyBufs.Get().(*keyBuf); ok {
		return b
	}
	return &keyBuf{b: make([]byte, 0, 256)}
}

func (s *Store) putKeyBuf(b *keyBuf) {
	if cap(b.b) <= maxKeyBuf {
		s.keyBufs.Put(b)
	}
}

func (r *reader) appendScan(ctx context.Context, dst []tuple.Relationship, prefix, after []byte, match func(tuple.Relationship) bool, opts store.QueryOptions) ([]tuple.Relationship, error) {
	home := r.s.readerShard()
	if err := r.s.acquireReader(home); err != nil {
		return dst, err
	}
	defer r.s.releaseReader(home)
	err := r.s.scanLocked(ctx, home, r.rev, prefix, after, match, opts, func(rel tuple.Relationship, _ error) bool {
		dst = append(dst, rel)
		return true
	})
	return dst, err
}
