package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validateSchema starts every validation file of TestValidateCommand.
const validateSchema = `schema: |-
  caveat on_weekday(day string) {
    day != "sat" && day != "sun"
  }
  definition user {}
  definition group {
    relation member: user | group#member
  }
  definition document {
    relation viewer: user | user:* | group#member | user with on_weekday | user with expiration
    relation banned: user
    permission view = viewer - banned
  }
`

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", validateSchema+"relationships: document:1#viewer@user:anne\nassertions:\n  assertTrue: [document:1#view@user:anne]\n")
	bad := write("bad.yaml", validateSchema+"assertions:\n  assertTrue: [document:1#view@user:anne]\n")
	broken := write("broken.yaml", "schema: [\n")
	zed := write("user.zed", "definition user {}\n")
	zedRoot := write("root.zed", "use import\nimport \"user.zed\"\ndefinition doc { relation viewer: user }\n")
	zedBad := write("badroot.zed", "use import\nimport \"broken.zed\"\n")
	zedBroken := write("broken.zed", "definition user {\n\trelation r: usr\n}\n")
	tests := []struct {
		name string
		args []string
		code int
		out  []string // substrings of stdout
	}{
		{"pass", []string{"-now", "2026-01-01T00:00:00Z", good}, exitOK, []string{"ok   " + good, "1 files, 1 assertions, 0 validations: all passed"}},
		{"no cross-checks", []string{"-q", "-no-crosscheck", good}, exitOK, []string{"1 files, 1 assertions, 0 validations: all passed"}},
		{"fail", []string{good, bad}, exitFailed, []string{"FAIL " + bad, bad + ":15: assertTrue", "1 failures in 1 files"}},
		{"invalid file", []string{broken}, exitFailed, []string{"FAIL " + broken, broken + ":1:"}},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, exitFailed, []string{"no such file"}},
		{"schema files", []string{zedRoot, zed}, exitOK, []string{"ok   " + zedRoot + " (schema)", "2 files, 0 assertions, 0 validations: all passed"}},
		{"schema file importing an invalid file", []string{zedBad}, exitFailed, []string{"FAIL " + zedBad, zedBroken + `:2:14: unknown definition "usr"`}},
		{"no files", nil, exitUsage, nil},
		{"bad flag", []string{"-bogus", good}, exitUsage, nil},
		{"bad now", []string{"-now", "yesterday", good}, exitUsage, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := validateCommand(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, s := range tt.out {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout does not contain %q:\n%s", s, stdout.String())
				}
			}
		})
	}
}

// TestValidateStdinAndJSON: "-" reads a validation file or a bare schema
// from standard input, and -output json reports every file as data.
func TestValidateStdinAndJSON(t *testing.T) {
	good := validateSchema + "relationships: document:1#viewer@user:anne\nassertions:\n  assertTrue: [document:1#view@user:anne]\n  assertFalse: [document:1#view@user:bob]\n"
	bad := validateSchema + "assertions:\n  assertTrue: [document:1#view@user:anne]\n"
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string // exact stdout
	}{
		{"validation file on stdin", []string{"-"}, good, exitOK, "ok   <stdin> (2 assertions, 0 validations)\n1 files, 2 assertions, 0 validations: all passed\n"},
		{"failing validation file on stdin", []string{"-q", "-"}, bad, exitFailed,
			"FAIL <stdin> (1 assertions, 0 validations, 1 failures)\n  <stdin>:15: assertTrue document:1#view@user:anne: got no permission\n...\n1 files, 1 assertions, 0 validations: 1 failures in 1 files\n"},
		{"schema on stdin", []string{"-"}, "definition user {}\ndefinition doc { relation v: user }\n", exitOK, "ok   <stdin> (schema)\n1 files, 0 assertions, 0 validations: all passed\n"},
		{"bad schema on stdin", []string{"-"}, "definition doc { relation v: usr }\n", exitFailed,
			"FAIL <stdin>\n  <stdin>:1:30: unknown definition \"usr\" in the type list of relation \"v\"\n1 files, 0 assertions, 0 validations: 1 failures in 1 files\n"},
		{"json", []string{"-output", "json", "-"}, "definition doc { relation v: usr }\n", exitFailed,
			`{"files":[{"file":"<stdin>","kind":"schema","ok":false,"assertions":0,"validations":0,"failures":[{"file":"<stdin>","line":1,"column":30,"message":"unknown definition \"usr\" in the type list of relation \"v\""}]}],"assertions":0,"validations":0,"failures":1,"failed_files":1,"ok":false}` + "\n"},
		{"json pass", []string{"-output", "json", "-"}, good, exitOK,
			`{"files":[{"file":"<stdin>","kind":"validation","ok":true,"assertions":2,"validations":0,"failures":[]}],"assertions":2,"validations":0,"failures":0,"failed_files":0,"ok":true}` + "\n"},
		{"stdin twice", []string{"-", "-"}, good, exitUsage, ""},
		{"bad output", []string{"-output", "yaml", "-"}, good, exitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := validateWith(t.Context(), tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			// "..." stands for the explanation lines of a failure, which
			// belong to package validation.
			got := stdout.String()
			if before, after, ok := strings.Cut(tt.out, "...\n"); ok && strings.HasPrefix(got, before) && strings.HasSuffix(got, after) {
				got = tt.out
			}
			if code != tt.code || got != tt.out {
				t.Errorf("exit %d, stdout:\n%s\nwant exit %d, stdout:\n%s\nstderr: %s", code, stdout.String(), tt.code, tt.out, stderr.String())
			}
		})
	}
}
