// Command pemba is Pemba's command line: one binary with subcommands.
//
//	pemba validate FILE...   run SpiceDB-format validation files
//
// main only parses the subcommand and wires it up; each subcommand's logic
// lives in an importable package. To add one, append an entry to
// commands().
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/pemba-authz/pemba/cmd/pemba/internal/cli"
)

// command is one subcommand. run receives the arguments after the
// subcommand's name and returns the process exit code.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is the subcommand table, in the order usage lists them.
func commands() []command {
	return []command{
		{"validate", "run validation files (schema, relationships, assertions)", validateCommand},
		{"bench", "run benchmarks (bench run) and compare their reports (bench compare)", benchCommand},
		{"serve", "serve the gRPC API (permissions, schema, watch; health, metrics)", serveCommand},
		{"datastore", "prepare a PostgreSQL datastore (datastore migrate --datastore-uri URI)", datastoreCommand},
		{"schema", "write and read the server's schema; fmt, check (with lint) and diff schema files", cli.Main("schema")},
		{"relationship", "write, delete, read, count, import and export relationships", cli.Main("relationship")},
		{"check", "check a permission: RESOURCE#PERMISSION@SUBJECT", cli.Main("check")},
		{"expand", "show the subject tree behind a permission: RESOURCE#PERMISSION", cli.Main("expand")},
		{"lookup-resources", "list the resources a subject has a permission on", cli.Main("lookup-resources")},
		{"lookup-subjects", "list the subjects that have a permission on a resource", cli.Main("lookup-subjects")},
		{"watch", "stream relationship changes until interrupted", cli.Main("watch")},
		{"count", "count resources (count resources TYPE#PERMISSION@SUBJECT) or relationships", cli.Main("count")},
		{"backup", "back up a running Pebble server into a directory: backup --to DIR", cli.Main("backup")},
		{"restore", "restore a backup into a new data directory: restore --from DIR -data-dir NEW", restoreCommand},
		{"version", "print the version, commit, Go version and storage formats", versionCommand},
		{"completion", "print a shell completion script: completion bash|zsh|fish", completionCommand},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args[0] to its subcommand; exit code 2 means bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if args[0] == "help" && len(args) > 1 {
		// pemba help CMD [SUB] is CMD [SUB] -h.
		return run(ctx, append(append([]string(nil), args[1:]...), "-h"), stdout, stderr)
	}
	if isHelp(args[0]) {
		usage(stdout)
		return 0
	}
	if args[0] == completeCommand { // hidden: the completion scripts' callback
		for _, c := range complete(ctx, args[1:]) {
			fmt.Fprintln(stdout, c)
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		return versionCommand(ctx, args[1:], stdout, stderr)
	}
	if strings.HasPrefix(args[0], "-") {
		return runGlobal(ctx, args, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "pemba: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// runGlobal runs a command preceded by connection flags (pemba --address X
// check ...), which only the commands that talk to a server take.
func runGlobal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	global, rest, err := cli.Env{}.ParseGlobal(args)
	if err != nil {
		fmt.Fprintf(stderr, "pemba: %v\n", err)
		usage(stderr)
		return 2
	}
	if len(global) == 0 { // only "--"
		return run(ctx, rest, stdout, stderr)
	}
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "pemba: no command after the connection flags")
		usage(stderr)
		return 2
	}
	if !slices.ContainsFunc(commands(), func(c command) bool { return c.name == rest[0] }) {
		fmt.Fprintf(stderr, "pemba: unknown command %q\n", rest[0])
		usage(stderr)
		return 2
	}
	if !cli.IsCommand(rest[0]) {
		fmt.Fprintf(stderr, "pemba: %q takes no connection flags before its name (--%s ...); give its own flags after it\n", rest[0], global[0].Name)
		return 2
	}
	return cli.MainGlobal(rest[0], global)(ctx, rest[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pemba [--address HOST:PORT] [--token KEY] [--insecure|--tls|--tls-ca FILE] <command> [arguments]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-17s %s\n", c.name, c.summary)
	}
}

// isHelp reports whether arg asks for help instead of naming a subcommand.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// parseFlags parses args with fs and returns the exit code to stop with,
// or -1 to go on: 0 after -h, which prints the usage line and the flags
// to stdout in the format every command shares (cli.PrintUsage; asking for
// help is not an error), 2 after a bad flag, reported on stderr.
func parseFlags(fs *flag.FlagSet, usage string, args []string, stdout, stderr io.Writer) int {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return -1
	case errors.Is(err, flag.ErrHelp):
		cli.PrintUsage(stdout, usage, fs)
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\nusage: %s (pemba help %s lists the flags)\n", fs.Name(), err, usage, strings.TrimPrefix(fs.Name(), "pemba "))
	return 2
}
