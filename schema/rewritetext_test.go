package schema

import (
	"math/rand"
	"strings"
	"testing"
)

// TestRewriteStringRoundTrip renders random permission expressions with
// RewriteString and compiles the rendering again: it must mean the same
// rewrite (equal dumps), so a diff printed in schema syntax never
// misstates a permission through a misplaced parenthesis.
func TestRewriteStringRoundTrip(t *testing.T) {
	const defs = "use self\ndefinition user {}\ndefinition folder { relation v: user }\ndefinition doc {\n relation a: user\n relation b: user\n relation c: user\n relation p: folder\n"
	leaves := []string{"a", "b", "c", "nil", "self", "p->v", "p.all(v)", "p.any(v)"}
	ops := []string{" + ", " & ", " - "}
	rng := rand.New(rand.NewSource(1))
	var gen func(depth int) string
	gen = func(depth int) string {
		if depth == 0 || rng.Intn(3) == 0 {
			return leaves[rng.Intn(len(leaves))]
		}
		x := gen(depth-1) + ops[rng.Intn(len(ops))] + gen(depth-1)
		if rng.Intn(2) == 0 {
			x = "(" + x + ")"
		}
		return x
	}
	for i := 0; i < 2000; i++ {
		expr := gen(4)
		s1, err := Compile("t.zed", defs+" permission x = "+expr+"\n}")
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		text := RewriteString(s1.Definitions["doc"].Relations["x"].Rewrite)
		s2, err := Compile("t.zed", defs+" permission x = "+text+"\n}")
		if err != nil {
			t.Fatalf("%s rendered as %s: %v", expr, text, err)
		}
		d1, d2 := dumpRewrite(s1.Definitions["doc"].Relations["x"].Rewrite), dumpRewrite(s2.Definitions["doc"].Relations["x"].Rewrite)
		if d1 != d2 {
			t.Fatalf("%s rendered as %s changes meaning:\n%s\n%s", expr, text, d1, d2)
		}
		if strings.Contains(text, ".any(") {
			t.Fatalf("%s rendered as %s: .any is rendered as ->", expr, text)
		}
	}
}

func TestRewriteString(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"a + b - c", "a + b - c"},
		{"a - (b - c)", "a - (b - c)"},
		{"(a - b) - c", "a - b - c"},
		{"(a + b) & c", "a + b & c"},
		{"a + (b & c)", "a + (b & c)"},
		{"(a & b) + c", "(a & b) + c"},
		{"a - (b + c)", "a - b + c"},
		{"p.any(v) + nil", "p->v + nil"},
	}
	for _, tc := range tests {
		s, err := Compile("t.zed", "definition user {}\ndefinition folder { relation v: user }\ndefinition doc { relation a: user\n relation b: user\n relation c: user\n relation p: folder\n permission x = "+tc.expr+" }")
		if err != nil {
			t.Fatal(err)
		}
		if got := RewriteString(s.Definitions["doc"].Relations["x"].Rewrite); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.expr, got, tc.want)
		}
	}
}
