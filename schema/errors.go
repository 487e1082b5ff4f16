package schema

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinel errors. Errors returned by Parse, Compile and FormatSource are an
// ErrorList; errors.Is(err, ErrInvalidSchema) holds for every non-empty one.
var (
	// ErrInvalidSchema marks an ErrorList: the schema text has syntax or
	// semantic errors.
	ErrInvalidSchema = errors.New("invalid schema")
	// ErrCaveatParam marks a caveat context value that cannot be converted to
	// its parameter's declared type; the error is a *CaveatParamError.
	ErrCaveatParam = errors.New("schema: caveat parameter has the wrong type")
	// ErrCaveatEval marks a runtime failure of a caveat expression (such as
	// a division by zero or a missing map key).
	ErrCaveatEval = errors.New("schema: caveat evaluation failed")
	// ErrCaveatNotCompiled is returned by Evaluate on a Caveat that was not
	// built by Compile.
	ErrCaveatNotCompiled = errors.New("schema: caveat was not compiled")
)

// Error is one error in schema source, at a position.
type Error struct {
	Pos Position
	Msg string
}

// Error renders file:line:col: message (or line:col: message without a
// file name).
func (e *Error) Error() string {
	if e.Pos.Filename != "" || e.Pos.IsValid() {
		return e.Pos.String() + ": " + e.Msg
	}
	return e.Msg
}

// Is makes errors.Is(err, ErrInvalidSchema) true for one error as for
// the ErrorList it belongs to.
func (e *Error) Is(target error) bool { return target == ErrInvalidSchema }

// ErrorList is a list of *Error, in the manner of go/scanner.ErrorList. The
// zero value is an empty list ready to use.
type ErrorList []*Error

// Add appends an error at pos.
func (l *ErrorList) Add(pos Position, msg string) {
	*l = append(*l, &Error{Pos: pos, Msg: msg})
}

// Len, Swap and Less implement sort.Interface: by file, line, column, then
// message.
func (l ErrorList) Len() int      { return len(l) }
func (l ErrorList) Swap(i, j int) { l[i], l[j] = l[j], l[i] }
func (l ErrorList) Less(i, j int) bool {
	a, b := l[i].Pos, l[j].Pos
	if a.Filename != b.Filename {
		return a.Filename < b.Filename
	}
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	if a.Column != b.Column {
		return a.Column < b.Column
	}
	return l[i].Msg < l[j].Msg
}

// Sort sorts the list by position.
func (l ErrorList) Sort() { sort.Sort(l) }

// RemoveDuplicates sorts the list and keeps only the first error of each
// line, since later errors on a line are usually consequences of the first.
func (l *ErrorList) RemoveDuplicates() {
	sort.Sort(l)
	var last Position
	i := 0
	for _, e := range *l {
		if e.Pos.Filename != last.Filename || e.Pos.Line != last.Line || i == 0 {
			last = e.Pos
			(*l)[i] = e
			i++
		}
	}
	*l = (*l)[:i]
}

// Error renders one error per line: file:line:col: message.
func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Is reports that a non-empty list is an ErrInvalidSchema.
func (l ErrorList) Is(target error) bool { return target == ErrInvalidSchema && len(l) > 0 }

// Err returns l as an error, or nil when l is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// CaveatParamError reports a caveat context value that does not match its
// parameter's declared type.
type CaveatParamError struct {
	Caveat string // caveat name
	Param  string // parameter name
	Type   string // declared type, as written
	Reason string // what was wrong with the value
}

// Error names the caveat, the parameter, its type and the reason.
func (e *CaveatParamError) Error() string {
	return fmt.Sprintf("schema: caveat %q: parameter %q (%s): %s", e.Caveat, e.Param, e.Type, e.Reason)
}

// Is makes errors.Is(err, ErrCaveatParam) hold.
func (e *CaveatParamError) Is(target error) bool { return target == ErrCaveatParam }
