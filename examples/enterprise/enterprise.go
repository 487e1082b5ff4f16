// Package enterprise gives Go code the showcase example's files, so that
// the benchmark workload, tests and the playground load these files instead
// of keeping copies of them.
package enterprise

import (
	_ "embed"
	"strings"
)

var (
	//go:embed schema.zed
	schema string
	//go:embed enterprise.yaml
	validationFile string
)

// Schema returns the text of schema.zed.
func Schema() string { return schema }

// ValidationFile returns the text of enterprise.yaml, the validation file
// whose schemaFile is schema.zed.
func ValidationFile() string { return validationFile }

// SchemaWithoutInvariants returns schema.zed without its invariants and
// without "use invariants": the same permission model, for SpiceDB (which
// does not parse invariants) and for generated data that does not keep
// them (the benchmark's). An invariant is one line, so dropping the lines
// that declare one drops it whole.
func SchemaWithoutInvariants() string {
	var b strings.Builder
	for line := range strings.Lines(schema) {
		t := strings.TrimSpace(line)
		if t == "use invariants" || strings.HasPrefix(t, "invariant ") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}
