// Package names holds the one definition of what a valid name is in Pemba:
// object types, relations and permissions, caveats and object IDs. The
// schema checker, relationship parsing and validation (engine/tuple) and the
// API all apply these rules, so a name accepted in one place is accepted in
// every other.
//
// The rules are SpiceDB's (the validation patterns of authzed/api), with two
// deliberate widenings that Pemba has always had and that stored data may
// rely on; see docs/schema.md:
//
//   - a name segment may be 1 or 2 characters long (SpiceDB wants 3 to 64);
//   - an object ID may also contain "." and "~".
//
// An object type or caveat name is one or more segments joined by "/"
// ("org/identity_team/group"): every segment is lowercase letters, digits
// and "_", starts with a letter and does not end with "_"; a prefix segment
// has at most MaxPrefixLen characters, the last one at most MaxNameLen, and
// the whole at most MaxTypeLen. It imports only the standard library.
package names

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits. They are part of the storage format: raising them is compatible,
// lowering them is not.
const (
	// MaxNameLen is the longest relation, permission or caveat parameter
	// name, and the longest last segment of a type or caveat name.
	MaxNameLen = 64
	// MaxPrefixLen is the longest prefix segment of a type or caveat name
	// (SpiceDB's object_type pattern allows 63 before a "/").
	MaxPrefixLen = 63
	// MaxTypeLen is the longest object type or caveat name, prefixes and
	// "/" included (SpiceDB's max_bytes).
	MaxTypeLen = 128
	// MaxIDLen is the longest object ID.
	MaxIDLen = 1024
	// Wildcard is the subject ID meaning every object of a type.
	Wildcard = "*"
)

// CheckName reports why s is not a valid relation, permission or caveat
// parameter name (one segment), or nil.
func CheckName(s string) error {
	return checkSegment(s, MaxNameLen)
}

// CheckPrefix reports why s is not a valid prefix segment of a type or
// caveat name (the "org" of org/group), or nil.
func CheckPrefix(s string) error {
	return checkSegment(s, MaxPrefixLen)
}

// CheckType reports why s is not a valid object type name, or nil: one or
// more segments separated by "/".
func CheckType(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > MaxTypeLen {
		return fmt.Errorf("longer than %d characters", MaxTypeLen)
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '/' {
			continue
		}
		limit := MaxNameLen
		if i < len(s) {
			limit = MaxPrefixLen
		}
		if err := checkSegment(s[start:i], limit); err != nil {
			if i < len(s) {
				return fmt.Errorf("prefix %q: %w", s[start:i], err)
			}
			return err
		}
		start = i + 1
	}
	return nil
}

// CheckCaveat reports why s is not a valid caveat name, or nil. Caveat
// names follow the rules of object types: they may be prefixed.
func CheckCaveat(s string) error { return CheckType(s) }

func checkSegment(seg string, limit int) error {
	switch {
	case seg == "":
		return errors.New("must not be empty")
	case len(seg) > limit:
		return fmt.Errorf("a name is at most %d characters", limit)
	case seg[0] < 'a' || seg[0] > 'z':
		return errors.New("must start with a lowercase letter")
	case seg[len(seg)-1] == '_':
		return errors.New("must not end with \"_\"")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("%s is not allowed (use a-z, 0-9, _)", describeChar(seg, i))
		}
	}
	return nil
}

// describeChar names the character at byte offset i of s for an error: the
// whole character (not one byte of its UTF-8 encoding), its code point
// when it is not ASCII, and its position counted in characters from 1.
func describeChar(s string, i int) string {
	pos := utf8.RuneCountInString(s[:i]) + 1
	r, size := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && size <= 1:
		return fmt.Sprintf("byte 0x%02x (not UTF-8) at position %d", s[i], pos)
	case r >= utf8.RuneSelf:
		return fmt.Sprintf("character %q (%U) at position %d", r, r, pos)
	}
	return fmt.Sprintf("character %q at position %d", r, pos)
}

// CheckID reports why s is not a valid object ID, or nil: 1 to MaxIDLen
// characters from A-Z a-z 0-9 and _ - = + / | . ~. The wildcard "*" is
// accepted only when allowWildcard is true (subject IDs).
func CheckID(s string, allowWildcard bool) error {
	if s == Wildcard {
		if allowWildcard {
			return nil
		}
		return errors.New("a wildcard is allowed only as a subject")
	}
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("longer than %d characters", MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if !IDChar(s[i]) {
			return fmt.Errorf("%s is not allowed in an id (use A-Z a-z 0-9 and _ - = + / | . ~)", describeChar(s, i))
		}
	}
	return nil
}

// IDChar reports whether c may appear in an object ID.
func IDChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '=', '+', '/', '|', '.', '~':
		return true
	}
	return false
}
