package schema

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"testing"
)

var errorComment = regexp.MustCompile(`^/\* ERROR ("(?:[^"\\]|\\.)*") \*/$`)

// expectedErrors scans src for /* ERROR "message" */ comments, in the
// manner of go/parser's error tests, and returns "file:line:col: message"
// with the position of the token just before each comment.
func expectedErrors(t *testing.T, filename, src string) []string {
	t.Helper()
	var s Scanner
	s.Init(filename, src, nil)
	var want []string
	prev := NoPos
	for {
		pos, tok, lit := s.Scan()
		if tok == EOF {
			break
		}
		if tok != COMMENT {
			prev = pos
			continue
		}
		m := errorComment.FindStringSubmatch(lit)
		if m == nil {
			continue
		}
		msg, err := strconv.Unquote(m[1])
		if err != nil {
			t.Fatalf("bad ERROR comment %s: %v", lit, err)
		}
		if prev == NoPos {
			t.Fatalf("ERROR comment %s has no token before it", lit)
		}
		want = append(want, s.lines.position(prev).String()+": "+msg)
	}
	return want
}

// TestAnnotatedErrors compiles each testdata/errors/*.zed file and expects
// exactly the errors its ERROR comments announce, at the annotated tokens.
func TestAnnotatedErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.zed")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/errors/*.zed files (%v)", err)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			want := expectedErrors(t, name, string(b))
			var got []string
			if _, err := Compile(name, string(b)); err != nil {
				for _, e := range err.(ErrorList) {
					got = append(got, e.Error())
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			gotSet := map[string]bool{}
			for _, g := range got {
				gotSet[g] = true
			}
			wantSet := map[string]bool{}
			for _, w := range want {
				wantSet[w] = true
				if !gotSet[w] {
					t.Errorf("missing error: %s", w)
				}
			}
			for _, g := range got {
				if !wantSet[g] {
					t.Errorf("unexpected error: %s", g)
				}
			}
		})
	}
}
