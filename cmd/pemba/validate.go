package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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

// validateCommand is `pemba validate [-now RFC3339] [-q] [-no-crosscheck] FILE...`:
// it runs each file, prints per-file results and a summary to stdout, and
// returns the exit code. Usage errors go to stderr. A FILE ending in .zed
// is a schema file, compiled with the files it imports.
func validateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nowFlag := fs.String("now", "", "evaluate expirations at this RFC 3339 instant instead of the current time")
	quiet := fs.Bool("q", false, "print failures and the summary only")
	noCross := fs.Bool("no-crosscheck", false, "do not compare Check, Expand and the lookups with each other")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pemba validate [-now RFC3339] [-q] [-no-crosscheck] FILE...")
		fmt.Fprintln(stderr, "Runs SpiceDB-format validation files (schema, relationships, assertions, validation).")
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
	opts := validation.Options{NoCrossChecks: *noCross}
	if *nowFlag != "" {
		t, err := parseTime(*nowFlag)
		if err != nil {
			fmt.Fprintf(stderr, "pemba validate: -now: %v\n", err)
			return exitUsage
		}
		opts.Now = func() time.Time { return t }
	}
	var files, failedFiles, assertions, validations, failures int
	for _, path := range fs.Args() {
		files++
		if strings.HasSuffix(path, ".zed") {
			// A schema file alone (with the files it imports): compiled,
			// nothing to assert.
			if _, err := schema.CompileFile(path); err != nil {
				failedFiles++
				var list schema.ErrorList
				if errors.As(err, &list) {
					failures += len(list)
				} else {
					failures++
				}
				fmt.Fprintf(stdout, "FAIL %s\n%s\n", path, indent(err.Error(), "  "))
			} else if !*quiet {
				fmt.Fprintf(stdout, "ok   %s (schema)\n", path)
			}
			continue
		}
		f, err := validation.Load(path)
		if err != nil {
			failedFiles++
			var list validation.ErrorList
			if errors.As(err, &list) {
				failures += len(list)
			} else {
				failures++
			}
			fmt.Fprintf(stdout, "FAIL %s\n%s\n", path, indent(err.Error(), "  "))
			continue
		}
		res, err := validation.Run(ctx, f, opts)
		if err != nil {
			failedFiles++
			failures++
			fmt.Fprintf(stdout, "FAIL %s\n  aborted: %v\n", path, err)
			continue
		}
		assertions += res.Assertions
		validations += res.Validations
		if res.OK() {
			if !*quiet {
				fmt.Fprintf(stdout, "ok   %s (%d assertions, %d validations)\n", path, res.Assertions, res.Validations)
			}
			continue
		}
		failedFiles++
		failures += len(res.Failures)
		fmt.Fprintf(stdout, "FAIL %s (%d assertions, %d validations, %d failures)\n", path, res.Assertions, res.Validations, len(res.Failures))
		for _, fl := range res.Failures {
			fmt.Fprintln(stdout, indent(fl.String(), "  "))
		}
	}
	fmt.Fprintf(stdout, "%d files, %d assertions, %d validations: ", files, assertions, validations)
	if failedFiles == 0 {
		fmt.Fprintln(stdout, "all passed")
		return exitOK
	}
	fmt.Fprintf(stdout, "%d failures in %d files\n", failures, failedFiles)
	return exitFailed
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
