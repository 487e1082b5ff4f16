package server

import (
	"errors"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func TestCursor(t *testing.T) {
	h := requestHash("doc", "view", "user:anne")
	tok := encodeCursor("zk123", h, "doc-42")
	zk, after, err := decodeCursor(tok, h)
	if err != nil || zk != "zk123" || after != "doc-42" {
		t.Fatalf("decode = %q, %q, %v", zk, after, err)
	}
	if _, _, err := decodeCursor(encodeCursor("", h, ""), h); err != nil {
		t.Errorf("empty fields: %v", err)
	}
	flipped := []byte(tok)
	flipped[5] ^= 1
	tests := []struct {
		name, token string
		hash        uint64
	}{
		{"other request", tok, requestHash("doc", "edit", "user:anne")},
		{"garbage", "!!!", h},
		{"empty", "", h},
		{"truncated", tok[:len(tok)-3], h},
		{"bit flip", string(flipped), h},
		{"too long", string(make([]byte, MaxCursorLen+1)), h},
	}
	for _, tt := range tests {
		if _, _, err := decodeCursor(tt.token, tt.hash); !errors.Is(err, engine.ErrInvalidCursor) {
			t.Errorf("%s: err = %v, want ErrInvalidCursor", tt.name, err)
		}
	}
}

func FuzzCursor(f *testing.F) {
	h := requestHash("doc", "view", "user:anne")
	f.Add(encodeCursor("zk", h, "id"))
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		zk, after, err := decodeCursor(s, h)
		if err != nil {
			return
		}
		if got := encodeCursor(zk, h, after); got != s {
			t.Fatalf("re-encode of %q gave %q", s, got)
		}
	})
}

func TestReadPosition(t *testing.T) {
	k := tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "group", ID: "eng", Relation: "member"}}
	for _, tt := range []struct {
		page string
		last *tuple.Key
	}{{"", nil}, {"engine-cursor", nil}, {"", &k}, {"x", &k}} {
		page, last, err := parseReadPosition(readPosition(tt.page, tt.last))
		if err != nil || page != tt.page || (last == nil) != (tt.last == nil) || (last != nil && *last != *tt.last) {
			t.Errorf("round trip of %q %v = %q %v %v", tt.page, tt.last, page, last, err)
		}
	}
	for _, bad := range []string{"", "\x05ab", "\x00doc:1", "\x00doc:1#viewer@user:a[c]"} {
		if _, _, err := parseReadPosition(bad); !errors.Is(err, engine.ErrInvalidCursor) {
			t.Errorf("parseReadPosition(%q) = %v", bad, err)
		}
	}
}

func TestKeyAfter(t *testing.T) {
	keys := []string{ // in index order
		"doc:1#owner@user:b",
		"doc:1#viewer@group:eng",
		"doc:1#viewer@group:eng#member",
		"doc:1#viewer@user:a",
		"doc:10#viewer@user:a",
		"doc:2#viewer@user:a",
		"folder:1#viewer@user:a",
	}
	for i := range keys {
		for j := range keys {
			a, _ := tuple.Parse(keys[i])
			b, _ := tuple.Parse(keys[j])
			if got := keyAfter(a.Key(), b.Key()); got != (i > j) {
				t.Errorf("keyAfter(%s, %s) = %v", keys[i], keys[j], got)
			}
		}
	}
}
