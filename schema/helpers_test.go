package schema

import (
	"os"
	"testing"
)

func mustCompileFile(t testing.TB, path string) *Schema {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(path, string(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
