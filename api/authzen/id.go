package authzen

import (
	"fmt"
	"strings"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema/names"
)

// AuthZEN identifiers are arbitrary strings ("alice@example.com" in the
// specification's own examples) while a Pemba object ID allows only
// names.IDChar characters. The mapping is a reversible escape: every byte
// that is not an ID character, and the escape character '~' itself,
// becomes '~' and two upper-case hex digits, so "alice@example.com" is
// stored as "alice~40example.com". IDs made only of ID characters other
// than '~' (UUIDs, numbers, most slugs) are unchanged. A subject id "*"
// is Pemba's wildcard, every subject of the type.

const escapeChar = '~'

// encodeID maps an AuthZEN id to a Pemba object ID.
func encodeID(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == escapeChar || !names.IDChar(c) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(id) + 2*n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c == escapeChar || !names.IDChar(c) {
			b.WriteByte(escapeChar)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// decodeID is the inverse of encodeID. A '~' not followed by two hex
// digits (an ID written through another API) is kept as it is.
func decodeID(id string) string {
	if strings.IndexByte(id, escapeChar) < 0 {
		return id
	}
	var b strings.Builder
	b.Grow(len(id))
	for i := 0; i < len(id); i++ {
		if id[i] == escapeChar && i+2 < len(id) {
			hi, ok1 := unhex(id[i+1])
			lo, ok2 := unhex(id[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(id[i])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// objectID encodes an AuthZEN id for the object named by field and checks
// the result against Pemba's ID rules (only its length can fail).
func objectID(field, id string) (string, error) {
	enc := encodeID(id)
	if err := tuple.ValidateID(field, enc, false); err != nil {
		return "", fmt.Errorf("%w (after escaping)", err)
	}
	return enc, nil
}

// subjectID is objectID for subjects, where "*" is the wildcard.
func subjectID(field, id string) (string, error) {
	if id == tuple.Wildcard {
		return id, nil
	}
	return objectID(field, id)
}

// publicID maps a Pemba object ID back to its AuthZEN id.
func publicID(id string) string {
	if id == tuple.Wildcard {
		return id
	}
	return decodeID(id)
}
