package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pemba-authz/pemba/schema"
)

// schemaCheckCommand compiles schema files offline, with the files they import,
// and prints every error and lint warning, one per line, as
// FILE:LINE:COL: message. It exits 1 when a file has errors (or, with
// --strict, warnings), 0 otherwise.
func schemaCheckCommand(_ context.Context, inv *invocation, args []string) error {
	const usage = "pemba schema check [--disable CHECK,...] [--strict] [--output text|json] FILE...|-"
	fs := inv.flagSet()
	disable := fs.String("disable", "", "comma-separated lint checks not to run: "+strings.Join(schema.LintChecks, ", "))
	strict := fs.Bool("strict", false, "exit 1 on lint warnings too")
	out := outputFlag(fs)
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef(usage, "no files")
	}
	var opts schema.LintOptions
	if *disable != "" {
		opts.Disable = strings.Split(*disable, ",")
		for _, c := range opts.Disable {
			if !slicesContainsString(schema.LintChecks, c) {
				return usagef(usage, "unknown lint check %q in --disable (known: %s)", c, strings.Join(schema.LintChecks, ", "))
			}
		}
	}
	type diag struct {
		File    string `json:"file"`
		Line    int    `json:"line,omitempty"`
		Column  int    `json:"column,omitempty"`
		Check   string `json:"check,omitempty"`
		Message string `json:"message"`
	}
	type report struct {
		File     string `json:"file"`
		Errors   []diag `json:"errors"`
		Warnings []diag `json:"warnings"`
	}
	var reports []report
	nerr, nwarn := 0, 0
	for _, name := range pos {
		rep := report{File: displayName(name), Errors: []diag{}, Warnings: []diag{}}
		files, s, err := inv.checkSchemaInput(name)
		if err != nil {
			var list schema.ErrorList
			if !errors.As(err, &list) {
				rep.Errors = append(rep.Errors, diag{File: rep.File, Message: err.Error()})
			}
			for _, e := range list {
				rep.Errors = append(rep.Errors, diag{File: e.Pos.Filename, Line: e.Pos.Line, Column: e.Pos.Column, Message: e.Msg})
			}
		} else {
			ws, err := schema.Lint(s, files, opts)
			if err != nil {
				return err // --disable was checked above
			}
			for _, w := range ws {
				rep.Warnings = append(rep.Warnings, diag{File: w.Pos.Filename, Line: w.Pos.Line, Column: w.Pos.Column, Check: w.Check, Message: w.Msg})
			}
		}
		// Positions name files relative to the root file's directory:
		// name them as the user did.
		if dir := filepath.Dir(name); name != "-" && dir != "." {
			for _, list := range [][]diag{rep.Errors, rep.Warnings} {
				for i := range list {
					if list[i].File != rep.File {
						list[i].File = filepath.Join(dir, filepath.FromSlash(list[i].File))
					}
				}
			}
		}
		nerr += len(rep.Errors)
		nwarn += len(rep.Warnings)
		reports = append(reports, rep)
	}
	failed := nerr > 0 || (*strict && nwarn > 0)
	if inv.json {
		if err := inv.emitJSON(reports); err != nil {
			return err
		}
	} else {
		for _, rep := range reports {
			for _, d := range rep.Errors {
				if d.Line == 0 {
					inv.printf("%s: %s\n", d.File, d.Message)
					continue
				}
				inv.printf("%s:%d:%d: %s\n", d.File, d.Line, d.Column, d.Message)
			}
			for _, d := range rep.Warnings {
				inv.printf("%s:%d:%d: warning: %s (%s)\n", d.File, d.Line, d.Column, d.Message, d.Check)
			}
		}
		inv.infof("%s, %s in %s\n", plural(nerr, "error"), plural(nwarn, "warning"), plural(len(pos), "file"))
	}
	if failed {
		return &exitError{code: ExitFailed}
	}
	return nil
}

// checkSchemaInput loads and compiles a schema file with the files it
// imports (named relative to its directory), or standard input ("-",
// whose imports are read relative to the working directory).
func (inv *invocation) checkSchemaInput(name string) ([]*schema.File, *schema.Schema, error) {
	var files []*schema.File
	var err error
	if name == "-" {
		src, rerr := inv.readInput(name)
		if rerr != nil {
			return nil, nil, rerr
		}
		files, err = schema.LoadSource(os.DirFS("."), displayName(name), src)
	} else {
		files, err = schema.LoadFiles(os.DirFS(filepath.Dir(name)), filepath.Base(name))
	}
	if err != nil {
		return files, nil, err
	}
	s, err := schema.CheckFiles(files)
	return files, s, err
}

func slicesContainsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// plural renders a count with its noun: "1 error", "2 errors".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
