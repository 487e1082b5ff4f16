// Package enterprise gives Go code the showcase example's files, so that
// the benchmark workload, tests and the playground load these files instead
// of keeping copies of them.
package enterprise

import _ "embed"

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
