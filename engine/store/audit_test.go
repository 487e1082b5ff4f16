package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func auditTestEntry(n int) store.AuditEntry {
	e := store.AuditEntry{
		Revision: 42, Time: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), Caller: "alice", RequestID: "req",
		Reason: "because", Operation: "WriteRelationships",
	}
	for i := range n {
		r := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i)}, Relation: "viewer",
			Subject: tuple.SubjectRef{Type: "group", ID: "eng", Relation: "member"}}
		op := store.OpTouch
		switch i % 3 {
		case 1:
			r.Caveat = &tuple.Caveat{Name: "c", Context: map[string]any{"x": "y"}}
			r.Expiration = time.Date(2031, 1, 1, 0, 0, 0, 5, time.UTC)
			op = store.OpCreate
		case 2:
			op = store.OpDelete
		}
		e.Changes = append(e.Changes, store.Change{Op: op, Relationship: r})
	}
	return e
}

// TestAuditEncodingRoundTrip: decoding the canonical encoding gives the
// entry back, and re-encoding gives the same bytes (the hash depends on
// nothing else).
func TestAuditEncodingRoundTrip(t *testing.T) {
	for _, e := range []store.AuditEntry{auditTestEntry(0), auditTestEntry(7),
		{Revision: 1, Time: time.Unix(0, 0).UTC(), SchemaChanged: true, Schema: "definition user {}"}} {
		enc := store.AppendAuditEncoding(nil, &e)
		got, err := store.DecodeAuditEntry(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
		}
		if again := store.AppendAuditEncoding(nil, &got); string(again) != string(enc) {
			t.Errorf("re-encoding differs")
		}
		// Every strict prefix fails to decode: nothing is optional.
		for i := range enc {
			if _, err := store.DecodeAuditEntry(enc[:i]); !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("prefix of %d of %d bytes: err = %v, want ErrCorrupt", i, len(enc), err)
			}
		}
	}
}

// TestAuditHashChain: each hash covers the previous one and every byte.
func TestAuditHashChain(t *testing.T) {
	e := auditTestEntry(3)
	enc := store.AppendAuditEncoding(nil, &e)
	var zero store.AuditHash
	h := store.ChainAuditHash(zero, enc)
	if store.ChainAuditHash(h, enc) == h {
		t.Error("the hash does not depend on the previous hash")
	}
	for i := range enc {
		mod := append([]byte(nil), enc...)
		mod[i] ^= 1
		if store.ChainAuditHash(zero, mod) == h {
			t.Fatalf("flipping byte %d keeps the hash", i)
		}
	}
	// The encoding is versioned: its first byte is the version.
	if enc[0] != 1 {
		t.Errorf("version byte %d, want 1", enc[0])
	}
}

// BenchmarkAuditEntry is the CPU an audit entry adds to a commit: its
// canonical encoding and its chain hash.
func BenchmarkAuditEntry(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("changes=%d", n), func(b *testing.B) {
			e := auditTestEntry(n)
			var h store.AuditHash
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf = store.AppendAuditEncoding(buf[:0], &e)
				h = store.ChainAuditHash(h, buf)
			}
		})
	}
}
