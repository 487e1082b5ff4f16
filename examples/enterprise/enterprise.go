// Package enterprise gives Go code the showcase example's schema, so that
// the benchmark workload and tests load this one file instead of keeping
// copies of it.
package enterprise

import _ "embed"

//go:embed schema.zed
var schema string

// Schema returns the text of schema.zed.
func Schema() string { return schema }
