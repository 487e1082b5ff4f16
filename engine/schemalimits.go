package engine

import (
	"fmt"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/schema"
)

// Defaults of the schema limits (see Limits.MaxSchemaDefinitions,
// MaxPermissionOperators and MaxSchemaAnalysisWork).
const (
	// DefaultMaxSchemaDefinitions bounds the definitions of one schema.
	// A chain of 10,000 definitions, each with an arrow to the one
	// before, is written in about 0.4 s of CPU (docs/benchmarks.md).
	DefaultMaxSchemaDefinitions = 20_000
	// DefaultMaxPermissionOperators bounds the operators (+, &, -) of one
	// permission; it is also the parser's own hard limit.
	DefaultMaxPermissionOperators = schema.MaxOperators
	// DefaultMaxSchemaAnalysisWork bounds eval.AnalysisWork of a schema.
	// The analysis keeps about 500 bytes per unit (a chain of 10,000
	// definitions is 100,000 units and 47 MB), so this is some 250 MB.
	DefaultMaxSchemaAnalysisWork = 500_000
)

// checkSchemaLimits refuses, with a *LimitError naming the limit, a
// schema over the engine's schema limits. It runs after compiling and
// before the evaluator is set up, whose cost AnalysisWork bounds.
func (e *Engine) checkSchemaLimits(s *schema.Schema) error {
	if n, max := len(s.Definitions), e.limits.MaxSchemaDefinitions; n > max {
		return &LimitError{Limit: "definitions in the schema", Max: max, Got: n, Hint: "split the schema across several Pemba instances, or raise -max-schema-definitions"}
	}
	for _, def := range s.Definitions {
		for _, r := range def.Ordered {
			if n, max := operators(r.Rewrite), e.limits.MaxPermissionOperators; n > max {
				return &LimitError{Limit: fmt.Sprintf("operators in permission %s#%s (%s)", def.Name, r.Name, r.Pos), Max: max, Got: n,
					Hint: "split it into several permissions, or raise -max-permission-operators"}
			}
		}
	}
	if n, max := eval.AnalysisWork(s), e.limits.MaxSchemaAnalysisWork; n > max {
		return &LimitError{Limit: "units of schema analysis work (relations, allowed types, expression nodes, arrow targets)", Max: max, Got: n,
			Hint: "a relation allowing many types behind many arrows multiplies; or raise -max-schema-analysis-work"}
	}
	return nil
}

// operators counts the binary operators of a rewrite: a union, an
// intersection or an exclusion of n operands has n-1. The walk keeps its
// own stack, however deep the rewrite.
func operators(w *schema.Rewrite) int {
	n := 0
	stack := []*schema.Rewrite{w}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if x == nil {
			continue
		}
		if len(x.Children) > 1 {
			n += len(x.Children) - 1
		}
		stack = append(stack, x.Children...)
	}
	return n
}
