package schema

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

// TestFormatGolden formats every testdata/*.input file and compares the
// result with its .golden file (regenerate with -update).
func TestFormatGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/format/*.input")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/format/*.input files")
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := FormatSource(filepath.Base(in), string(src))
			if err != nil {
				t.Fatalf("FormatSource: %v", err)
			}
			golden := strings.TrimSuffix(in, ".input") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("format mismatch\n--- got\n%s\n--- want\n%s", got, want)
			}
			checkRoundTrip(t, string(src))
		})
	}
}

// checkRoundTrip asserts that formatting is idempotent and that, when src
// compiles, its formatted form compiles to the same schema.
func checkRoundTrip(t *testing.T, src string) {
	t.Helper()
	f, err := Parse("in.zed", src)
	if err != nil {
		return
	}
	out := Format(f)
	f2, err := Parse("out.zed", out)
	if err != nil {
		t.Fatalf("formatted source does not parse: %v\n--- input\n%s\n--- formatted\n%s", err, src, out)
	}
	if out2 := Format(f2); out2 != out {
		t.Fatalf("format is not idempotent\n--- input\n%q\n--- once\n%s\n--- twice\n%s", src, out, out2)
	}
	s1, err1 := Check(f)
	s2, err2 := Check(f2)
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("compile differs after format: %v vs %v\n--- input\n%q\n--- formatted\n%s", err1, err2, src, out)
	}
	if err1 != nil {
		return
	}
	if d1, d2 := dump(s1), dump(s2); d1 != d2 {
		t.Fatalf("compiled form differs after format\n--- input\n%q\n--- formatted\n%s\n--- dump before\n%s\n--- dump after\n%s", src, out, d1, d2)
	}
}

func TestFormatEnterpriseIsCanonical(t *testing.T) {
	src, err := os.ReadFile("testdata/enterprise.zed")
	if err != nil {
		t.Fatal(err)
	}
	got, err := FormatSource("enterprise.zed", string(src))
	if err != nil {
		t.Fatal(err)
	}
	if got != string(src) {
		t.Errorf("testdata/enterprise.zed is not in canonical form; formatted:\n%s", got)
	}
	checkRoundTrip(t, string(src))
}
