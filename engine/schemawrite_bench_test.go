package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/schema"
)

// chainSchema is a schema of n chained definitions, each with an arrow to
// the previous one and a subject set of the previous one's permission:
// the shape that issue 18 measured at 6.5 minutes for 10,000 definitions.
func chainSchema(n int) string {
	var b strings.Builder
	b.WriteString("definition user {}\n\ndefinition d0 {\n  relation viewer: user\n  permission view = viewer\n}\n")
	for k := 1; k < n; k++ {
		fmt.Fprintf(&b, "\ndefinition d%d {\n  relation prev: d%d\n  relation viewer: user | d%d#view\n  permission view = viewer + prev->view\n}\n", k, k-1, k-1)
	}
	return b.String()
}

var chainSizes = []int{1000, 2000, 5000, 10000}

// BenchmarkSchemaChain measures each stage of a schema write of n chained
// definitions: compile, diff against the previous schema (one definition
// fewer), the evaluator's analysis, and the whole WriteSchema on memstore
// over the previous schema.
func BenchmarkSchemaChain(b *testing.B) {
	for _, n := range chainSizes {
		src := chainSchema(n)
		prevSrc := chainSchema(n - 1)
		b.Run(fmt.Sprintf("compile/defs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := schema.Compile("chain", src); err != nil {
					b.Fatal(err)
				}
			}
		})
		next, err := schema.Compile("chain", src)
		if err != nil {
			b.Fatal(err)
		}
		prev, err := schema.Compile("chain", prevSrc)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("diff/defs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				schema.Diff(prev, next)
			}
		})
		b.Run(fmt.Sprintf("analysis/defs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				eval.New(next, eval.Options{})
			}
		})
		b.Run(fmt.Sprintf("write/defs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				st := memstore.New(memstore.Options{})
				eng, err := engine.Open(ctx, st, engine.Options{})
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := eng.WriteSchema(ctx, "bench", prevSrc); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, _, err := eng.WriteSchema(ctx, "bench", src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
