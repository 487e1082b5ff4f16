package eval

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Zanzibar's Leopard serves its closure from memory; the nested-group
// index (nested.go) keeps its rows in the store, where reading one pair
// costs a seek through the store's index and data blocks, the largest
// part of a check on nested groups. A ClosureIndex is the closure of one
// relation at one generation (the generation row, NestedGeneration, that
// every change of the rows replaces in the same transaction), loaded
// whole into memory: a check at any revision whose generation it is
// reads the pairs from it instead of the store, with the same answers,
// because the rows are the same at every such revision. The evaluator
// asks Options.Closures for it; the engine loads it in the background
// (engine/closuremem.go).

// ClosureIndex is the closure rows of one indexed relation at one
// generation, immutable once loaded: object IDs interned as dense
// integers in ID order, and the member sets (or ancestors) of object i
// with their distances in compressed rows, to[off[i]:off[i+1]] and
// dist[off[i]:off[i+1]], sorted.
type ClosureIndex struct {
	gen     uint64
	ids     []string
	idBytes int64 // the bytes of ids' strings
	index   map[string]uint32
	off     []uint32
	to      []uint32
	dist    []uint16
}

// ClosureSource gives the evaluator the in-memory closure of an indexed
// relation. Closure returns the closure of rel at generation gen, or nil
// when it does not hold that one; rev is a revision at which gen is the
// generation (so it may load from there). It must be safe for
// concurrent use and must not block.
type ClosureSource interface {
	Closure(rel *schema.Relation, gen uint64, rev store.Revision) *ClosureIndex
}

// Per-entry sizes of ClosureIndex.Bytes: a row's target and distance,
// and an object's string header, offset and map entry (about twice a
// key and a value: the map's slack) besides its bytes.
const (
	closureRowBytes    = 4 + 2
	closureObjectBytes = 16 + 4 + 2*(16+4)
)

// LoadClosureIndex reads the closure rows of rel (one of NestedRelations)
// that r holds into memory, as generation gen. fits is false, after
// reading about maxBytes/6 rows at most, when the index would take more
// than maxBytes (<= 0: no bound).
func LoadClosureIndex(ctx context.Context, r store.Reader, rel *schema.Relation, gen uint64, maxBytes int64) (c *ClosureIndex, fits bool, err error) {
	typ := rel.Definition.Name
	c = &ClosureIndex{gen: gen, index: map[string]uint32{}}
	intern := func(id string) uint32 {
		if i, ok := c.index[id]; ok {
			return i
		}
		// A copy: a store's decoded ID may share its bytes with the
		// whole row's key, which the index would then keep.
		id = strings.Clone(id)
		i := uint32(len(c.ids))
		c.index[id] = i
		c.ids = append(c.ids, id)
		c.idBytes += int64(len(id))
		return i
	}
	var from []uint32
	f := tuple.Filter{ResourceType: typ, Relation: NestedClosureRelation(rel.Name), Subject: &tuple.SubjectFilter{Type: typ}}
	for row, err := range r.QueryRelationships(ctx, f, store.QueryOptions{}) {
		if err != nil {
			return nil, false, fmt.Errorf("eval: closure of %s#%s: %w", typ, rel.Name, err)
		}
		d, ok := NestedDistance(&row)
		if !ok || d > 1<<16-1 {
			continue // not a closure row; a distance past any depth limit
		}
		from = append(from, intern(row.Resource.ID))
		c.to = append(c.to, intern(row.Subject.ID))
		c.dist = append(c.dist, uint16(d))
		if maxBytes > 0 && c.Bytes() > maxBytes {
			return nil, false, nil
		}
	}
	c.compress(from)
	return c, true, nil
}

// compress renumbers the objects in ID order and sorts the rows (from[i],
// c.to[i], c.dist[i]) into compressed rows.
func (c *ClosureIndex) compress(from []uint32) {
	order := make([]uint32, len(c.ids)) // new number -> old number
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int { return cmp.Compare(c.ids[a], c.ids[b]) })
	renum := make([]uint32, len(c.ids)) // old number -> new number
	ids := make([]string, len(c.ids))
	for n, o := range order {
		renum[o] = uint32(n)
		ids[n] = c.ids[o]
		c.index[ids[n]] = uint32(n)
	}
	c.ids = ids
	c.off = make([]uint32, len(ids)+1)
	for _, u := range from {
		c.off[renum[u]+1]++
	}
	for i := range ids {
		c.off[i+1] += c.off[i]
	}
	to := make([]uint32, len(c.to))
	dist := make([]uint16, len(c.dist))
	next := slices.Clone(c.off[:len(ids)])
	for i, u := range from {
		u = renum[u]
		to[next[u]], dist[next[u]] = renum[c.to[i]], c.dist[i]
		next[u]++
	}
	var seg []uint64 // one object's rows, reused
	for i := range ids {
		lo, hi := c.off[i], c.off[i+1]
		seg = seg[:0]
		for j := lo; j < hi; j++ {
			seg = append(seg, uint64(to[j])<<16|uint64(dist[j]))
		}
		slices.Sort(seg)
		for k, v := range seg {
			to[lo+uint32(k)], dist[lo+uint32(k)] = uint32(v>>16), uint16(v)
		}
	}
	c.to, c.dist = to, dist
}

// Gen returns the generation the index was loaded as.
func (c *ClosureIndex) Gen() uint64 { return c.gen }

// Rows returns the number of closure rows the index holds.
func (c *ClosureIndex) Rows() int { return len(c.to) }

// Bytes estimates the memory the index takes (while loading: so far).
func (c *ClosureIndex) Bytes() int64 {
	return int64(len(c.to))*closureRowBytes + int64(len(c.ids))*closureObjectBytes + c.idBytes
}

// Distance returns the distance of the row (from, to), or false when
// there is none.
func (c *ClosureIndex) Distance(from, to string) (int, bool) {
	u, ok := c.index[from]
	if !ok {
		return 0, false
	}
	v, ok := c.index[to]
	if !ok {
		return 0, false
	}
	seg := c.to[c.off[u]:c.off[u+1]]
	if i, ok := slices.BinarySearch(seg, v); ok {
		return int(c.dist[int(c.off[u])+i]), true
	}
	return 0, false
}

// Each calls fn with every row of object from: its target and distance,
// in target ID order.
func (c *ClosureIndex) Each(from string, fn func(to string, d int)) {
	u, ok := c.index[from]
	if !ok {
		return
	}
	for j := c.off[u]; j < c.off[u+1]; j++ {
		fn(c.ids[c.to[j]], int(c.dist[j]))
	}
}
