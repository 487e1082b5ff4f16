package pebblestore

import (
	"bytes"
	"cmp"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func mustKey(t testing.TB, s string) tuple.Key {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r.Key()
}

// keyOrder lists keys in the documented forward order; some differ only
// in a component that is a prefix of the neighbour's.
var keyOrder = []string{
	"a:1#r@u:1",
	"a:1#r@u:1#m",
	"a:1#r@u:10",
	"a:1#r@u:2",
	"a:1#r@v:1",
	"a:1#rel@u:1",
	"a:1#s@u:1",
	"a:10#r@u:1",
	"a:2#r@u:1",
	"a/b:1#r@u:1",
	"ab:1#r@u:1",
	"b:1#r@u:*",
}

func compareForward(a, b tuple.Key) int {
	return cmp.Or(
		cmp.Compare(a.Resource.Type, b.Resource.Type), cmp.Compare(a.Resource.ID, b.Resource.ID),
		cmp.Compare(a.Relation, b.Relation), cmp.Compare(a.Subject.Type, b.Subject.Type),
		cmp.Compare(a.Subject.ID, b.Subject.ID), cmp.Compare(a.Subject.Relation, b.Subject.Relation))
}

func compareReverse(a, b tuple.Key) int {
	return cmp.Or(
		cmp.Compare(a.Subject.Type, b.Subject.Type), cmp.Compare(a.Subject.ID, b.Subject.ID),
		cmp.Compare(a.Subject.Relation, b.Subject.Relation), cmp.Compare(a.Resource.Type, b.Resource.Type),
		cmp.Compare(a.Relation, b.Relation), cmp.Compare(a.Resource.ID, b.Resource.ID))
}

func TestKeyOrder(t *testing.T) {
	var keys []tuple.Key
	for _, s := range keyOrder {
		keys = append(keys, mustKey(t, s))
	}
	for _, tc := range []struct {
		name   string
		encode func([]byte, tuple.Key) []byte
		order  func(a, b tuple.Key) int
	}{
		{"forward", forwardTupleKey, compareForward},
		{"reverse", reverseTupleKey, compareReverse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, a := range keys {
				for _, b := range keys {
					for _, ra := range []store.Revision{1, 7, 1 << 40} {
						for _, rb := range []store.Revision{1, 7, 1 << 40} {
							ka := appendRev(tc.encode(nil, a), ra)
							kb := appendRev(tc.encode(nil, b), rb)
							// Tuple order first, then newest revision first.
							want := cmp.Or(tc.order(a, b), cmp.Compare(rb, ra))
							if got := bytes.Compare(ka, kb); got != want {
								t.Errorf("compare(%v@%d, %v@%d) = %d, want %d", a, ra, b, rb, got, want)
							}
						}
					}
				}
			}
		})
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, s := range append(keyOrder, "tenant/doc:A-b_c=d+e/f|g.h~i#viewer@tenant/group:x#member") {
		k := mustKey(t, s)
		for _, enc := range []func([]byte, tuple.Key) []byte{forwardTupleKey, reverseTupleKey} {
			b := appendRev(enc(nil, k), 42)
			got, rev, err := decodeVersionKey(b)
			if err != nil || got != k || rev != 42 {
				t.Errorf("decode(encode(%v)) = %v, %d, %v", k, got, rev, err)
			}
		}
	}
}

func TestDecodeKeyCorrupt(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		[]byte("f"),
		[]byte("f\x00\x00\x00\x00\x00\x00\x00\x00"),
		appendRev([]byte("fa\x001\x00r\x00u\x001\x00"), 1),           // five components
		appendRev([]byte("fa\x001\x00r\x00u\x001\x00\x00x"), 1),      // trailing bytes
		appendRev([]byte("xa\x001\x00r\x00u\x001\x00\x00"), 1),       // unknown tag
		appendRev([]byte("f\x001\x00r\x00u\x001\x00\x00"), 1),        // empty type
		appendRev([]byte("ra\x001\x00\x00d\x00\x00\x00"), 1),         // empty relation and id
		appendRev([]byte("fa\x001\x00r\x00u\x001\x00m\x00extra"), 1), // junk after
	} {
		if _, _, err := decodeVersionKey(b); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("decodeVersionKey(%q) err = %v, want ErrCorrupt", b, err)
		}
	}
}

func TestPrefixes(t *testing.T) {
	for _, tc := range []struct {
		f     tuple.Filter
		want  string
		exact bool
	}{
		{tuple.Filter{}, "f", false},
		{tuple.Filter{ResourceType: "doc"}, "fdoc\x00", false},
		{tuple.Filter{ResourceType: "doc", Relation: "viewer"}, "fdoc\x00", false},
		{tuple.Filter{ResourceType: "doc", ResourceID: "1", Relation: "viewer"}, "fdoc\x001\x00viewer\x00", true},
		{tuple.Filter{ResourceType: "doc", ResourceID: "1", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user"}}, "fdoc\x001\x00viewer\x00user\x00", false},
		{tuple.Filter{ResourceType: "doc", ResourceID: "1", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user", ID: "a"}}, "fdoc\x001\x00viewer\x00user\x00a\x00", true},
		{tuple.Filter{ResourceType: "doc", ResourceID: "1", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user", ID: "a", Relation: tuple.Ellipsis}}, "fdoc\x001\x00viewer\x00user\x00a\x00\x00", true},
		{tuple.Filter{ResourceType: "doc", ResourceID: "1", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "g", ID: "a", Relation: "member"}}, "fdoc\x001\x00viewer\x00g\x00a\x00member\x00", true},
	} {
		if got, exact := forwardPrefix(tc.f); string(got) != tc.want || exact != tc.exact {
			t.Errorf("forwardPrefix(%+v) = %q, %v, want %q, %v", tc.f, got, exact, tc.want, tc.exact)
		}
	}
	for _, tc := range []struct {
		f     tuple.ReverseFilter
		want  string
		exact bool
	}{
		{tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}, "ruser\x00", false},
		{tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user", ID: "a"}, ResourceType: "doc"}, "ruser\x00a\x00", false},
		{tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user", ID: "a", Relation: tuple.Ellipsis}, ResourceType: "doc"}, "ruser\x00a\x00\x00doc\x00", false},
		{tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "g", ID: "a", Relation: "member"}, ResourceType: "doc", Relation: "viewer"}, "rg\x00a\x00member\x00doc\x00viewer\x00", true},
	} {
		if got, exact := reversePrefix(tc.f); string(got) != tc.want || exact != tc.exact {
			t.Errorf("reversePrefix(%+v) = %q, %v, want %q, %v", tc.f, got, exact, tc.want, tc.exact)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte("f"), []byte("g")},
		{[]byte("a\x00"), []byte("a\x01")},
		{[]byte("a\xff"), []byte("b")},
		{[]byte("\xff\xff"), nil},
	} {
		if got := prefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("prefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	exp := time.Date(2300, 1, 2, 3, 4, 5, 6, time.UTC) // beyond unix nanoseconds
	for _, s := range []string{
		"doc:1#viewer@user:a",
		`doc:1#viewer@user:a[weekdays]`,
		`doc:1#viewer@user:a[weekdays:{}]`,
		`doc:1#viewer@user:a[ip:{"cidr":"10.0.0.0/8","n":12345678901234567890,"f":1.5e-7,"l":[1,"x",null,true],"o":{"k":{}}}]`,
		`doc:1#viewer@user:a[expiration:2027-01-01T00:00:00.123456789Z]`,
	} {
		r, err := tuple.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		rs := []tuple.Relationship{r}
		if r.Caveat == nil {
			r2 := r
			r2.Expiration = exp
			rs = append(rs, r2)
		}
		for _, r := range rs {
			v, err := decodeValue(appendValue(nil, r))
			if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			got := v.relationship(r.Key())
			if v.tombstone || !reflect.DeepEqual(got, r) {
				t.Errorf("round trip of %s = %s (%#v)", r, got, got.Caveat)
			}
		}
	}
	v, err := decodeValue(tombstoneValue)
	if err != nil || !v.tombstone {
		t.Errorf("tombstone decodes as %+v, %v", v, err)
	}
}

func TestDecodeValueCorrupt(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		{1},
		{2, 0},    // unknown version
		{1, 0x08}, // unknown flag
		{1, flagTombstone | flagCaveat},
		{1, 0, 0},               // trailing byte
		{1, flagCaveat, 5, 'a'}, // name past the end
		{1, flagCaveat, 0, 0},   // empty caveat name
		{1, flagCaveat, 1, 'a', 2, '[', ']'},
		{1, flagCaveat, 1, 'a', 4, 'n', 'u', 'l', 'l'},
		{1, flagCaveat, 1, 'a', 4, '{', '}', '{', '}'},
		{1, flagExpiration, 0},                                                                   // missing nanoseconds
		{1, flagExpiration, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03},                                     // nanoseconds = 1e9
		{1, flagExpiration, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}, // varint overflow
	} {
		if _, err := decodeValue(b); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("decodeValue(%x) err = %v, want ErrCorrupt", b, err)
		}
	}
}

func TestChangeChunkRoundTrip(t *testing.T) {
	hdr := changeHeader{time: time.Date(2026, 11, 24, 1, 2, 3, 4, time.UTC), caller: "svc:crm", schemaChanged: true}
	var changes []store.Change
	for i, s := range []string{"doc:1#viewer@user:a", `doc:2#viewer@g:x#member[c:{"a":1}]`, "doc:3#owner@user:*"} {
		r, err := tuple.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		op := []store.Op{store.OpTouch, store.OpCreate, store.OpDelete}[i]
		if op == store.OpDelete {
			r = tuple.Relationship{Resource: r.Resource, Relation: r.Relation, Subject: r.Subject}
		}
		changes = append(changes, store.Change{Op: op, Relationship: r})
	}
	for _, seq := range []uint32{0, 3} {
		var b []byte
		if seq == 0 {
			b = appendChangeHeader(nil, hdr)
		} else {
			b = []byte{changelogVersion1}
		}
		b = appendChanges(b, changes)
		gotHdr, got, err := decodeChangeChunk(b, seq)
		if err != nil {
			t.Fatal(err)
		}
		wantHdr := hdr
		if seq != 0 {
			wantHdr = changeHeader{}
		}
		if !gotHdr.time.Equal(wantHdr.time) || gotHdr.caller != wantHdr.caller || gotHdr.schemaChanged != wantHdr.schemaChanged {
			t.Errorf("chunk %d header = %+v, want %+v", seq, gotHdr, wantHdr)
		}
		if !reflect.DeepEqual(got, changes) {
			t.Errorf("chunk %d changes = %+v, want %+v", seq, got, changes)
		}
		for i := range b {
			if _, _, err := decodeChangeChunk(b[:i], seq); !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("chunk %d truncated to %d bytes: err = %v, want ErrCorrupt", seq, i, err)
			}
		}
	}
}

// FuzzDecodeValue: decoding never panics, and whatever decodes re-encodes
// to the same bytes.
func FuzzDecodeValue(f *testing.F) {
	r, _ := tuple.Parse(`doc:1#viewer@user:a[c:{"a":1,"b":[true]}][expiration:2027-01-01T00:00:00Z]`)
	f.Add(appendValue(nil, r))
	f.Add(tombstoneValue)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeValue(b)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		var again []byte
		if v.tombstone {
			again = tombstoneValue
		} else {
			again = appendValue(nil, v.relationship(tuple.Key{}))
		}
		v2, err := decodeValue(again)
		if err != nil || !reflect.DeepEqual(v, v2) {
			t.Fatalf("re-decode of %x = %+v, %v; want %+v", again, v2, err, v)
		}
	})
}

// FuzzDecodeKey: key decoding never panics; decoded keys re-encode to the
// same bytes.
func FuzzDecodeKey(f *testing.F) {
	k := tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "g", ID: "x", Relation: "member"}}
	f.Add(appendRev(forwardTupleKey(nil, k), 3))
	f.Add(appendRev(reverseTupleKey(nil, k), 3))
	f.Add([]byte("f\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, rev, err := decodeVersionKey(b)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		enc := forwardTupleKey
		if b[0] == tagReverse {
			enc = reverseTupleKey
		}
		if again := appendRev(enc(nil, k), rev); !bytes.Equal(again, b) {
			t.Fatalf("re-encode of %q = %q", b, again)
		}
	})
}

// FuzzDecodeChangeChunk: never panics.
func FuzzDecodeChangeChunk(f *testing.F) {
	r, _ := tuple.Parse(`doc:1#viewer@user:a[c:{"a":1}]`)
	f.Add(appendChanges(appendChangeHeader(nil, changeHeader{caller: "x"}), []store.Change{{Op: store.OpTouch, Relationship: r}}), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		if _, _, err := decodeChangeChunk(b, seq%2); err != nil && !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("error not ErrCorrupt: %v", err)
		}
	})
}

// TestExpiryKey checks that expiry index keys sort by expiration (before
// 1970 too) and round-trip, and that expiryBound ends a scan exactly after
// the given instant.
func TestExpiryKey(t *testing.T) {
	fkey := appendRev(forwardTupleKey(nil, mustKey(t, "doc:1#viewer@user:a")), 7)
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 999_999_999).UTC(),
		time.Unix(0, 0).UTC(),
		time.Unix(0, 1).UTC(),
		time.Date(2030, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
	}
	var prev []byte
	for _, tm := range times {
		k := expiryKey(nil, tm, fkey)
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			t.Errorf("key of %v does not sort after the previous one", tm)
		}
		prev = k
		got, gotF, err := decodeExpiryKey(k)
		if err != nil || !got.Equal(tm) || !bytes.Equal(gotF, fkey) {
			t.Errorf("decode(expiryKey(%v)) = %v, %q, %v", tm, got, gotF, err)
		}
		if bytes.Compare(k, expiryBound(tm)) >= 0 {
			t.Errorf("key of %v not below expiryBound(itself)", tm)
		}
		if bytes.Compare(k, expiryBound(tm.Add(-1))) < 0 {
			t.Errorf("key of %v below expiryBound(a nanosecond earlier)", tm)
		}
	}
	for _, bad := range [][]byte{nil, {tagExpiry}, expiryKey(nil, times[0], []byte{tagReverse, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
		append(append([]byte{tagExpiry}, make([]byte, 8)...), append([]byte{0xff, 0xff, 0xff, 0xff}, fkey...)...)} {
		if _, _, err := decodeExpiryKey(bad); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("decodeExpiryKey(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}
