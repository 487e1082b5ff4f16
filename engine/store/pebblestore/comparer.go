package pebblestore

import (
	"bytes"

	"github.com/cockroachdb/pebble/v2"
)

// comparerName is recorded by Pebble in the data directory; a directory
// written with another comparer (format 2 and older: Pebble's default
// bytewise comparer) cannot be opened with this one, see upgrade.go.
const comparerName = "pemba.tuplekey.v1"

// comparer orders keys bytewise, like Pebble's default comparer, and adds a
// Split that tells Pebble where the MVCC suffix of an index key begins: a
// forward or reverse index version key splits into its tuple key (the
// prefix) and its complemented revision (the suffix). Pebble then builds
// its bloom filters over tuple keys, so a point read of one tuple at any
// revision (SeekPrefixGE on tupleKey + ^rev) skips every sstable that does
// not hold that tuple without reading its index or data blocks.
//
// Every other key (metadata, schema, changelog, expiry index, and the
// partial prefixes queries seek to) is all prefix, with no suffix. The
// bytewise order of such a split key equals the order "prefix, then
// suffix" that Pebble's block seekers use, because no tuple key is a
// prefix of another (keys.go) and the seek keys this package builds never
// extend a tuple key by fewer than revLen bytes. Separator and Successor
// therefore never shorten a key: a shortened key could cut into a suffix
// and break that equality.
var comparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Name = comparerName
	c.Compare = bytes.Compare
	c.Equal = bytes.Equal
	c.Split = splitKey
	c.ComparePointSuffixes = bytes.Compare
	c.CompareRangeSuffixes = bytes.Compare
	c.Separator = func(dst, a, _ []byte) []byte { return append(dst, a...) }
	c.Successor = func(dst, a []byte) []byte { return append(dst, a...) }
	c.ImmediateSuccessor = immediateSuccessor
	// The default AbbreviatedKey (the first 8 bytes, big-endian) agrees
	// with bytes.Compare, so it is kept.
	return &c
}()

// splitKey returns the length of key's prefix: len(key)-revLen for an
// index version key (a tag 'f', 'r' or the reserved 'n', six
// 0x00-terminated components, then a revision), len(key) for any other
// key.
func splitKey(key []byte) int {
	n := len(key) - revLen
	if n < 1+6 || (key[0] != tagForward && key[0] != tagReverse && key[0] != tagNested) || key[n-1] != 0 {
		return len(key)
	}
	if bytes.Count(key[1:n], []byte{0}) != 6 {
		return len(key)
	}
	return n
}

// immediateSuccessor appends the smallest prefix greater than the prefix
// a. For a tuple key that is the key with its last terminator raised to
// 0x01, which sorts after every version of the tuple; for other keys, a
// followed by 0x00.
func immediateSuccessor(dst, a []byte) []byte {
	if splitKey(append(a[:len(a):len(a)], make([]byte, revLen)...)) == len(a) {
		dst = append(dst, a...)
		dst[len(dst)-1]++ // a ends in its 0x00 terminator
		return dst
	}
	return append(append(dst, a...), 0)
}
