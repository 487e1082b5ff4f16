package pebblestore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Key layout, format version 4. Every key starts with a one-byte keyspace
// tag, so each keyspace is one contiguous, prefix-iterable range:
//
//	'f' resType 0 resID 0 relation 0 subjType 0 subjID 0 subjRel 0 ^rev   forward index
//	'r' subjType 0 subjID 0 subjRel 0 resType 0 relation 0 resID 0 ^rev   reverse index
//	'x' sec nsec <forward index key>                                     expiry index (format 2)
//	's' ^rev                                                             schema text
//	'c' rev seq                                                          changelog chunk
//	'm' name                                                             metadata
//	'a' rev seq                                                          audit entry chunk (format 4, audit.go)
//
// rev is a big-endian uint64; ^rev is its bitwise complement, so the newest
// version of a tuple sorts first. seq is a big-endian uint32 chunk number.
// The expiry index has one empty-valued entry per live version that
// expires, ordered by expiration (sec: big-endian Unix seconds with the
// sign bit flipped, so that byte order is time order; nsec: big-endian
// uint32 nanoseconds), then by the version's forward index key; GC walks
// it up to its cutoff to find expired relationships.
// subjRel is empty for a plain subject (tuple.Ellipsis). Names and IDs never
// contain 0x00 (package tuple forbids it), so the terminators make byte
// order equal the component-wise order of the tuples, and the "tuple key"
// (everything before ^rev) of one relationship is never a prefix of
// another's.
const (
	tagForward   byte = 'f'
	tagReverse   byte = 'r'
	tagSchema    byte = 's'
	tagChangelog byte = 'c'
	tagMeta      byte = 'm'
	tagExpiry    byte = 'x'
	tagAudit     byte = 'a'
	// tagNested is reserved for a nested-group (transitive membership)
	// index whose keys have the shape of the forward index (six
	// 0x00-terminated components, then ^rev): the format 3 comparer
	// already splits such keys before ^rev (comparer.go), so adding the
	// index needs no new comparer and no copy of the data directory.
	tagNested byte = 'n'
)

// revLen is the length of a version suffix.
const revLen = 8

// Meta keys.
var (
	keyFormat   = []byte("mformat")   // uvarint format version
	keyStoreID  = []byte("mid")       // store ID text
	keyHead     = []byte("mhead")     // 8-byte head revision
	keyHorizon  = []byte("mhorizon")  // 8-byte GC horizon: oldest readable revision
	keyGCDone   = []byte("mgcdone")   // 8-byte horizon up to which GC finished deleting
	keyReserved = []byte("mreserved") // 8-byte revision of an import in progress
	keyStats    = []byte("mstats")    // the last count of store.Statistics (store.EncodeStatistics)
)

// appendComponent appends s and its 0x00 terminator.
func appendComponent(b []byte, s string) []byte {
	b = append(b, s...)
	return append(b, 0)
}

// appendRev appends the inverted big-endian revision suffix.
func appendRev(b []byte, rev store.Revision) []byte {
	return binary.BigEndian.AppendUint64(b, ^uint64(rev))
}

// forwardTupleKey appends the forward-index tuple key of k (no revision).
func forwardTupleKey(b []byte, k tuple.Key) []byte {
	b = append(b, tagForward)
	b = appendComponent(b, k.Resource.Type)
	b = appendComponent(b, k.Resource.ID)
	b = appendComponent(b, k.Relation)
	b = appendComponent(b, k.Subject.Type)
	b = appendComponent(b, k.Subject.ID)
	return appendComponent(b, k.Subject.Relation)
}

// reverseTupleKey appends the reverse-index tuple key of k (no revision).
func reverseTupleKey(b []byte, k tuple.Key) []byte {
	b = append(b, tagReverse)
	b = appendComponent(b, k.Subject.Type)
	b = appendComponent(b, k.Subject.ID)
	b = appendComponent(b, k.Subject.Relation)
	b = appendComponent(b, k.Resource.Type)
	b = appendComponent(b, k.Relation)
	return appendComponent(b, k.Resource.ID)
}

// splitComponents splits a tuple key body (after the tag) into its six
// 0x00-terminated components.
func splitComponents(body string) (c [6]string, ok bool) {
	for i := range c {
		j := strings.IndexByte(body, 0)
		if j < 0 {
			return c, false
		}
		c[i], body = body[:j], body[j+1:]
	}
	return c, len(body) == 0
}

// decodeVersionKey splits an index key into its tuple key and revision and
// decodes the tuple key. It fails with store.ErrCorrupt on any malformed key.
func decodeVersionKey(key []byte) (tuple.Key, store.Revision, error) {
	if len(key) < 1+revLen {
		return tuple.Key{}, 0, corruptKey(key, "too short")
	}
	tk := key[:len(key)-revLen]
	rev := store.Revision(^binary.BigEndian.Uint64(key[len(key)-revLen:]))
	k, err := decodeTupleKey(tk)
	return k, rev, err
}

// decodeTupleKey decodes a forward or reverse tuple key.
func decodeTupleKey(tk []byte) (tuple.Key, error) {
	if len(tk) == 0 {
		return tuple.Key{}, corruptKey(tk, "empty")
	}
	// One allocation: the components are substrings of one string.
	body := string(tk[1:])
	c, ok := splitComponents(body)
	if !ok {
		return tuple.Key{}, corruptKey(tk, "want six 0x00-terminated components")
	}
	var k tuple.Key
	switch tk[0] {
	case tagForward:
		k = tuple.Key{
			Resource: tuple.ObjectRef{Type: c[0], ID: c[1]},
			Relation: c[2],
			Subject:  tuple.SubjectRef{Type: c[3], ID: c[4], Relation: c[5]},
		}
	case tagReverse:
		k = tuple.Key{
			Subject:  tuple.SubjectRef{Type: c[0], ID: c[1], Relation: c[2]},
			Resource: tuple.ObjectRef{Type: c[3], ID: c[5]},
			Relation: c[4],
		}
	default:
		return tuple.Key{}, corruptKey(tk, "not an index key")
	}
	if k.Resource.Type == "" || k.Resource.ID == "" || k.Relation == "" || k.Subject.Type == "" || k.Subject.ID == "" {
		return tuple.Key{}, corruptKey(tk, "empty component")
	}
	return k, nil
}

func corruptKey(key []byte, why string) error {
	const max = 64
	if len(key) > max {
		key = key[:max]
	}
	return fmt.Errorf("pebblestore: key %q: %s: %w", key, why, store.ErrCorrupt)
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// forwardPrefix returns the longest key prefix that every forward-index key
// matching f shares. Components after the first unset one are checked by
// f.Matches instead; exact reports that there are none, so that every key
// under the prefix matches. The result has spare capacity for a revision
// suffix and for its prefixEnd (see upperBound).
func forwardPrefix(f tuple.Filter) (prefix []byte, exact bool) {
	return forwardPrefixInto(nil, f)
}

// forwardPrefixInto is forwardPrefix built in dst's storage when it has
// room (see prefixInto), else in a new slice.
func forwardPrefixInto(dst []byte, f tuple.Filter) (prefix []byte, exact bool) {
	var parts [6]string
	parts[0], parts[1], parts[2] = f.ResourceType, f.ResourceID, f.Relation
	n := 3
	if f.Subject != nil {
		parts[3], parts[4] = f.Subject.Type, f.Subject.ID
		n = 5
		switch f.Subject.Relation {
		case "":
		case tuple.Ellipsis:
			n = 6 // parts[5] == "": a plain subject
		default:
			parts[5] = f.Subject.Relation
			n = 6
		}
	}
	return prefixInto(dst, tagForward, parts[:n])
}

// reversePrefix is forwardPrefix for the reverse index.
func reversePrefix(f tuple.ReverseFilter) (prefix []byte, exact bool) {
	return reversePrefixInto(nil, f)
}

// reversePrefixInto is reversePrefix built in dst's storage, as
// forwardPrefixInto.
func reversePrefixInto(dst []byte, f tuple.ReverseFilter) (prefix []byte, exact bool) {
	parts := [5]string{f.Subject.Type, f.Subject.ID}
	n := 2
	switch f.Subject.Relation {
	case "":
	case tuple.Ellipsis:
		parts[3], parts[4] = f.ResourceType, f.Relation
		n = 5
	default:
		parts[2], parts[3], parts[4] = f.Subject.Relation, f.ResourceType, f.Relation
		n = 5
	}
	prefix, exact = prefixInto(dst, tagReverse, parts[:n])
	// Without a subject relation, the resource type and relation are
	// not in the prefix.
	return prefix, exact && (n == 5 || f.ResourceType == "" && f.Relation == "")
}

// prefixInto encodes the leading components of parts up to the first
// empty one, except that an empty subject relation slot (a plain subject)
// is encoded, not treated as unset; complete reports that it encoded them
// all. One buffer holds the prefix, room for a revision suffix after it,
// and room for its upperBound: dst's storage when its capacity is enough,
// else a new slice.
func prefixInto(dst []byte, tag byte, parts []string) (b []byte, complete bool) {
	size := 1 + revLen
	for _, p := range parts {
		size += len(p) + 1
	}
	if cap(dst) >= 2*size {
		b = dst[:1]
	} else {
		b = make([]byte, 1, 2*size)
	}
	b[0] = tag
	for i, p := range parts {
		if p == "" && !subjectRelationSlot(tag, i, len(parts)) {
			return b, false
		}
		b = appendComponent(b, p)
	}
	return b, true
}

// upperBound returns prefixEnd(p), written after p's revision suffix room
// when p has the spare capacity prefixInto gives it.
func upperBound(p []byte) []byte {
	at := len(p) + revLen
	if cap(p) < at+len(p) {
		return prefixEnd(p)
	}
	end := append(p[at:at], p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// subjectRelationSlot reports whether component i of a prefix with n
// components is a subject relation, where "" means a plain subject rather
// than "unset".
func subjectRelationSlot(tag byte, i, n int) bool {
	switch tag {
	case tagForward:
		return i == 5
	case tagReverse:
		return i == 2 && n == 5
	}
	return false
}

// schemaKey is the key of the schema written at rev.
func schemaKey(rev store.Revision) []byte {
	return appendRev([]byte{tagSchema}, rev)
}

// changelogKey is the key of chunk seq of the change set of rev.
func changelogKey(rev store.Revision, seq uint32) []byte {
	b := binary.BigEndian.AppendUint64([]byte{tagChangelog}, uint64(rev))
	return binary.BigEndian.AppendUint32(b, seq)
}

// decodeChangelogKey returns the revision and chunk number of a changelog key.
func decodeChangelogKey(key []byte) (store.Revision, uint32, error) {
	if len(key) != 1+8+4 || key[0] != tagChangelog {
		return 0, 0, corruptKey(key, "not a changelog key")
	}
	return store.Revision(binary.BigEndian.Uint64(key[1:9])), binary.BigEndian.Uint32(key[9:]), nil
}

// expiryTimeLen is the length of an expiration in an expiry index key.
const expiryTimeLen = 12

// appendExpiryTime appends exp in the order-preserving form of the expiry
// index.
func appendExpiryTime(b []byte, exp time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(exp.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(exp.Nanosecond()))
}

// expiryKey appends the expiry index key of the version whose forward
// index key (with revision) is fkey and which expires at exp.
func expiryKey(b []byte, exp time.Time, fkey []byte) []byte {
	b = appendExpiryTime(append(b, tagExpiry), exp)
	return append(b, fkey...)
}

// expiryBound returns the smallest expiry index key of a version that
// expires after t: the scan of everything expired at t ends there.
func expiryBound(t time.Time) []byte {
	return prefixEnd(appendExpiryTime([]byte{tagExpiry}, t))
}

// decodeExpiryKey returns the expiration and the forward index key (with
// revision) of an expiry index key.
func decodeExpiryKey(key []byte) (time.Time, []byte, error) {
	const head = 1 + expiryTimeLen
	if len(key) < head+1+revLen || key[0] != tagExpiry || key[head] != tagForward {
		return time.Time{}, nil, corruptKey(key, "not an expiry index key")
	}
	sec := int64(binary.BigEndian.Uint64(key[1:9]) ^ (1 << 63))
	nsec := binary.BigEndian.Uint32(key[9:head])
	if nsec >= 1e9 {
		return time.Time{}, nil, corruptKey(key, "nanoseconds out of range")
	}
	return time.Unix(sec, int64(nsec)).UTC(), key[head:], nil
}
