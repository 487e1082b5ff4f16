package schema

import "fmt"

// Position is a place in schema source, as in go/token.
type Position struct {
	Filename string
	Offset   int // byte offset, from 0
	Line     int // from 1
	Column   int // from 1, in bytes
}

// IsValid reports whether the position is known.
func (p Position) IsValid() bool { return p.Line > 0 }

// String renders file:line:column, line:column, or "-" when unknown.
func (p Position) String() string {
	s := p.Filename
	if p.IsValid() {
		if s != "" {
			s += ":"
		}
		s += fmt.Sprintf("%d:%d", p.Line, p.Column)
	}
	if s == "" {
		s = "-"
	}
	return s
}

// Pos is a compact source position in the AST: a byte offset plus one, so
// that the zero value, NoPos, means "no position". File.Position expands it.
type Pos int

// NoPos is the zero Pos: no position.
const NoPos Pos = 0

// IsValid reports whether p is a real position.
func (p Pos) IsValid() bool { return p != NoPos }

// lineTable maps byte offsets in one source text to Positions. Pos values
// of the text start at base+1, so that the files of a schema compiled from
// several files (see LoadFiles) have disjoint positions, as in a
// go/token.FileSet.
type lineTable struct {
	filename string
	base     int
	lines    []int // offsets of the first byte of each line
	size     int
}

// contains reports whether p is a position of this text (its end included).
func (t *lineTable) contains(p Pos) bool {
	return int(p) > t.base && int(p) <= t.base+t.size+1
}

func newLineTable(filename, src string) *lineTable {
	lines := make([]int, 1, 1+len(src)/32)
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			lines = append(lines, i+1)
		}
	}
	return &lineTable{filename: filename, lines: lines, size: len(src)}
}

// position expands p; NoPos yields a Position with only the file name.
func (t *lineTable) position(p Pos) Position {
	if p == NoPos {
		return Position{Filename: t.filename}
	}
	off := int(p) - 1 - t.base
	if off < 0 {
		off = 0
	}
	if off > t.size {
		off = t.size
	}
	// Largest i with lines[i] <= off.
	lo, hi := 0, len(t.lines)
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if t.lines[m] <= off {
			lo = m
		} else {
			hi = m
		}
	}
	return Position{Filename: t.filename, Offset: off, Line: lo + 1, Column: off - t.lines[lo] + 1}
}

// line returns the 1-based line of p (0 for NoPos).
func (t *lineTable) line(p Pos) int {
	if p == NoPos {
		return 0
	}
	return t.position(p).Line
}
