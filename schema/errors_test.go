package schema

import (
	"errors"
	"testing"
)

func TestErrorList(t *testing.T) {
	var l ErrorList
	if l.Err() != nil {
		t.Fatal("empty list is an error")
	}
	l.Add(Position{Filename: "b.zed", Line: 1, Column: 1}, "in b")
	l.Add(Position{Filename: "a.zed", Line: 3, Column: 9}, "second")
	l.Add(Position{Filename: "a.zed", Line: 3, Column: 2}, "first")
	l.Add(Position{Filename: "a.zed", Line: 1, Column: 5}, "earliest")
	l.Sort()
	want := "a.zed:1:5: earliest\na.zed:3:2: first\na.zed:3:9: second\nb.zed:1:1: in b"
	if got := l.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	if !errors.Is(l.Err(), ErrInvalidSchema) {
		t.Error("errors.Is(list, ErrInvalidSchema) = false")
	}
	l.RemoveDuplicates()
	want = "a.zed:1:5: earliest\na.zed:3:2: first\nb.zed:1:1: in b"
	if got := l.Error(); got != want {
		t.Errorf("after RemoveDuplicates:\n%s\nwant\n%s", got, want)
	}
}

func TestErrorWithoutFilename(t *testing.T) {
	e := &Error{Pos: Position{Line: 2, Column: 7}, Msg: "boom"}
	if got := e.Error(); got != "2:7: boom" {
		t.Errorf("got %q", got)
	}
}

func TestScannerReportsErrorsThroughCallback(t *testing.T) {
	var s Scanner
	var got []string
	s.Init("t.zed", "definition $ {\n /* open", func(pos Position, msg string) {
		got = append(got, pos.String()+": "+msg)
	})
	var toks []Token
	for {
		_, tok, _ := s.Scan()
		toks = append(toks, tok)
		if tok == EOF {
			break
		}
	}
	want := []string{`t.zed:1:12: invalid character "$"`, "t.zed:2:2: comment not terminated"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("errors = %q, want %q", got, want)
	}
	wantToks := []Token{DEFINITION, ILLEGAL, LBRACE, COMMENT, EOF}
	if len(toks) != len(wantToks) {
		t.Fatalf("tokens = %v, want %v", toks, wantToks)
	}
	for i := range toks {
		if toks[i] != wantToks[i] {
			t.Errorf("token %d = %v, want %v", i, toks[i], wantToks[i])
		}
	}
	if s.ErrorCount != 2 {
		t.Errorf("ErrorCount = %d, want 2", s.ErrorCount)
	}
}
