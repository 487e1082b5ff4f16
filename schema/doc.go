// Package schema reads Pemba's schema language, a superset-compatible dialect
// of SpiceDB's: it scans, parses, checks and compiles schema text into the
// form the evaluator walks (see compiled.go), formats it canonically, and
// diffs two compiled schemas.
//
// It imports no other Pemba package.
package schema
