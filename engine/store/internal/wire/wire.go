// Package wire reads the varint encodings that the store's audit entries
// and Pebble's values share: unsigned and signed varints, length-prefixed
// bytes and strings, and times as seconds and nanoseconds.
package wire

import (
	"encoding/binary"
	"time"
)

// Decoder reads an encoding from B; the first error sticks in Err.
// Corrupt makes that error from the reason the encoding is refused.
type Decoder struct {
	B       []byte
	Err     error
	Corrupt func(why string) error
}

// Fail records why the encoding is refused, unless an error came first.
func (d *Decoder) Fail(why string) {
	if d.Err == nil {
		d.Err = d.Corrupt(why)
	}
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if d.Err != nil {
		return 0
	}
	if len(d.B) == 0 {
		d.Fail("truncated")
		return 0
	}
	c := d.B[0]
	d.B = d.B[1:]
	return c
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Fail("bad uvarint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Bytes reads a length-prefixed run of bytes, which shares B's memory.
func (d *Decoder) Bytes() []byte {
	n := d.Uvarint()
	if d.Err != nil {
		return nil
	}
	if n > uint64(len(d.B)) {
		d.Fail("length past the end")
		return nil
	}
	s := d.B[:n]
	d.B = d.B[n:]
	return s
}

// String reads a length-prefixed string.
func (d *Decoder) String() string { return string(d.Bytes()) }

// Time reads a time as signed seconds and unsigned nanoseconds since the
// Unix epoch, in UTC.
func (d *Decoder) Time() time.Time {
	sec := d.Varint()
	nsec := d.Uvarint()
	if d.Err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		d.Fail("nanoseconds out of range")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// End refuses bytes left after the encoding.
func (d *Decoder) End() {
	if d.Err == nil && len(d.B) != 0 {
		d.Fail("trailing bytes")
	}
}
