package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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

// reportCPU starts counting the process's CPU time; the function it
// returns reports it per op as cpu-ms/op (wall time on a loaded machine
// says little).
func reportCPU(b *testing.B) func() {
	c0 := processCPU(b)
	return func() { b.ReportMetric(float64(processCPU(b)-c0)/1e6/float64(b.N), "cpu-ms/op") }
}

// BenchmarkSchemaChain measures each stage of a schema write of n chained
// definitions: compile, diff against the previous schema (one definition
// fewer), the evaluator's analysis, and the whole WriteSchema on memstore
// over the previous schema. Run with -benchmem; a chain of n definitions
// plus user is n+1 definitions, within the default limit.
func BenchmarkSchemaChain(b *testing.B) {
	for _, n := range chainSizes {
		src := chainSchema(n)
		prevSrc := chainSchema(n - 1)
		b.Run(fmt.Sprintf("compile/defs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
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
			defer reportCPU(b)()
			for b.Loop() {
				schema.Diff(prev, next)
			}
		})
		b.Run(fmt.Sprintf("analysis/defs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				eval.New(next, eval.Options{})
			}
		})
		b.Run(fmt.Sprintf("write/defs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			var cpu time.Duration // of the timed writes only
			n := 0
			defer func() { b.ReportMetric(float64(cpu)/1e6/float64(n), "cpu-ms/op") }()
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
				c0 := processCPU(b)
				if _, _, err := eng.WriteSchema(ctx, "bench", src); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU(b) - c0
				n++
			}
		})
	}
}
