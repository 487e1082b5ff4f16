package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/internal/atomicfile"
	"github.com/pemba-authz/pemba/schema"
)

// maxListedChanges is the most schema changes schema write lists in text.
const maxListedChanges = 20

const schemaUsage = "pemba schema write FILE|- | read | fmt [-w] FILE... | compile FILE | check FILE... | diff OLD NEW"

func schemaCommand(ctx context.Context, inv *invocation, args []string) error {
	return inv.subcommand(ctx, args, map[string]func(context.Context, *invocation, []string) error{
		"write":   schemaWrite,
		"read":    schemaRead,
		"fmt":     schemaFmt,
		"compile": schemaCompile,
		"diff":    schemaDiff,
		"check":   schemaCheckCommand,
	}, schemaUsage)
}

// compileInput compiles a schema file, with the files it imports (read
// relative to it), or standard input ("-", which cannot import). It
// returns the compiled schema, whose Source is the one text to send to the
// server.
func (inv *invocation) compileInput(name string) (*schema.Schema, error) {
	var s *schema.Schema
	var err error
	if name == "-" {
		src, rerr := inv.readInput(name)
		if rerr != nil {
			return nil, rerr
		}
		s, err = schema.Compile(displayName(name), src)
	} else {
		s, err = schema.CompileFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("invalid schema:\n%w", err)
	}
	return s, nil
}

// schemaCompile prints the one schema text that a schema split over
// files (import, partial) compiles to: what schema write sends.
func schemaCompile(_ context.Context, inv *invocation, args []string) error {
	const usage = "pemba schema compile FILE"
	fs := inv.flagSet()
	pos, err := inv.parse(fs, usage, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(usage, "want one schema file, got %d arguments", len(pos))
	}
	s, err := inv.compileInput(pos[0])
	if err != nil {
		return err
	}
	inv.printf("%s", s.Source)
	return nil
}

// schemaWrite compiles the schema locally first, so that errors name the
// user's file, then replaces the server's schema.
func schemaWrite(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba schema write [flags] FILE|-"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	reason := reasonFlag(fs)
	out := outputFlag(fs)
	dryRun := fs.Bool("dry-run", false, "write nothing: report the changes and which (resource, permission, subject) results the schema would flip on the current data")
	allowEmpty := fs.Bool("allow-empty", false, "write a schema with no definitions, removing every definition (refused without it)")
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(usage, "want one schema file (or - for standard input), got %d arguments", len(pos))
	}
	// Compiled here first so that errors name the user's files; a schema
	// split over files is sent as the one text it compiles to.
	compiled, err := inv.compileInput(pos[0])
	if err != nil {
		return err
	}
	src := compiled.Source
	if len(compiled.Definitions) == 0 && len(compiled.Caveats) == 0 && !*allowEmpty && !*dryRun {
		return usagef(usage, "%s defines nothing: writing it would remove every definition from the server's schema (give --allow-empty to do that)", displayName(pos[0]))
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.Schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: src, DryRun: *dryRun, OptionalReason: *reason})
	if err != nil {
		return err
	}
	if *dryRun {
		return inv.printImpact(resp)
	}
	if inv.json {
		type change struct {
			Kind        string `json:"kind"`
			Definition  string `json:"definition,omitempty"`
			Name        string `json:"name,omitempty"`
			SubjectType string `json:"subject_type,omitempty"`
			Description string `json:"description,omitempty"`
		}
		changes := []change{}
		for _, ch := range resp.GetChanges() {
			changes = append(changes, change{ch.GetKind().String(), ch.GetDefinition(), ch.GetName(), ch.GetSubjectType(), ch.GetDescription()})
		}
		return inv.emitJSON(struct {
			Zookie  string   `json:"zookie"`
			Changes []change `json:"changes"`
		}{resp.GetWrittenAt().GetToken(), changes})
	}
	// A first write lists every definition as added: list changes only
	// when they are few enough to read.
	if n := len(resp.GetChanges()); n <= maxListedChanges {
		for _, ch := range resp.GetChanges() {
			inv.infof("%s\n", ch.GetDescription())
		}
		inv.infof("schema written (%s)\n", counted(n, "change"))
	} else {
		inv.infof("schema written (%s; --output json lists them)\n", counted(n, "change"))
	}
	inv.printf("%s\n", resp.GetWrittenAt().GetToken())
	return nil
}

func schemaRead(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba schema read [flags]"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	rf := consistencyFlags(fs)
	out := outputFlag(fs)
	file := fs.String("file", "", "write the schema to this `file` instead of standard output, atomically: a failed read leaves the file as it was (a shell's > empties it before pemba runs)")
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(usage, "unexpected arguments %q", pos)
	}
	if *file != "" {
		return atomicfile.Write(*file, 0o644, func(w io.Writer) error {
			sub := *inv
			sub.env.Stdout = w
			return sub.readSchemaTo(ctx, conn, rf, usage)
		})
	}
	return inv.readSchemaTo(ctx, conn, rf, usage)
}

// readSchemaTo reads the server's schema and prints it to the
// invocation's standard output.
func (inv *invocation) readSchemaTo(ctx context.Context, conn *connFlags, rf *readFlags, usage string) error {
	cons, err := rf.consistency(usage)
	if err != nil {
		return err
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.Schema.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: cons})
	if err != nil {
		return err
	}
	if inv.json {
		return inv.emitJSON(struct {
			Schema string `json:"schema"`
			Zookie string `json:"zookie"`
		}{resp.GetSchemaText(), resp.GetReadAt().GetToken()})
	}
	text := resp.GetSchemaText()
	inv.printf("%s", text)
	if len(text) > 0 && text[len(text)-1] != '\n' {
		inv.printf("\n")
	}
	inv.infof("read at %s\n", resp.GetReadAt().GetToken())
	return nil
}

// schemaFmt prints each file in canonical form, or with -w rewrites the
// files that are not. It keeps going after an invalid file and fails at
// the end, so that one run reports every file's errors. Each file is
// formatted on its own: imports and partial references are kept as
// written (schema compile resolves them), so every file of a schema split
// over files can be formatted, imported ones included.
func schemaFmt(_ context.Context, inv *invocation, args []string) error {
	const usage = "pemba schema fmt [-w] FILE...|-"
	fs := inv.flagSet()
	write := fs.Bool("w", false, "write the result back to the files instead of printing it")
	pos, err := inv.parse(fs, usage, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef(usage, "no files")
	}
	failed := 0
	for _, name := range pos {
		if *write && name == "-" {
			return usagef(usage, "-w cannot write back to standard input")
		}
		src, err := inv.readInput(name)
		if err != nil {
			fmt.Fprintf(inv.env.Stderr, "%v\n", err)
			failed++
			continue
		}
		formatted, err := schema.FormatSource(displayName(name), src)
		if err != nil {
			fmt.Fprintf(inv.env.Stderr, "%v\n", err)
			failed++
			continue
		}
		if !*write {
			inv.printf("%s", formatted)
			continue
		}
		if formatted == src {
			continue
		}
		if err := writeFileKeepMode(name, formatted); err != nil {
			fmt.Fprintf(inv.env.Stderr, "%v\n", err)
			failed++
			continue
		}
		fmt.Fprintf(inv.env.Stderr, "formatted %s\n", name)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files failed", failed, len(pos))
	}
	return nil
}

// writeFileKeepMode replaces name's content atomically, keeping its
// permissions.
func writeFileKeepMode(name, content string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return atomicfile.Write(name, fi.Mode().Perm(), func(w io.Writer) error {
		_, err := io.WriteString(w, content)
		return err
	})
}

// schemaDiff compiles two schema files and lists what changed from the
// first to the second; with --exit-code it exits 1 when anything did.
func schemaDiff(_ context.Context, inv *invocation, args []string) error {
	const usage = "pemba schema diff [--exit-code] [--output text|json] OLD NEW"
	fs := inv.flagSet()
	out := outputFlag(fs)
	exitCode := fs.Bool("exit-code", false, "exit 1 when the schemas differ, 0 when they do not (as git diff --exit-code)")
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef(usage, "want two schema files, got %d", len(pos))
	}
	var compiled [2]*schema.Schema
	for i, name := range pos {
		if compiled[i], err = inv.compileInput(name); err != nil {
			return err
		}
	}
	changes := schema.Diff(compiled[0], compiled[1])
	if inv.json {
		type change struct {
			Kind        string `json:"kind"`
			Definition  string `json:"definition,omitempty"`
			Name        string `json:"name,omitempty"`
			Detail      string `json:"detail,omitempty"`
			Description string `json:"description"`
		}
		list := []change{}
		for _, ch := range changes {
			list = append(list, change{ch.Kind.String(), ch.Definition, ch.Name, ch.Detail, ch.String()})
		}
		if err := inv.emitJSON(list); err != nil {
			return err
		}
	} else {
		for _, ch := range changes {
			inv.printf("%s\n", ch)
		}
		if len(changes) == 0 {
			inv.infof("no changes\n")
		}
	}
	if *exitCode && len(changes) > 0 {
		return &exitError{code: ExitFailed}
	}
	return nil
}
