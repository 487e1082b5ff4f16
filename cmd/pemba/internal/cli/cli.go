package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes of every command; see the package documentation.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitDenied      = 3
	ExitConditional = 4
)

// Env is everything a command reads and writes besides its arguments.
// Tests build one with buffers and a map-backed Getenv; Main uses the
// process's own.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads an environment variable (PEMBA_ADDRESS, PEMBA_TOKEN);
	// nil reads none.
	Getenv func(string) string
	// Global holds the connection flags given before the command
	// (pemba --address X check ...; see ParseGlobal). They apply to every
	// command that talks to a server; the same flag after the command wins.
	Global []GlobalFlag
	// Now is the clock that decides what has expired (nil: time.Now).
	Now func() time.Time
}

// now reads the environment's clock.
func (e Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// ListSubcommands, given as a command's first argument, makes a command
// with subcommands list their names, one per line, and exit 0 (shell
// completion asks this way, so the names are defined once).
const ListSubcommands = "__subcommands"

// GlobalFlag is one connection flag given before the command.
type GlobalFlag struct{ Name, Value string }

// ParseGlobal splits the connection flags (--address, --token, --insecure,
// --tls, --tls-ca) that come before the command name off args, as zed
// allows them there, and returns them with the rest of args. The flags are
// the ones every server command defines (connFlags), so they are defined
// once.
func (e Env) ParseGlobal(args []string) ([]GlobalFlag, []string, error) {
	fs := flag.NewFlagSet("pemba", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	inv := &invocation{env: Env{Getenv: func(string) string { return "" }}}
	inv.connFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, fmt.Errorf("before the command only the connection flags --address, --token, --insecure, --tls and --tls-ca may come: %w", err)
	}
	var global []GlobalFlag
	fs.Visit(func(f *flag.Flag) { global = append(global, GlobalFlag{f.Name, f.Value.String()}) })
	return global, fs.Args(), nil
}

// IsCommand reports whether name is one of this package's commands (those
// that take the connection flags).
func IsCommand(name string) bool {
	for _, c := range commands() {
		if c.name == name {
			return true
		}
	}
	return false
}

// command is one top-level command. run returns an error to report, or
// nil; exit codes other than 0 and 1 travel as usageError and exitError.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, inv *invocation, args []string) error
}

func commands() []command {
	return []command{
		{"schema", "write and read schemas; format, check, lint and diff schema files (offline)", schemaCommand},
		{"relationship", "write, delete, read, count, import and export relationships", relationshipCommand},
		{"check", "check whether a subject has a permission on a resource", checkCommand},
		{"expand", "show the tree of subjects a permission is computed from", expandCommand},
		{"lookup-resources", "list the resources of a type a subject has a permission on", lookupResourcesCommand},
		{"lookup-subjects", "list the subjects of a type that have a permission on a resource", lookupSubjectsCommand},
		{"watch", "stream relationship changes until interrupted", watchCommand},
		{"diff", "list which results of a permission changed between two zookies", diffCommand},
		{"watch-permissions", "stream the changes of a permission's results until interrupted", watchPermissionsCommand},
		{"count", "count the resources a subject has a permission on, or relationships", countCommand},
		{"audit", "query and verify the audit log of every write", auditCommand},
		{"backup", "back up the server's datastore into a directory (an admin key)", backupCommand},
	}
}

// Main returns the entry point of the named command in the shape package
// main's command table wants, reading the process's standard input and
// environment.
func Main(name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return MainGlobal(name, nil)
}

// MainGlobal is Main with connection flags given before the command.
func MainGlobal(name string, global []GlobalFlag) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		e := Env{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv, Global: global}
		return e.Run(ctx, append([]string{name}, args...))
	}
}

// Run runs the command named by args[0] with the rest of args and returns
// its exit code.
func (e Env) Run(ctx context.Context, args []string) int {
	if e.Stdin == nil {
		e.Stdin = strings.NewReader("")
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	if len(args) == 0 {
		fmt.Fprintln(e.Stderr, "pemba: no command")
		return ExitUsage
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		inv := &invocation{env: e, name: "pemba " + c.name}
		return inv.exit(c.run(ctx, inv, args[1:]))
	}
	fmt.Fprintf(e.Stderr, "pemba: unknown command %q\n", args[0])
	return ExitUsage
}

// invocation is one run of a command: its environment, its full name for
// messages ("pemba relationship write") and its output format.
type invocation struct {
	env  Env
	name string
	json bool
}

// usageError is bad usage: exit 2, with the command's usage when known.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }

// exitError carries an exit code that is not a failure to report (check
// --exit-code).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// errHelp: -h was asked for and the usage printed; exit 0.
var errHelp = errors.New("cli: help printed")

// exit turns a command's error into an exit code, printing it.
func (inv *invocation) exit(err error) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(inv.env.Stderr, "%s: %s\n", inv.name, ue.msg)
		if ue.usage != "" {
			fmt.Fprintf(inv.env.Stderr, "usage: %s\n", ue.usage)
		}
		return ExitUsage
	}
	fmt.Fprintf(inv.env.Stderr, "%s: %s\n", inv.name, describe(err))
	return ExitFailed
}

// describe renders an error for people: a gRPC status as its code and
// message in the CLI's words, anything else as it is.
func describe(err error) string {
	// FromError also finds a status wrapped with context ("after writing
	// 1000 of 2500 updates: ..."), keeping the whole text as the message.
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg := fmt.Sprintf("%s: %s", st.Code(), cliWords(st.Message()))
	// A server that answered (its datastore is down, it is shutting down)
	// says why in the status's details; only a call that reached no
	// server gets the connection hint.
	if st.Code() == codes.Unavailable && len(st.Details()) == 0 {
		msg += " (is the server running, and are --address and --insecure/--tls-ca right?)"
	}
	return msg
}

var (
	// apiFields are the request fields the server names in its errors
	// that a CLI flag sets, with the flag.
	apiFields = strings.NewReplacer(
		"optional_limit", "--limit",
		"optional_allow_partial_deletions", "--allow-partial",
		"optional_cursor.token", "the cursor",
		"optional_expires_at", "the expiration",
		"optional_caveat", "caveat",
		"context_json", "--context",
	)
	// rePackagePrefix finds the server's package prefixes inside a
	// message ("optional_limit: engine: 99999 relationships ..."): the
	// server's layers, not something a CLI user acts on.
	rePackagePrefix = regexp.MustCompile(`(^|: )(?:engine|eval|token): `)
)

// cliWords rewrites a server message for the CLI: flags for API fields,
// without the server's package prefixes.
func cliWords(msg string) string {
	return rePackagePrefix.ReplaceAllString(apiFields.Replace(msg), "$1")
}

// usagef builds a usage error for the invocation's usage line.
func usagef(usage, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), usage: usage}
}

// flagSet returns a FlagSet whose errors the invocation reports itself.
func (inv *invocation) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(inv.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args with fs, allowing flags after positional arguments
// (pemba check doc:1#view@user:anne --context '{}'), and returns the
// positional arguments. Everything after "--" is positional. -h prints the
// usage and the flags to standard output.
func (inv *invocation) parse(fs *flag.FlagSet, usage string, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				PrintUsage(inv.env.Stdout, usage, fs)
				return nil, errHelp
			}
			return nil, usagef(usage, "%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, nil
}

// outputFlag registers --output; parse with parseOutput, which sets it.
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("output", "text", "output format: text or json")
}

// parseOutput is parse followed by setOutput of the --output flag out
// registered on fs (outputFlag).
func (inv *invocation) parseOutput(fs *flag.FlagSet, usage string, args []string, out *string) ([]string, error) {
	pos, err := inv.parse(fs, usage, args)
	if err != nil {
		return nil, err
	}
	if err := inv.setOutput(usage, *out); err != nil {
		return nil, err
	}
	return pos, nil
}

func (inv *invocation) setOutput(usage, v string) error {
	switch v {
	case "text":
		inv.json = false
	case "json":
		inv.json = true
	default:
		return usagef(usage, "unknown --output %q (want text or json)", v)
	}
	return nil
}

// emitJSON writes v as one line of JSON.
func (inv *invocation) emitJSON(v any) error {
	// Not HTML-escaped: messages keep "->", "=>" and "&" as written
	// (parent->viewer, not parent-\u003eviewer).
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode ends the line
		return fmt.Errorf("encode output: %w", err)
	}
	if _, err := inv.env.Stdout.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// printf writes to standard output.
func (inv *invocation) printf(format string, args ...any) {
	fmt.Fprintf(inv.env.Stdout, format, args...)
}

// infof writes metadata to standard error (text mode only: in JSON mode
// the metadata is part of the output).
func (inv *invocation) infof(format string, args ...any) {
	if !inv.json {
		fmt.Fprintf(inv.env.Stderr, format, args...)
	}
}

// warnf writes to standard error in every output format: what the user
// must not miss, such as a listing cut at --limit.
func (inv *invocation) warnf(format string, args ...any) {
	if msg := fmt.Sprintf(format, args...); msg != "" {
		fmt.Fprint(inv.env.Stderr, msg)
	}
}

// openInput opens a file argument, "-" meaning standard input.
func (inv *invocation) openInput(name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(inv.env.Stdin), nil
	}
	// The *PathError names the file and the operation already.
	return os.Open(name)
}

// readInput reads a whole file argument, "-" meaning standard input.
func (inv *invocation) readInput(name string) (string, error) {
	r, err := inv.openInput(name)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", displayName(name), err)
	}
	return string(b), nil
}

// displayName names an input in messages.
func displayName(name string) string {
	if name == "-" {
		return "<stdin>"
	}
	return name
}

// subcommand dispatches a command with subcommands (schema write, ...).
func (inv *invocation) subcommand(ctx context.Context, args []string, subs map[string]func(context.Context, *invocation, []string) error, usage string) error {
	if len(args) == 0 {
		return usagef(usage, "missing subcommand")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		fmt.Fprintf(inv.env.Stdout, "usage: %s\n", usage)
		return errHelp
	}
	if args[0] == ListSubcommands {
		for _, name := range slices.Sorted(maps.Keys(subs)) {
			fmt.Fprintln(inv.env.Stdout, name)
		}
		return errHelp
	}
	run, ok := subs[args[0]]
	if !ok {
		return usagef(usage, "unknown subcommand %q", args[0])
	}
	inv.name += " " + args[0]
	return run(ctx, inv, args[1:])
}

// counted says n things in English: "1 relationship", "2 relationships",
// "0 relationships"; a noun ending in a consonant and "y" takes "ies"
// ("1 entry", "2 entries").
func counted[N int | int32 | int64 | uint32 | uint64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if stem, ok := strings.CutSuffix(noun, "y"); ok && stem != "" && !strings.ContainsRune("aeiou", rune(stem[len(stem)-1])) {
		return fmt.Sprintf("%d %sies", n, stem)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
