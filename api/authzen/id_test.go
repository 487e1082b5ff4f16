package authzen

import (
	"math/rand/v2"
	"testing"

	"github.com/pemba-authz/pemba/schema/names"
)

func TestIDEscape(t *testing.T) {
	for _, c := range []struct{ id, pemba string }{
		{"alice@example.com", "alice~40example.com"},
		{"123", "123"},
		{"9f1c2d3e-0000-4000-8000-000000000001", "9f1c2d3e-0000-4000-8000-000000000001"},
		{"a~b", "a~7Eb"},             // the escape character is escaped
		{"a b:c#d", "a~20b~3Ac~23d"}, // separators of the relationship syntax
		{"é", "~C3~A9"},              // UTF-8 byte by byte
		{"~", "~7E"},
		{"", ""},
	} {
		if got := encodeID(c.id); got != c.pemba {
			t.Errorf("encodeID(%q) = %q, want %q", c.id, got, c.pemba)
		}
		if got := decodeID(c.pemba); got != c.id {
			t.Errorf("decodeID(%q) = %q, want %q", c.pemba, got, c.id)
		}
	}
	// IDs written through another API keep a '~' that starts no escape.
	for _, id := range []string{"a~", "a~4", "a~zz", "a~4g", "a~4a"} {
		if got := decodeID(id); got != id {
			t.Errorf("decodeID(%q) = %q, want it unchanged", id, got)
		}
	}
}

// Every string survives the round trip, and its escaped form is a valid
// Pemba ID whatever it held.
func TestIDRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 2))
	alphabet := []byte("aZ09_-=+/|.~@ :#*\x00\xff%é")
	for range 20000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		id := string(b)
		enc := encodeID(id)
		for i := 0; i < len(enc); i++ {
			if !names.IDChar(enc[i]) {
				t.Fatalf("encodeID(%q) = %q holds %q", id, enc, enc[i])
			}
		}
		if dec := decodeID(enc); dec != id {
			t.Fatalf("decodeID(encodeID(%q)) = %q", id, dec)
		}
	}
}
