package memstore

import (
	"slices"
	"sort"
	"strings"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// chunkSize is the target length of one index chunk. Chunks grow to twice
// this before they split, so an insert moves at most a few hundred pointers
// plus the (short) list of chunks, however large the index.
const chunkSize = 256

// fields lists a key's six components in the order an index sorts them.
type fields [6]string

// forwardFields orders by resource type, resource id, relation, subject
// type, subject id, subject relation.
func forwardFields(k tuple.Key) fields {
	return fields{k.Resource.Type, k.Resource.ID, k.Relation, k.Subject.Type, k.Subject.ID, k.Subject.Relation}
}

// reverseFields orders by subject type, subject id, subject relation,
// resource type, relation, resource id.
func reverseFields(k tuple.Key) fields {
	return fields{k.Subject.Type, k.Subject.ID, k.Subject.Relation, k.Resource.Type, k.Relation, k.Resource.ID}
}

func compareFields(a, b fields) int {
	for i := range a {
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// index keeps every record sorted by one field order, as a list of sorted
// chunks: a two-level structure that is simple to check and cheap to insert
// into. Records leave the index only when GC rebuilds it.
type index struct {
	order  func(tuple.Key) fields
	chunks [][]*record
}

// pos is a position in an index: chunk number and offset in the chunk.
type pos struct{ c, i int }

func (ix *index) cmp(r *record, k fields) int { return compareFields(ix.order(r.key), k) }

// search returns the position of the first record whose key is >= k, or
// > k when strict. The position is past the end when there is none.
func (ix *index) search(k fields, strict bool) pos {
	after := func(r *record) bool {
		c := ix.cmp(r, k)
		return c > 0 || c == 0 && !strict
	}
	c := sort.Search(len(ix.chunks), func(i int) bool {
		ch := ix.chunks[i]
		return after(ch[len(ch)-1])
	})
	if c == len(ix.chunks) {
		return pos{c, 0}
	}
	ch := ix.chunks[c]
	return pos{c, sort.Search(len(ch), func(i int) bool { return after(ch[i]) })}
}

// at returns the record at p, or nil past the end.
func (ix *index) at(p pos) *record {
	if p.c >= len(ix.chunks) {
		return nil
	}
	return ix.chunks[p.c][p.i]
}

// next returns the position after p.
func (ix *index) next(p pos) pos {
	p.i++
	if p.i == len(ix.chunks[p.c]) {
		return pos{p.c + 1, 0}
	}
	return p
}

// insert adds r, whose key must not be in the index yet.
func (ix *index) insert(r *record) {
	if len(ix.chunks) == 0 {
		ix.chunks = [][]*record{{r}}
		return
	}
	p := ix.search(ix.order(r.key), false)
	if p.c == len(ix.chunks) {
		p = pos{len(ix.chunks) - 1, len(ix.chunks[len(ix.chunks)-1])}
	}
	ch := slices.Insert(ix.chunks[p.c], p.i, r)
	if len(ch) < 2*chunkSize {
		ix.chunks[p.c] = ch
		return
	}
	// Split in two; the left half is capped so that a later insert into
	// it reallocates instead of overwriting the right half.
	left := ch[:chunkSize:chunkSize]
	right := slices.Clone(ch[chunkSize:])
	ix.chunks[p.c] = left
	ix.chunks = slices.Insert(ix.chunks, p.c+1, right)
}

// insertAll adds records whose keys are not in the index yet. A batch
// that is large next to the index (a bulk import, a big transaction) is
// sorted and merged in one pass, O(n + k log k); a small one is inserted
// key by key, which does not touch the rest of the index.
func (ix *index) insertAll(recs []*record) {
	if len(recs) < 64 || len(recs)*64 < ix.len() {
		for _, r := range recs {
			ix.insert(r)
		}
		return
	}
	type entry struct {
		f fields
		r *record
	}
	add := make([]entry, len(recs))
	for i, r := range recs {
		add[i] = entry{ix.order(r.key), r}
	}
	slices.SortFunc(add, func(a, b entry) int { return compareFields(a.f, b.f) })
	merged := make([]*record, 0, ix.len()+len(add))
	j := 0
	for _, ch := range ix.chunks {
		for _, r := range ch {
			f := ix.order(r.key)
			for ; j < len(add) && compareFields(add[j].f, f) < 0; j++ {
				merged = append(merged, add[j].r)
			}
			merged = append(merged, r)
		}
	}
	for ; j < len(add); j++ {
		merged = append(merged, add[j].r)
	}
	ix.set(merged)
}

// rebuild keeps only the records for which keep is true.
func (ix *index) rebuild(keep func(*record) bool) {
	var all []*record
	for _, ch := range ix.chunks {
		for _, r := range ch {
			if keep(r) {
				all = append(all, r)
			}
		}
	}
	ix.set(all)
}

// set replaces the index with sorted, full chunks of all.
func (ix *index) set(all []*record) {
	ix.chunks = make([][]*record, 0, (len(all)+chunkSize-1)/chunkSize)
	for len(all) > 0 {
		n := min(chunkSize, len(all))
		ix.chunks = append(ix.chunks, all[:n:n])
		all = all[n:]
	}
}

// len returns the number of records in the index.
func (ix *index) len() int {
	n := 0
	for _, ch := range ix.chunks {
		n += len(ch)
	}
	return n
}
