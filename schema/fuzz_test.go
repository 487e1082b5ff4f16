package schema

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// FuzzCaveatContext feeds arbitrary JSON contexts to every caveat of
// caveatSchema: conversion and evaluation must never panic, and a missing
// result must name sorted, declared parameters.
func FuzzCaveatContext(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a": 1, "b": 2}`, `{"a": true}`, `{"n": -1}`, `{"x": 1.5e308}`, `{"b": "aGk="}`,
		`{"d": "1h"}`, `{"now": "2026-01-01T00:00:00Z", "exp": "bad"}`, `{"allowed": ["a"], "day": "a"}`,
		`{"xs": [1, "2"]}`, `{"m": {"k": 7}}`, `{"m": {"k": [2.5]}}`, `{"addr": "10.0.0.1"}`, `{"v": [1, {"x": 2}]}`,
		`{"a": 1, "b": 0}`, `{"a": null}`,
	} {
		f.Add(seed)
	}
	s, err := Compile("caveats.zed", caveatSchema)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data string) {
		dec := json.NewDecoder(strings.NewReader(data))
		dec.UseNumber()
		var ctx map[string]any
		if err := dec.Decode(&ctx); err != nil {
			return
		}
		for name, c := range s.Caveats {
			r, err := c.Evaluate(ctx)
			if err != nil {
				continue
			}
			switch r.Kind {
			case CaveatTrue, CaveatFalse:
				if r.Missing != nil {
					t.Fatalf("%s: decided result with missing %v", name, r.Missing)
				}
			case CaveatMissing:
				if len(r.Missing) == 0 || !sort.StringsAreSorted(r.Missing) {
					t.Fatalf("%s: bad missing list %v", name, r.Missing)
				}
				for _, m := range r.Missing {
					if v, ok := ctx[m]; ok && v != nil {
						t.Fatalf("%s: %q reported missing but given", name, m)
					}
				}
			default:
				t.Fatalf("%s: unknown result kind %d", name, r.Kind)
			}
		}
	})
}
