package server

import (
	"errors"
	"testing"

	"github.com/pemba-authz/pemba/engine"
)

func TestLookupCursor(t *testing.T) {
	h := lookupHash("doc", "view", "user:anne")
	tok := encodeLookupCursor("zk123", h, "doc-42")
	zk, after, err := decodeLookupCursor(tok, h)
	if err != nil || zk != "zk123" || after != "doc-42" {
		t.Fatalf("decode = %q, %q, %v", zk, after, err)
	}
	if _, _, err := decodeLookupCursor(encodeLookupCursor("", h, ""), h); err != nil {
		t.Errorf("empty fields: %v", err)
	}
	flipped := []byte(tok)
	flipped[5] ^= 1
	tests := []struct {
		name, token string
		hash        uint64
	}{
		{"other request", tok, lookupHash("doc", "edit", "user:anne")},
		{"garbage", "!!!", h},
		{"empty", "", h},
		{"truncated", tok[:len(tok)-3], h},
		{"bit flip", string(flipped), h},
		{"too long", string(make([]byte, MaxCursorLen+1)), h},
	}
	for _, tt := range tests {
		if _, _, err := decodeLookupCursor(tt.token, tt.hash); !errors.Is(err, engine.ErrInvalidCursor) {
			t.Errorf("%s: err = %v, want ErrInvalidCursor", tt.name, err)
		}
	}
}

func FuzzLookupCursor(f *testing.F) {
	h := lookupHash("doc", "view", "user:anne")
	f.Add(encodeLookupCursor("zk", h, "id"))
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		zk, after, err := decodeLookupCursor(s, h)
		if err != nil {
			return
		}
		if got := encodeLookupCursor(zk, h, after); got != s {
			t.Fatalf("re-encode of %q gave %q", s, got)
		}
	})
}
