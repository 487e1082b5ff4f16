package token

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

var (
	fp    = FingerprintOf("pebble", "abc")
	other = FingerprintOf("postgres", "abc")
	req   = RequestHash("lookup", "doc", "view", "user:anne")
)

// encodeV1 mints a version 1 zookie as releases before version 2 did.
func encodeV1(f Fingerprint, rev uint64) string {
	buf := append([]byte{version1}, f[:]...)
	buf = binary.AppendUvarint(buf, rev)
	return seal(buf)
}

// raw seals arbitrary bytes with a valid checksum, to build tokens that
// only a later check refuses.
func raw(b ...byte) string { return seal(b) }

func body(version, kind byte, f Fingerprint, rest ...byte) []byte {
	b := []byte{version, kind}
	b = append(b, f[:]...)
	return append(b, rest...)
}

func TestZookieRoundTrip(t *testing.T) {
	for _, rev := range []uint64{0, 1, 127, 128, 1 << 40, ^uint64(0)} {
		for name, tok := range map[string]string{"v2": EncodeZookie(fp, rev), "v1": encodeV1(fp, rev)} {
			got, err := DecodeZookie(fp, tok)
			if err != nil || got != rev {
				t.Errorf("%s: DecodeZookie(%q) = %d, %v; want %d", name, tok, got, err, rev)
			}
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{
		{Revision: 0, Request: req},
		{Revision: 42, Request: req, Position: "doc-42"},
		{Revision: ^uint64(0), Request: req, Position: strings.Repeat("\x00\xff", 100)},
	} {
		tok := EncodeCursor(fp, c)
		got, err := DecodeCursor(fp, tok, req)
		if err != nil || got != c {
			t.Errorf("DecodeCursor(EncodeCursor(%+v)) = %+v, %v", c, got, err)
		}
	}
}

func TestZookieRejects(t *testing.T) {
	good := EncodeZookie(fp, 42)
	flipped := []byte(good)
	flipped[5] ^= 1
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrInvalid},
		{"garbage", "not a zookie!", ErrInvalid},
		{"short", "AQID", ErrInvalid},
		{"tampered", string(flipped), ErrInvalid},
		{"truncated", good[:len(good)-2], ErrInvalid},
		{"too long", strings.Repeat("A", MaxZookieLen+1), ErrInvalid},
		{"padding", base64.URLEncoding.EncodeToString(mustRaw(EncodeZookie(fp, 300))), ErrInvalid},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+", ErrInvalid},
		{"leading space", " " + good, ErrInvalid},
		{"trailing space", good + " ", ErrInvalid},
		{"tab inside", good[:4] + "\t" + good[4:], ErrInvalid},
		{"CR inside", good[:4] + "\r" + good[4:], ErrInvalid},
		{"LF inside", good[:4] + "\n" + good[4:], ErrInvalid},
		{"CRLF at end", good + "\r\n", ErrInvalid},
		{"trailing bits", flipLastBit(EncodeZookie(fp, 300)), ErrInvalid},
		{"unknown version", raw(body(3, kindZookie, fp, 42)...), ErrInvalid},
		{"version 0", raw(body(0, kindZookie, fp, 42)...), ErrInvalid},
		{"a cursor", EncodeCursor(fp, Cursor{Revision: 42, Request: req}), ErrInvalid},
		{"unknown kind", raw(body(version2, 9, fp, 42)...), ErrInvalid},
		{"trailing bytes v2", raw(body(version2, kindZookie, fp, 42, 0)...), ErrInvalid},
		{"trailing bytes v1", raw(append([]byte{version1}, append(fp[:], 42, 0)...)...), ErrInvalid},
		{"no revision", raw(body(version2, kindZookie, fp)...), ErrInvalid},
		{"unterminated revision", raw(body(version2, kindZookie, fp, 0x80)...), ErrInvalid},
		{"overlong revision", raw(body(version2, kindZookie, fp, 0x80, 0x00)...), ErrInvalid},
		{"revision overflow", raw(body(version2, kindZookie, fp, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)...), ErrInvalid},
		{"other store v2", EncodeZookie(other, 42), ErrOtherStore},
		{"other store v1", encodeV1(other, 42), ErrOtherStore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rev, err := DecodeZookie(fp, tt.token); !errors.Is(err, tt.want) {
				t.Fatalf("DecodeZookie(%q) = %d, %v; want %v", tt.token, rev, err, tt.want)
			}
		})
	}
}

func TestCursorRejects(t *testing.T) {
	c := Cursor{Revision: 42, Request: req, Position: "doc-42"}
	good := EncodeCursor(fp, c)
	flipped := []byte(good)
	flipped[7] ^= 1
	var hash [8]byte
	binary.BigEndian.PutUint64(hash[:], req)
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrInvalid},
		{"garbage", "!!!", ErrInvalid},
		{"tampered", string(flipped), ErrInvalid},
		{"truncated", good[:len(good)-3], ErrInvalid},
		{"too long", strings.Repeat("A", MaxCursorLen+1), ErrInvalid},
		{"padding", base64.URLEncoding.EncodeToString(mustRaw(EncodeCursor(fp, Cursor{Revision: 1, Request: req, Position: "ab"}))), ErrInvalid},
		{"LF inside", good[:6] + "\n" + good[6:], ErrInvalid},
		{"CR at end", good + "\r", ErrInvalid},
		{"space inside", good[:6] + " " + good[6:], ErrInvalid},
		{"trailing bits", flipLastBit(good), ErrInvalid},
		{"a zookie", EncodeZookie(fp, 42), ErrInvalid},
		{"a version 1 zookie", encodeV1(fp, 42), ErrInvalid},
		{"a version 1 engine cursor", raw(append(append([]byte{version1}, fp[:]...), append([]byte{42}, append(hash[:], "doc:1#viewer@user:a"...)...)...)...), ErrInvalid},
		{"unknown version", raw(body(7, kindCursor, fp, append([]byte{42}, hash[:]...)...)...), ErrInvalid},
		{"no request hash", raw(body(version2, kindCursor, fp, 42, 1, 2, 3)...), ErrInvalid},
		{"overlong revision", raw(body(version2, kindCursor, fp, append([]byte{0xaa, 0x00}, hash[:]...)...)...), ErrInvalid},
		{"other store", EncodeCursor(other, c), ErrOtherStore},
		{"other request", EncodeCursor(fp, Cursor{Revision: 42, Request: req + 1, Position: "doc-42"}), ErrOtherRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := DecodeCursor(fp, tt.token, req); !errors.Is(err, tt.want) {
				t.Fatalf("DecodeCursor(%q) = %+v, %v; want %v", tt.token, got, err, tt.want)
			}
		})
	}
}

// TestKnownBytes pins the byte layout: a change to it must be a new
// version, since zookies outlive releases.
func TestKnownBytes(t *testing.T) {
	f := Fingerprint{1, 2, 3, 4, 5, 6, 7, 8}
	b := []byte{2, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0xac, 0x02}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if got, want := EncodeZookie(f, 300), base64.RawURLEncoding.EncodeToString(b); got != want {
		t.Errorf("EncodeZookie = %q, want %q", got, want)
	}
	b = []byte{2, 2, 1, 2, 3, 4, 5, 6, 7, 8, 0x05, 0, 0, 0, 0, 0, 0, 0, 9, 'p'}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if got, want := EncodeCursor(f, Cursor{Revision: 5, Request: 9, Position: "p"}), base64.RawURLEncoding.EncodeToString(b); got != want {
		t.Errorf("EncodeCursor = %q, want %q", got, want)
	}
}

func mustRaw(tok string) []byte {
	if len(tok)%4 == 0 {
		panic("no padding needed for " + tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		panic(err)
	}
	return b
}

// flipLastBit sets an unused low bit of the last character, which a
// lenient decoder ignores.
func flipLastBit(tok string) string {
	if len(tok)%4 == 0 {
		panic("no unused bits in " + tok)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i|1])
}

func FuzzDecodeZookie(f *testing.F) {
	f.Add(EncodeZookie(fp, 7))
	f.Add(encodeV1(fp, 7))
	f.Add(EncodeCursor(fp, Cursor{Revision: 7, Request: req}))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		rev, err := DecodeZookie(fp, s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrOtherStore) {
				t.Fatalf("DecodeZookie(%q) error %v wraps no sentinel", s, err)
			}
			return
		}
		if EncodeZookie(fp, rev) != s && encodeV1(fp, rev) != s {
			t.Fatalf("accepted %q for revision %d but it re-encodes differently", s, rev)
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor(fp, Cursor{Revision: 7, Request: req, Position: "doc:1#viewer@user:a"}))
	f.Add(EncodeCursor(fp, Cursor{Request: req}))
	f.Add(EncodeZookie(fp, 7))
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeCursor(fp, s, req)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrOtherStore) && !errors.Is(err, ErrOtherRequest) {
				t.Fatalf("DecodeCursor(%q) error %v wraps no sentinel", s, err)
			}
			return
		}
		if got := EncodeCursor(fp, c); got != s {
			t.Fatalf("accepted %q as %+v but it re-encodes to %q", s, c, got)
		}
	})
}
