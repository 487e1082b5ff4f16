package cluster

import (
	"hash/fnv"
	"slices"
	"strconv"
)

// DefaultVirtualNodes is how many points each node has on the ring: with
// 3 nodes, 128 points keep every node's share within a few percent of a
// third.
const DefaultVirtualNodes = 128

// Ring assigns keys to nodes by consistent hashing: adding or removing a
// node moves only the keys it gains or loses, so the other nodes' caches
// stay warm. Every process that builds a ring from the same node list
// assigns every key the same way (the hash is fixed, not seeded).
type Ring struct {
	nodes  []string
	points []point // sorted by hash
}

type point struct {
	hash uint64
	node int // index into nodes
}

// NewRing builds a ring over nodes (duplicates are ignored) with vnodes
// points each (0: DefaultVirtualNodes).
func NewRing(nodes []string, vnodes int) *Ring {
	if vnodes <= 0 {
		vnodes = DefaultVirtualNodes
	}
	r := &Ring{}
	for _, n := range nodes {
		if !slices.Contains(r.nodes, n) {
			r.nodes = append(r.nodes, n)
		}
	}
	for i, n := range r.nodes {
		for v := range vnodes {
			r.points = append(r.points, point{hash: hashString(n + "#" + strconv.Itoa(v)), node: i})
		}
	}
	slices.SortFunc(r.points, func(a, b point) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return a.node - b.node
	})
	return r
}

// Nodes returns the distinct nodes of the ring, in the order given.
func (r *Ring) Nodes() []string { return slices.Clone(r.nodes) }

// Owner returns the node owning key: the first point at or after the
// key's hash, wrapping around. It returns "" for an empty ring.
func (r *Ring) Owner(key []byte) string {
	if len(r.points) == 0 {
		return ""
	}
	h := hashBytes(key)
	i, _ := slices.BinarySearchFunc(r.points, h, func(p point, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	if i == len(r.points) {
		i = 0
	}
	return r.nodes[r.points[i].node]
}

// hashBytes is FNV-1a followed by a finalizer that spreads nearby keys
// (FNV alone clusters keys that differ only in their last bytes).
func hashBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return mix(h.Sum64())
}

func hashString(s string) uint64 { return hashBytes([]byte(s)) }

// mix is a 64-bit avalanche step (xor-shift-multiply).
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// appendKey appends the ring key of a permission on an object.
func appendKey(b []byte, typ, id, rel string) []byte {
	b = append(b, typ...)
	b = append(b, ':')
	b = append(b, id...)
	b = append(b, '#')
	b = append(b, rel...)
	return b
}
