// Package zookie encodes and decodes zookies: opaque tokens that name a
// revision of one datastore. A client hands one back to ask for an answer at
// least as fresh as (or exactly at) that revision.
//
// # Format, version 1
//
//	byte 0      version (1)
//	bytes 1..8  store fingerprint: the first 8 bytes of SHA-256(kind ":" id)
//	bytes 9..   revision, unsigned varint
//	last 4      CRC-32 (Castagnoli) of everything before it, big endian
//
// The whole is base64url without padding. The checksum rejects typos and
// truncation; the fingerprint rejects tokens minted by another datastore
// (another data directory, or another backend). Zookies are not signed: they
// name a revision, they grant nothing.
package zookie

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const version1 = 1

// MaxLen bounds the text length of a zookie accepted by Decode.
const MaxLen = 64

// Sentinel errors.
var (
	// ErrInvalid: the token is not a zookie (garbage, truncated, tampered).
	ErrInvalid = errors.New("zookie: invalid")
	// ErrOtherStore: the token was minted by another datastore.
	ErrOtherStore = errors.New("zookie: minted by another datastore")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Fingerprint identifies a datastore inside zookies.
type Fingerprint [8]byte

// FingerprintOf derives the fingerprint of the datastore of the given kind and ID.
func FingerprintOf(kind, id string) Fingerprint {
	sum := sha256.Sum256([]byte(kind + ":" + id))
	var f Fingerprint
	copy(f[:], sum[:8])
	return f
}

// Encode returns the zookie for revision rev of the datastore f.
func Encode(f Fingerprint, rev uint64) string {
	buf := make([]byte, 0, 1+8+binary.MaxVarintLen64+4)
	buf = append(buf, version1)
	buf = append(buf, f[:]...)
	buf = binary.AppendUvarint(buf, rev)
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// Decode returns the revision named by token, which must have been minted by
// datastore f.
func Decode(f Fingerprint, token string) (uint64, error) {
	if token == "" {
		return 0, fmt.Errorf("%w: empty token", ErrInvalid)
	}
	if len(token) > MaxLen {
		return 0, fmt.Errorf("%w: longer than %d characters", ErrInvalid, MaxLen)
	}
	for i := 0; i < len(token); i++ {
		// The decoder skips \r and \n; a token must not.
		if c := token[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return 0, fmt.Errorf("%w: character %q is not base64url", ErrInvalid, c)
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil {
		return 0, fmt.Errorf("%w: not base64url", ErrInvalid)
	}
	if len(raw) < 1+8+1+4 {
		return 0, fmt.Errorf("%w: too short", ErrInvalid)
	}
	body, sum := raw[:len(raw)-4], binary.BigEndian.Uint32(raw[len(raw)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, fmt.Errorf("%w: checksum mismatch", ErrInvalid)
	}
	if body[0] != version1 {
		return 0, fmt.Errorf("%w: unknown version %d", ErrInvalid, body[0])
	}
	if Fingerprint(body[1:9]) != f {
		return 0, ErrOtherStore
	}
	rev, n := binary.Uvarint(body[9:])
	if n <= 0 || 9+n != len(body) {
		return 0, fmt.Errorf("%w: bad revision encoding", ErrInvalid)
	}
	return rev, nil
}
