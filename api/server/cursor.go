package server

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/fnv"

	"github.com/pemba-authz/pemba/engine"
)

// LookupResources cursors, version 1 (base64url without padding):
//
//	byte 0    version (1)
//	uvarint   length of the zookie, then the zookie: the revision of the
//	          stream, so every page of one lookup reads the same snapshot
//	8 bytes   FNV-1a of the request (type, permission, subject), so a
//	          cursor cannot resume a different lookup
//	rest...   the last resource ID sent
//	4 bytes   CRC-32C of everything before
//
// ReadRelationships and ExportRelationships pass the engine's own cursors
// through unchanged.
const lookupCursorVersion = 1

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func lookupHash(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func encodeLookupCursor(zk string, reqHash uint64, afterID string) string {
	buf := make([]byte, 0, 1+binary.MaxVarintLen64+len(zk)+8+len(afterID)+4)
	buf = append(buf, lookupCursorVersion)
	buf = binary.AppendUvarint(buf, uint64(len(zk)))
	buf = append(buf, zk...)
	buf = binary.BigEndian.AppendUint64(buf, reqHash)
	buf = append(buf, afterID...)
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// decodeLookupCursor returns the zookie and last resource ID of a cursor
// minted for the request with hash reqHash. Its errors wrap
// engine.ErrInvalidCursor.
func decodeLookupCursor(token string, reqHash uint64) (zk, afterID string, err error) {
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
	if body[0] != lookupCursorVersion {
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
