package schema

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// FuzzParse checks that parsing never panics, errors are sorted and
// positioned, and every accepted source formats to a fixed point that
// compiles to the same schema.
func FuzzParse(f *testing.F) {
	for _, tc := range validSchemas {
		f.Add(tc.src)
	}
	for _, tc := range invalidSchemas {
		f.Add(tc.src)
	}
	files, _ := filepath.Glob("testdata/*.zed")
	more, _ := filepath.Glob("testdata/format/*.input")
	for _, name := range append(files, more...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(joinTokens(r, genSchema(r)))
	}
	f.Fuzz(func(t *testing.T, src string) {
		file, err := Parse("fuzz.zed", src)
		if err != nil {
			list, ok := err.(ErrorList)
			if !ok || len(list) == 0 {
				t.Fatalf("Parse error %T is not a non-empty ErrorList", err)
			}
			if !sort.IsSorted(list) {
				t.Fatalf("errors not sorted: %v", list)
			}
			for _, e := range list {
				if !e.Pos.IsValid() || e.Pos.Offset > len(src) {
					t.Fatalf("error with bad position: %v (%+v)", e, e.Pos)
				}
			}
			// Partial trees must not make the checker or printer panic.
			_, _ = Check(file)
			_ = Format(file)
			return
		}
		if _, err := Check(file); err != nil {
			if list, ok := err.(ErrorList); !ok || len(list) == 0 || !sort.IsSorted(list) {
				t.Fatalf("Check error %v is not a sorted, non-empty ErrorList", err)
			}
		}
		checkRoundTrip(t, src)
	})
}
