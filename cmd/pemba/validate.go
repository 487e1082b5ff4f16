package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/engine/validation"
	"github.com/pemba-authz/pemba/schema"
)

// Exit codes of validateCommand.
const (
	exitOK     = 0 // every file passed
	exitFailed = 1 // at least one expectation failed or a file is invalid
	exitUsage  = 2 // bad flags or no files
)

// validateCommand is `pemba validate [flags] FILE...|-` over the process's
// standard input.
func validateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return validateWith(ctx, args, os.Stdin, stdout, stderr)
}

// fileResult is the outcome of one file of pemba validate.
type fileResult struct {
	File        string    `json:"file"`
	Kind        string    `json:"kind"` // "schema" or "validation"
	OK          bool      `json:"ok"`
	Assertions  int       `json:"assertions"`
	Validations int       `json:"validations"`
	Failures    []failure `json:"failures"`
	// ran marks a validation file that loaded and ran; aborted, one whose
	// run could not finish (the failure says why).
	ran, aborted bool
}

type failure struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
	Explain string `json:"explain,omitempty"`
	text    string // as the text output renders it
}

// validateWith runs each file, prints per-file results and a summary to
// stdout (or, with --output json, one JSON document), and returns the exit
// code. Usage errors go to stderr. A FILE ending in .zed is a schema file,
// compiled with the files it imports; "-" reads standard input, which is a
// validation file when it has a top-level schema, schemaFile,
// relationships, assertions or validation key and a schema otherwise.
func validateWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nowFlag := fs.String("now", "", "evaluate expirations at this RFC 3339 instant instead of the current time")
	quiet := fs.Bool("q", false, "print failures and the summary only")
	noCross := fs.Bool("no-crosscheck", false, "do not compare Check, Expand and the lookups with each other")
	output := fs.String("output", "text", "output format: text or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pemba validate [-now RFC3339] [-q] [-no-crosscheck] [-output text|json] FILE...|-")
		fmt.Fprintln(stderr, "Runs SpiceDB-format validation files (schema, relationships, assertions, validation) and compiles .zed schema files; - reads standard input.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "pemba validate: unknown -output %q (want text or json)\n", *output)
		return exitUsage
	}
	opts := validation.Options{NoCrossChecks: *noCross}
	if *nowFlag != "" {
		t, err := parseTime(*nowFlag)
		if err != nil {
			fmt.Fprintf(stderr, "pemba validate: -now: %v\n", err)
			return exitUsage
		}
		opts.Now = func() time.Time { return t }
	}
	stdinUsed := false
	var results []fileResult
	for _, path := range fs.Args() {
		if path == "-" {
			if stdinUsed {
				fmt.Fprintln(stderr, "pemba validate: - (standard input) given twice")
				return exitUsage
			}
			stdinUsed = true
		}
		results = append(results, validateOne(ctx, path, stdin, opts))
	}
	var files, failedFiles, assertions, validations, failures int
	for _, r := range results {
		files++
		assertions += r.Assertions
		validations += r.Validations
		if !r.OK {
			failedFiles++
			failures += len(r.Failures)
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(struct {
			Files       []fileResult `json:"files"`
			Assertions  int          `json:"assertions"`
			Validations int          `json:"validations"`
			Failures    int          `json:"failures"`
			FailedFiles int          `json:"failed_files"`
			OK          bool         `json:"ok"`
		}{results, assertions, validations, failures, failedFiles, failedFiles == 0})
	} else {
		for _, r := range results {
			printResult(stdout, r, *quiet)
		}
		fmt.Fprintf(stdout, "%d files, %d assertions, %d validations: ", files, assertions, validations)
		if failedFiles == 0 {
			fmt.Fprintln(stdout, "all passed")
		} else {
			fmt.Fprintf(stdout, "%d failures in %d files\n", failures, failedFiles)
		}
	}
	if failedFiles > 0 {
		return exitFailed
	}
	return exitOK
}

// printResult renders one file's result as text.
func printResult(w io.Writer, r fileResult, quiet bool) {
	switch {
	case r.OK && r.Kind == "schema":
		if !quiet {
			fmt.Fprintf(w, "ok   %s (schema)\n", r.File)
		}
	case r.OK:
		if !quiet {
			fmt.Fprintf(w, "ok   %s (%d assertions, %d validations)\n", r.File, r.Assertions, r.Validations)
		}
	case r.aborted:
		fmt.Fprintf(w, "FAIL %s\n  aborted: %s\n", r.File, r.Failures[0].Message)
	case r.ran:
		fmt.Fprintf(w, "FAIL %s (%d assertions, %d validations, %d failures)\n", r.File, r.Assertions, r.Validations, len(r.Failures))
		for _, f := range r.Failures {
			fmt.Fprintln(w, indent(f.text, "  "))
		}
	default:
		texts := make([]string, len(r.Failures))
		for i, f := range r.Failures {
			texts[i] = f.text
		}
		fmt.Fprintf(w, "FAIL %s\n%s\n", r.File, indent(strings.Join(texts, "\n"), "  "))
	}
}

// validationKeys recognises a validation file on standard input.
var validationKeys = regexp.MustCompile(`(?m)^(schema|schemaFile|relationships|assertions|validation)\s*:`)

// validateOne loads and runs one file.
func validateOne(ctx context.Context, path string, stdin io.Reader, opts validation.Options) fileResult {
	name := path
	var data []byte
	if path == "-" {
		name = "<stdin>"
		b, err := io.ReadAll(stdin)
		if err != nil {
			return fileResult{File: name, Kind: "validation", Failures: []failure{{Message: err.Error(), text: err.Error()}}}
		}
		data = b
	}
	isSchema := strings.HasSuffix(path, ".zed") || (path == "-" && !validationKeys.Match(data))
	if isSchema {
		// A schema file alone (with the files it imports): compiled,
		// nothing to assert.
		r := fileResult{File: name, Kind: "schema", Failures: []failure{}}
		var err error
		if path == "-" {
			var files []*schema.File
			if files, err = schema.LoadSource(os.DirFS("."), name, string(data)); err == nil {
				_, err = schema.CheckFiles(files)
			}
		} else {
			_, err = schema.CompileFile(path)
		}
		var list schema.ErrorList
		switch {
		case errors.As(err, &list):
			for _, e := range list {
				r.Failures = append(r.Failures, failure{File: e.Pos.Filename, Line: e.Pos.Line, Column: e.Pos.Column, Message: e.Msg, text: e.Error()})
			}
		case err != nil:
			r.Failures = append(r.Failures, failure{Message: err.Error(), text: err.Error()})
		}
		r.OK = len(r.Failures) == 0
		return r
	}
	r := fileResult{File: name, Kind: "validation", Failures: []failure{}}
	var f *validation.File
	var err error
	if path == "-" {
		f, err = validation.LoadData(name, ".", data)
	} else {
		f, err = validation.Load(path)
	}
	if err != nil {
		var list validation.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				r.Failures = append(r.Failures, failure{File: e.Pos.File, Line: e.Pos.Line, Column: e.Pos.Col, Message: e.Msg, text: e.Error()})
			}
		} else {
			r.Failures = append(r.Failures, failure{Message: err.Error(), text: err.Error()})
		}
		return r
	}
	res, err := validation.Run(ctx, f, opts)
	if err != nil {
		r.aborted = true
		r.Failures = append(r.Failures, failure{Message: err.Error(), text: err.Error()})
		return r
	}
	r.ran = true
	r.Assertions, r.Validations = res.Assertions, res.Validations
	for _, fl := range res.Failures {
		r.Failures = append(r.Failures, failure{File: fl.Pos.File, Line: fl.Pos.Line, Column: fl.Pos.Col, Message: fl.Msg, Explain: fl.Explain, text: fl.String()})
	}
	r.OK = len(r.Failures) == 0
	return r
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t, nil
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
