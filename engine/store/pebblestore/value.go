package pebblestore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/internal/wire"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Value layout, format version 1 (both index entries of a version carry the
// same value, so either index answers without a second lookup):
//
//	byte 0   encoding version (1)
//	byte 1   flags: 0x01 tombstone, 0x02 caveat, 0x04 expiration
//	caveat:      uvarint len, name; uvarint len, context JSON (len 0: nil context)
//	expiration:  varint unix seconds, uvarint nanoseconds (< 1e9)
//
// Seconds and nanoseconds rather than unix nanoseconds, so every
// representable time.Time survives, not only years 1678 to 2262.
const valueVersion1 = 1

const (
	flagTombstone  = 0x01
	flagCaveat     = 0x02
	flagExpiration = 0x04
	flagsKnown     = flagTombstone | flagCaveat | flagExpiration
)

// version is one decoded index value.
type version struct {
	tombstone  bool
	caveat     *tuple.Caveat
	expiration time.Time
}

// tombstoneValue is the value of a deleted version.
var tombstoneValue = []byte{valueVersion1, flagTombstone}

// appendValue appends the value of a live version of r.
func appendValue(b []byte, r tuple.Relationship) []byte {
	var flags byte
	if r.Caveat != nil {
		flags |= flagCaveat
	}
	if !r.Expiration.IsZero() {
		flags |= flagExpiration
	}
	b = append(b, valueVersion1, flags)
	if r.Caveat != nil {
		b = appendString(b, r.Caveat.Name)
		if r.Caveat.Context == nil {
			b = binary.AppendUvarint(b, 0)
		} else {
			b = appendString(b, tuple.FormatContext(r.Caveat.Context))
		}
	}
	if !r.Expiration.IsZero() {
		b = appendTime(b, r.Expiration)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads the fields of a value; the first error sticks.
type decoder struct{ wire.Decoder }

func newDecoder(b []byte) *decoder {
	return &decoder{wire.Decoder{B: b, Corrupt: corruptValue}}
}

// corruptValue is the error of a value refused for why.
func corruptValue(why string) error {
	return fmt.Errorf("pebblestore: value: %s: %w", why, store.ErrCorrupt)
}

// decodeValue decodes an index value.
func decodeValue(b []byte) (version, error) {
	d := newDecoder(b)
	v := d.readValue()
	d.End()
	return v, d.Err
}

func (d *decoder) readValue() version {
	var v version
	if ver := d.Byte(); d.Err == nil && ver != valueVersion1 {
		d.Fail(fmt.Sprintf("unknown value version %d", ver))
	}
	flags := d.Byte()
	if d.Err != nil {
		return v
	}
	if flags&^flagsKnown != 0 || flags&flagTombstone != 0 && flags != flagTombstone {
		d.Fail(fmt.Sprintf("bad flags %#x", flags))
		return v
	}
	v.tombstone = flags&flagTombstone != 0
	if flags&flagCaveat != 0 {
		name := d.Bytes()
		ctxJSON := d.Bytes()
		if d.Err != nil {
			return v
		}
		if len(name) == 0 {
			d.Fail("empty caveat name")
			return v
		}
		v.caveat = &tuple.Caveat{Name: string(name)}
		if len(ctxJSON) > 0 {
			ctx, err := decodeContext(ctxJSON)
			if err != nil {
				d.Fail(err.Error())
				return v
			}
			v.caveat.Context = ctx
		}
	}
	if flags&flagExpiration != 0 {
		v.expiration = d.Time()
	}
	return v
}

// valueExpiration returns the expiration of an index value, the zero time
// for a tombstone or a relationship that never expires, without decoding
// the caveat context (GC reads many values and needs only this).
func valueExpiration(b []byte) (time.Time, error) {
	d := newDecoder(b)
	if ver := d.Byte(); d.Err == nil && ver != valueVersion1 {
		d.Fail(fmt.Sprintf("unknown value version %d", ver))
	}
	flags := d.Byte()
	if d.Err != nil || flags&flagExpiration == 0 {
		return time.Time{}, d.Err
	}
	if flags&flagCaveat != 0 {
		d.Bytes()
		d.Bytes()
	}
	exp := d.Time()
	d.End()
	return exp, d.Err
}

// decodeContext decodes caveat context JSON, keeping numbers as
// json.Number so that they round-trip exactly.
func decodeContext(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("caveat context: %v", err)
	}
	if m == nil || dec.More() {
		return nil, fmt.Errorf("caveat context: not one JSON object")
	}
	return m, nil
}

// relationship combines a decoded key and a live version.
func (v version) relationship(k tuple.Key) tuple.Relationship {
	return tuple.Relationship{
		Resource:   k.Resource,
		Relation:   k.Relation,
		Subject:    k.Subject,
		Caveat:     v.caveat,
		Expiration: v.expiration,
	}
}

// Changelog layout, format version 1. A change set is stored in chunks
// under 'c' rev seq, so that a large import never makes one huge value:
//
//	byte 0   encoding version (1)
//	chunk 0 only, the header:
//	         varint unix seconds, uvarint nanoseconds (commit time)
//	         uvarint len, caller
//	         byte: 1 if the schema changed
//	every chunk:
//	         uvarint n, then n changes, each:
//	         byte op; uvarint len, forward tuple key; uvarint len, index value
const changelogVersion1 = 1

// changeHeader is the chunk-0 header of a change set.
type changeHeader struct {
	time          time.Time
	caller        string
	schemaChanged bool
}

func appendChangeHeader(b []byte, h changeHeader) []byte {
	b = append(b, changelogVersion1)
	b = appendTime(b, h.time)
	b = appendString(b, h.caller)
	if h.schemaChanged {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendChanges appends the change list of one chunk.
func appendChanges(b []byte, changes []store.Change) []byte {
	b = binary.AppendUvarint(b, uint64(len(changes)))
	var scratch []byte
	for _, c := range changes {
		b = append(b, byte(c.Op))
		scratch = forwardTupleKey(scratch[:0], c.Relationship.Key())
		b = binary.AppendUvarint(b, uint64(len(scratch)))
		b = append(b, scratch...)
		if c.Op == store.OpDelete {
			scratch = append(scratch[:0], tombstoneValue...)
		} else {
			scratch = appendValue(scratch[:0], c.Relationship)
		}
		b = binary.AppendUvarint(b, uint64(len(scratch)))
		b = append(b, scratch...)
	}
	return b
}

// decodeChangeHeader decodes only the header of chunk 0.
func decodeChangeHeader(b []byte) (changeHeader, error) {
	d := newDecoder(b)
	if ver := d.Byte(); d.Err == nil && ver != changelogVersion1 {
		d.Fail(fmt.Sprintf("unknown changelog version %d", ver))
	}
	h := d.readHeader()
	return h, d.Err
}

func (d *decoder) readHeader() changeHeader {
	var h changeHeader
	h.time = d.Time()
	h.caller = string(d.Bytes())
	switch d.Byte() {
	case 0:
	case 1:
		h.schemaChanged = true
	default:
		d.Fail("bad schema flag")
	}
	return h
}

// decodeChangeChunk decodes one chunk. The header is returned for chunk 0.
func decodeChangeChunk(b []byte, seq uint32) (changeHeader, []store.Change, error) {
	d := newDecoder(b)
	var h changeHeader
	if ver := d.Byte(); d.Err == nil && ver != changelogVersion1 {
		d.Fail(fmt.Sprintf("unknown changelog version %d", ver))
	}
	if seq == 0 {
		h = d.readHeader()
	}
	n := d.Uvarint()
	if d.Err == nil && n > uint64(len(d.B)) {
		d.Fail("change count past the end")
	}
	var changes []store.Change
	if d.Err == nil && n > 0 {
		changes = make([]store.Change, 0, n)
	}
	for i := uint64(0); i < n && d.Err == nil; i++ {
		op := store.Op(d.Byte())
		tk := d.Bytes()
		val := d.Bytes()
		if d.Err != nil {
			break
		}
		if op != store.OpTouch && op != store.OpCreate && op != store.OpDelete {
			d.Fail(fmt.Sprintf("unknown op %d", op))
			break
		}
		if len(tk) == 0 || tk[0] != tagForward {
			d.Fail("change key is not a forward tuple key")
			break
		}
		k, err := decodeTupleKey(tk)
		if err != nil {
			d.Err = err
			break
		}
		v, err := decodeValue(val)
		if err != nil {
			d.Err = err
			break
		}
		if v.tombstone != (op == store.OpDelete) {
			d.Fail("change op disagrees with its value")
			break
		}
		changes = append(changes, store.Change{Op: op, Relationship: v.relationship(k)})
	}
	d.End()
	if d.Err != nil {
		return changeHeader{}, nil, d.Err
	}
	return h, changes, nil
}
