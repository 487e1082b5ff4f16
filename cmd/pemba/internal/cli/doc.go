// Package cli holds the client-side subcommands of the pemba binary: the
// ones that talk to a running server over gRPC (schema write and read,
// relationship write, delete, read, import and export, check, expand, the
// two lookups and watch), and the offline schema tools (schema fmt,
// schema diff, schema compile and schema check).
//
// Each command parses its flags with package flag, connects with package
// api/client, and writes its result to standard output: text for people,
// or with --output json one JSON value per result (JSON Lines for
// streams) for scripts. Metadata of a read (the zookie it was answered
// at, counts) goes to standard error in text mode, so that standard output
// holds only the data; a write's data is its zookie. A listing cut at the
// user's --limit says so on standard error in both modes.
//
// # Exit codes
//
//	0  success
//	1  the command failed: a server error (printed with its gRPC code),
//	   unreadable or invalid input, an unreachable server
//	2  usage error: unknown command, bad flag, missing or extra argument
//	3  check --exit-code: the subject does not have the permission
//	4  check --exit-code: the answer is conditional on missing context
//
// Package main registers each command with Main; tests drive them through
// Env.Run with their own standard input, output and environment.
package cli
