// Package token encodes and decodes the opaque tokens Pemba hands to
// clients: zookies, which name a revision of one datastore, and cursors,
// which name a position in the results of one request at one revision.
// Both share one format, so both are checked the same way, once.
//
// # Format, version 2
//
//	byte 0      version (2)
//	byte 1      kind: 1 zookie, 2 cursor
//	bytes 2..9  datastore fingerprint: the first 8 bytes of SHA-256(kind ":" id)
//	uvarint     revision (minimal encoding)
//	cursor only:
//	  8 bytes   hash of the request the cursor belongs to (see RequestHash)
//	  rest      position: opaque to this package, defined by the minter
//	last 4      CRC-32 (Castagnoli) of everything before it, big endian
//
// The whole is base64url without padding. Decoding is strict: no
// whitespace, no line breaks, no padding, no trailing bits or bytes, and
// the token must be of the expected kind, from the expected datastore
// and, for a cursor, for the expected request. The checksum rejects typos
// and truncation. Tokens are not signed: they name a revision and a
// position, they grant nothing.
//
// # Version 1 (zookies only)
//
//	byte 0      version (1)
//	bytes 1..8  datastore fingerprint
//	uvarint     revision
//	last 4      CRC-32C
//
// Version 1 zookies were minted before version 2 existed and may be held
// by clients, so DecodeZookie still accepts them. Version 1 cursors (the
// engine's and the API's) are refused: cursors live for one listing, and a
// client restarts the listing.
package token

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
)

const (
	version1 = 1
	version2 = 2

	kindZookie = 1
	kindCursor = 2
)

// Length bounds of token text accepted by the decoders.
const (
	// MaxZookieLen bounds a zookie.
	MaxZookieLen = 64
	// MaxCursorLen bounds a cursor: room for a position holding a
	// relationship key of the longest names and IDs.
	MaxCursorLen = 8 << 10
)

// Sentinel errors.
var (
	// ErrInvalid: the text is not a token of the expected kind (garbage,
	// whitespace, padding, truncated, tampered, an unknown version, or a
	// cursor where a zookie is expected and vice versa).
	ErrInvalid = errors.New("token: invalid")
	// ErrOtherStore: the token was minted by another datastore.
	ErrOtherStore = errors.New("token: minted by another datastore")
	// ErrOtherRequest: the cursor was minted for a different request.
	ErrOtherRequest = errors.New("token: cursor belongs to a different request")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Fingerprint identifies a datastore inside tokens.
type Fingerprint [8]byte

// FingerprintOf derives the fingerprint of the datastore of the given kind and ID.
func FingerprintOf(kind, id string) Fingerprint {
	sum := sha256.Sum256([]byte(kind + ":" + id))
	var f Fingerprint
	copy(f[:], sum[:8])
	return f
}

// RequestHash hashes the fields that define a request (FNV-1a, each part
// followed by a NUL), for binding cursors to their request.
func RequestHash(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// Cursor is the content of a cursor token.
type Cursor struct {
	// Revision is the revision of the listing; every page reads it.
	Revision uint64
	// Request is the RequestHash of the request the cursor belongs to.
	Request uint64
	// Position says where the next page starts; its meaning is the
	// minter's.
	Position string
}

// EncodeZookie returns the zookie for revision rev of the datastore f.
func EncodeZookie(f Fingerprint, rev uint64) string {
	return seal(header(make([]byte, 0, 2+8+binary.MaxVarintLen64+4), kindZookie, f, rev))
}

// EncodeCursor returns the cursor token for c, minted by datastore f.
func EncodeCursor(f Fingerprint, c Cursor) string {
	buf := header(make([]byte, 0, 2+8+binary.MaxVarintLen64+8+len(c.Position)+4), kindCursor, f, c.Revision)
	buf = binary.BigEndian.AppendUint64(buf, c.Request)
	buf = append(buf, c.Position...)
	return seal(buf)
}

func header(buf []byte, kind byte, f Fingerprint, rev uint64) []byte {
	buf = append(buf, version2, kind)
	buf = append(buf, f[:]...)
	return binary.AppendUvarint(buf, rev)
}

func seal(buf []byte) string {
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// DecodeZookie returns the revision named by the zookie s, which must have
// been minted by datastore f. It accepts version 1 and version 2 zookies.
func DecodeZookie(f Fingerprint, s string) (uint64, error) {
	body, err := open(s, MaxZookieLen)
	if err != nil {
		return 0, err
	}
	var rest []byte
	switch body[0] {
	case version1:
		rest = body[1:]
	case version2:
		if body[1] != kindZookie {
			return 0, fmt.Errorf("%w: %s, not a zookie", ErrInvalid, kindName(body[1]))
		}
		rest = body[2:]
	default:
		return 0, fmt.Errorf("%w: unknown version %d", ErrInvalid, body[0])
	}
	rev, rest, err := storeAndRevision(f, rest)
	if err != nil {
		return 0, err
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(rest))
	}
	return rev, nil
}

// DecodeCursor returns the content of the cursor s, which must have been
// minted by datastore f for the request whose RequestHash is request.
func DecodeCursor(f Fingerprint, s string, request uint64) (Cursor, error) {
	body, err := open(s, MaxCursorLen)
	if err != nil {
		return Cursor{}, err
	}
	switch {
	case body[0] == version1:
		return Cursor{}, fmt.Errorf("%w: a version 1 token, from an older release (restart the listing without a cursor)", ErrInvalid)
	case body[0] != version2:
		return Cursor{}, fmt.Errorf("%w: unknown version %d", ErrInvalid, body[0])
	case body[1] != kindCursor:
		return Cursor{}, fmt.Errorf("%w: %s, not a cursor", ErrInvalid, kindName(body[1]))
	}
	rev, rest, err := storeAndRevision(f, body[2:])
	if err != nil {
		return Cursor{}, err
	}
	if len(rest) < 8 {
		return Cursor{}, fmt.Errorf("%w: truncated request hash", ErrInvalid)
	}
	if binary.BigEndian.Uint64(rest) != request {
		return Cursor{}, ErrOtherRequest
	}
	return Cursor{Revision: rev, Request: request, Position: string(rest[8:])}, nil
}

func kindName(k byte) string {
	switch k {
	case kindZookie:
		return "a zookie"
	case kindCursor:
		return "a cursor"
	}
	return fmt.Sprintf("unknown kind %d", k)
}

// open checks the text of a token and returns its body: the decoded bytes
// without the checksum, at least two bytes long.
func open(s string, maxLen int) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(s) > maxLen {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrInvalid, maxLen)
	}
	for i := 0; i < len(s); i++ {
		// The base64 decoder skips \r and \n; a token must not. Padding,
		// whitespace and the standard alphabet are refused here too.
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: character %q at offset %d is not base64url", ErrInvalid, c, i)
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrInvalid)
	}
	// The shortest token: a version 1 zookie of revision 0.
	if len(raw) < 1+8+1+4 {
		return nil, fmt.Errorf("%w: too short", ErrInvalid)
	}
	body, sum := raw[:len(raw)-4], binary.BigEndian.Uint32(raw[len(raw)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrInvalid)
	}
	return body, nil
}

// storeAndRevision reads the fingerprint and the revision at the start of
// b and returns what follows them.
func storeAndRevision(f Fingerprint, b []byte) (uint64, []byte, error) {
	if len(b) < 8+1 {
		return 0, nil, fmt.Errorf("%w: truncated", ErrInvalid)
	}
	if Fingerprint(b[:8]) != f {
		return 0, nil, ErrOtherStore
	}
	rev, n := binary.Uvarint(b[8:])
	// A longer than minimal encoding would give one revision two tokens.
	if n <= 0 || n != uvarintLen(rev) {
		return 0, nil, fmt.Errorf("%w: bad revision encoding", ErrInvalid)
	}
	return rev, b[8+n:], nil
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}
