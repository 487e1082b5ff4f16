package schema

import "fmt"

// ErrorHandler is called by the Scanner for each lexical error.
type ErrorHandler func(pos Position, msg string)

// Scanner tokenises schema source. Comments are returned as COMMENT tokens;
// the body of a caveat is read raw, as CEL, with ScanCEL.
type Scanner struct {
	src   string
	lines *lineTable
	err   ErrorHandler

	off        int // offset of the next unread byte
	ErrorCount int // number of errors reported
}

// Init prepares s to scan src (named filename in positions); err, if not
// nil, receives every lexical error.
func (s *Scanner) Init(filename, src string, err ErrorHandler) {
	s.initAt(filename, src, 0, err)
}

// initAt is Init for a text whose positions start at base+1.
func (s *Scanner) initAt(filename, src string, base int, err ErrorHandler) {
	lt := newLineTable(filename, src)
	lt.base = base
	*s = Scanner{src: src, lines: lt, err: err}
}

// at converts a byte offset into a Pos.
func (s *Scanner) at(off int) Pos { return Pos(s.lines.base + off + 1) }

func (s *Scanner) error(off int, msg string) {
	s.ErrorCount++
	if s.err != nil {
		s.err(s.lines.position(s.at(off)), msg)
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// Scan returns the next token, its position and its literal text (the
// identifier or comment text; empty for operators).
func (s *Scanner) Scan() (pos Pos, tok Token, lit string) {
	// Skip white space.
	for s.off < len(s.src) {
		c := s.src[s.off]
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			break
		}
		s.off++
	}
	start := s.off
	pos = s.at(start)
	if s.off >= len(s.src) {
		return pos, EOF, ""
	}
	c := s.src[s.off]
	s.off++
	switch {
	case isLetter(c):
		for s.off < len(s.src) && (isLetter(s.src[s.off]) || isDigit(s.src[s.off])) {
			s.off++
		}
		lit = s.src[start:s.off]
		return pos, lookupKeyword(lit), lit
	case isDigit(c):
		for s.off < len(s.src) && (isLetter(s.src[s.off]) || isDigit(s.src[s.off])) {
			s.off++
		}
		lit = s.src[start:s.off]
		s.error(start, fmt.Sprintf("unexpected %q: names must start with a letter", lit))
		return pos, ILLEGAL, lit
	}
	switch c {
	case '{':
		tok = LBRACE
	case '}':
		tok = RBRACE
	case '(':
		tok = LPAREN
	case ')':
		tok = RPAREN
	case '<':
		tok = LT
	case '>':
		tok = GT
	case ':':
		tok = COLON
	case ';':
		tok = SEMICOLON
	case ',':
		tok = COMMA
	case '#':
		tok = HASH
	case '|':
		tok = PIPE
	case '*':
		tok = STAR
	case '.':
		tok = DOT
		if s.off+1 < len(s.src) && s.src[s.off] == '.' && s.src[s.off+1] == '.' {
			s.off += 2
			tok = ELLIPSIS
		}
	case '"', '\'':
		// A string literal (import paths), in double or single quotes: no
		// escapes, no newlines.
		for s.off < len(s.src) && s.src[s.off] != c && s.src[s.off] != '\n' {
			s.off++
		}
		if s.off >= len(s.src) || s.src[s.off] != c {
			s.error(start, "string literal not terminated")
			return pos, ILLEGAL, s.src[start:s.off]
		}
		s.off++
		return pos, STRING, s.src[start:s.off]
	case '@':
		tok = AT
	case '=':
		tok = ASSIGN
	case '+':
		tok = PLUS
	case '&':
		tok = AMP
	case '-':
		tok = MINUS
		if s.off < len(s.src) && s.src[s.off] == '>' {
			s.off++
			tok = ARROW
		}
	case '/':
		tok = SLASH
		if s.off < len(s.src) && (s.src[s.off] == '/' || s.src[s.off] == '*') {
			return pos, COMMENT, s.scanComment(start)
		}
	default:
		// Consume a whole UTF-8 sequence so one bad character is one error.
		for s.off < len(s.src) && s.src[s.off]&0xC0 == 0x80 {
			s.off++
		}
		lit = s.src[start:s.off]
		s.error(start, fmt.Sprintf("invalid character %q", lit))
		return pos, ILLEGAL, lit
	}
	return pos, tok, ""
}

// scanComment reads a // or /* */ comment starting at start (at the "/").
func (s *Scanner) scanComment(start int) string {
	if s.src[s.off] == '/' {
		for s.off < len(s.src) && s.src[s.off] != '\n' {
			s.off++
		}
		end := s.off
		if end > start && s.src[end-1] == '\r' {
			end--
		}
		return s.src[start:end]
	}
	s.off++ // the '*'
	for s.off+1 < len(s.src) {
		if s.src[s.off] == '*' && s.src[s.off+1] == '/' {
			s.off += 2
			return s.src[start:s.off]
		}
		s.off++
	}
	s.off = len(s.src)
	s.error(start, "comment not terminated")
	return s.src[start:]
}

// ScanCEL reads the body of a caveat, just after its "{", up to the
// matching "}" (which it consumes). It tracks nested braces and skips CEL
// string literals and // comments so that braces inside them do not count.
// It returns the position of the body's first byte and its raw text.
func (s *Scanner) ScanCEL() (pos Pos, body string, rbrace Pos, ok bool) {
	start := s.off
	pos = s.at(start)
	depth := 0
	for s.off < len(s.src) {
		c := s.src[s.off]
		switch c {
		case '{':
			depth++
		case '}':
			if depth == 0 {
				body = s.src[start:s.off]
				rbrace = s.at(s.off)
				s.off++
				return pos, body, rbrace, true
			}
			depth--
		case '/':
			if s.off+1 < len(s.src) && s.src[s.off+1] == '/' {
				for s.off < len(s.src) && s.src[s.off] != '\n' {
					s.off++
				}
				continue
			}
		case '"', '\'':
			raw := isRawPrefix(s.src[start:s.off])
			quote := s.off
			if !s.skipCELString(raw) {
				s.error(quote, "string literal not terminated in caveat expression")
				return pos, s.src[start:], s.at(len(s.src)), false
			}
			continue
		}
		s.off++
	}
	s.error(start, "caveat expression not terminated by \"}\"")
	return pos, s.src[start:], s.at(len(s.src)), false
}

// skipCELString skips a CEL string literal at s.off ('…', "…", or the
// triple-quoted forms). It reports false when the literal is unterminated.
func (s *Scanner) skipCELString(raw bool) bool {
	q := s.src[s.off]
	triple := s.off+2 < len(s.src) && s.src[s.off+1] == q && s.src[s.off+2] == q
	if triple {
		s.off += 3
	} else {
		s.off++
	}
	for s.off < len(s.src) {
		c := s.src[s.off]
		switch {
		case c == '\\' && !raw:
			s.off += 2
			continue
		case c == '\n' && !triple:
			return false
		case c == q:
			if !triple {
				s.off++
				return true
			}
			if s.off+2 < len(s.src) && s.src[s.off+1] == q && s.src[s.off+2] == q {
				s.off += 3
				return true
			}
		}
		s.off++
	}
	s.off = len(s.src)
	return false
}

// isRawPrefix reports whether the text before a quote ends with a CEL raw
// string prefix: r or R (also as the second letter of br"...").
func isRawPrefix(before string) bool {
	n := len(before)
	return n >= 1 && (before[n-1] == 'r' || before[n-1] == 'R')
}
