package server

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"strings"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// API cursors, version 1 (base64url without padding):
//
//	byte 0    version (1)
//	uvarint   length of the zookie, then the zookie: the revision of the
//	          stream, so every page of one scan reads the same snapshot
//	8 bytes   FNV-1a of the request (kind, then its defining fields), so a
//	          cursor cannot resume a different request
//	rest...   the position, by kind: for LookupResources and
//	          LookupSubjects the last ID sent; for ReadRelationships the
//	          engine's cursor of a page (uvarint length first) and the key
//	          of the last relationship sent from it
//	4 bytes   CRC-32C of everything before
//
// ExportRelationships passes the engine's own page cursors through.
const cursorVersion = 1

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func requestHash(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func encodeCursor(zk string, reqHash uint64, pos string) string {
	buf := make([]byte, 0, 1+binary.MaxVarintLen64+len(zk)+8+len(pos)+4)
	buf = append(buf, cursorVersion)
	buf = binary.AppendUvarint(buf, uint64(len(zk)))
	buf = append(buf, zk...)
	buf = binary.BigEndian.AppendUint64(buf, reqHash)
	buf = append(buf, pos...)
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// decodeCursor returns the zookie and position of a cursor minted for the
// request with hash reqHash. Its errors wrap engine.ErrInvalidCursor.
func decodeCursor(token string, reqHash uint64) (zk, pos string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w: %s", engine.ErrInvalidCursor, why)
	}
	if len(token) > MaxCursorLen {
		return bad("too long")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil {
		return bad("not base64url")
	}
	if len(raw) < 1+1+8+4 {
		return bad("too short")
	}
	body, sum := raw[:len(raw)-4], binary.BigEndian.Uint32(raw[len(raw)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return bad("checksum mismatch")
	}
	if body[0] != cursorVersion {
		return bad("unknown version")
	}
	n, k := binary.Uvarint(body[1:])
	if k <= 0 || n > uint64(len(body)) || 1+k+int(n)+8 > len(body) {
		return bad("bad zookie length")
	}
	rest := body[1+k:]
	zk, rest = string(rest[:n]), rest[n:]
	if binary.BigEndian.Uint64(rest[:8]) != reqHash {
		return bad("the cursor belongs to a different request")
	}
	return zk, string(rest[8:]), nil
}

// readPosition is the position of a ReadRelationships cursor: the engine
// cursor of a page ("" for the first) and the last relationship sent from
// it (nil when none was). A key rather than a count, so that relationships
// expiring between two calls cannot shift the position.
func readPosition(page string, last *tuple.Key) string {
	b := binary.AppendUvarint(nil, uint64(len(page)))
	b = append(b, page...)
	if last != nil {
		b = append(b, last.String()...)
	}
	return string(b)
}

func parseReadPosition(pos string) (page string, last *tuple.Key, err error) {
	bad := func(why string) (string, *tuple.Key, error) {
		return "", nil, fmt.Errorf("%w: %s", engine.ErrInvalidCursor, why)
	}
	n, k := binary.Uvarint([]byte(pos))
	if k <= 0 || n > uint64(len(pos)-k) {
		return bad("bad page cursor")
	}
	page, rest := pos[k:k+int(n)], pos[k+int(n):]
	if rest == "" {
		return page, nil, nil
	}
	r, err := tuple.Parse(rest)
	if err != nil || r.Caveat != nil || !r.Expiration.IsZero() {
		return bad("bad position")
	}
	key := r.Key()
	return page, &key, nil
}

// keyAfter reports whether a comes after b in the forward index order that
// ReadRelationships returns: resource type, resource id, relation, subject
// type, subject id, subject relation.
func keyAfter(a, b tuple.Key) bool {
	for _, c := range [...]int{
		strings.Compare(a.Resource.Type, b.Resource.Type),
		strings.Compare(a.Resource.ID, b.Resource.ID),
		strings.Compare(a.Relation, b.Relation),
		strings.Compare(a.Subject.Type, b.Subject.Type),
		strings.Compare(a.Subject.ID, b.Subject.ID),
		strings.Compare(a.Subject.Relation, b.Subject.Relation),
	} {
		if c != 0 {
			return c > 0
		}
	}
	return false
}
