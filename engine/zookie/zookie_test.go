package zookie

import (
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	f := FingerprintOf("pebble", "abc")
	for _, rev := range []uint64{0, 1, 127, 128, 1 << 40, ^uint64(0)} {
		tok := Encode(f, rev)
		got, err := Decode(f, tok)
		if err != nil || got != rev {
			t.Errorf("Decode(Encode(%d)) = %d, %v", rev, got, err)
		}
	}
}

func TestRejects(t *testing.T) {
	f := FingerprintOf("pebble", "abc")
	good := Encode(f, 42)
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
		{"too long", string(make([]byte, MaxLen+1)), ErrInvalid},
		{"other store", Encode(FingerprintOf("postgres", "abc"), 42), ErrOtherStore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(f, tt.token); !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%q) error = %v, want %v", tt.token, err, tt.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	fp := FingerprintOf("pebble", "abc")
	f.Add(Encode(fp, 7))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		rev, err := Decode(fp, s)
		if err == nil && Encode(fp, rev) != s {
			t.Fatalf("accepted %q for revision %d but it re-encodes differently", s, rev)
		}
	})
}
