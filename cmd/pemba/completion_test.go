package main

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// runMainEnv makes the test binary behave as pemba itself (TestMain), so
// that a real shell can run it as the completion scripts do.
const runMainEnv = "PEMBA_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestComplete(t *testing.T) {
	tests := []struct {
		words []string
		want  []string // exactly, when exact; else contained
		exact bool
	}{
		{[]string{""}, []string{"check", "schema", "serve", "completion", "help"}, false},
		{[]string{"sc"}, []string{"schema"}, true},
		{[]string{"schema", ""}, []string{"compile", "diff", "fmt", "read", "write"}, false},
		{[]string{"schema", "w"}, []string{"write"}, true},
		{[]string{"schema", "write", "--t"}, []string{"--tls", "--tls-ca", "--token"}, true},
		{[]string{"relationship", ""}, []string{"delete", "export", "import", "read", "write"}, false},
		{[]string{"check", "--exi"}, []string{"--exit-code"}, true},
		{[]string{"check", "-ex"}, []string{"--exit-code", "--explain"}, true},
		{[]string{"--address", "127.0.0.1:1", "lookup-r"}, []string{"lookup-resources"}, true},
		{[]string{"--insecure", "expa"}, []string{"expand"}, true},
		{[]string{"--tok"}, []string{"--token"}, true},
		{[]string{"bench", ""}, []string{"compare", "run"}, true},
		{[]string{"bench", "run", "--addr"}, []string{"--address"}, true}, // -addr is a hidden alias
		{[]string{"serve", "--sto"}, nil, true},                           // so is -store
		{[]string{"serve", "--log-"}, []string{"--log-format", "--log-level"}, true},
		{[]string{"datastore", ""}, []string{"migrate", "rebuild-index", "verify-index"}, true},
		{[]string{"completion", ""}, []string{"bash", "fish", "zsh"}, true},
		{[]string{"help", "wat"}, []string{"watch"}, true},
		{[]string{"au"}, []string{"audit"}, true},
		{[]string{"audit", ""}, []string{"query", "verify"}, true},
		{[]string{"audit", "query", "--re"}, []string{"--relation"}, true},
		{[]string{"check", "doc:1#view@user:a"}, nil, true}, // an argument: files, from the shell
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.words, " "), func(t *testing.T) {
			got := complete(t.Context(), tt.words)
			if tt.exact && !slices.Equal(got, tt.want) {
				t.Errorf("complete(%q) = %q, want %q", tt.words, got, tt.want)
			}
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("complete(%q) = %q, lacks %q", tt.words, got, w)
				}
			}
		})
	}
}

// TestBashCompletion sources `pemba completion bash` in a real bash, with
// pemba being this test binary, and completes as bash would.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed for the completion test: ", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	if code := run(t.Context(), []string{"completion", "bash"}, &script, os.Stderr); code != 0 {
		t.Fatalf("completion bash: exit %d", code)
	}
	// COMP_WORDS as bash splits "pemba schema w" (cursor on the last word).
	prog := `pemba() { ` + runMainEnv + `=1 "` + self + `" "$@"; }
` + script.String() + `
COMP_WORDS=(pemba schema w); COMP_CWORD=2; _pemba; echo "${COMPREPLY[*]}"
COMP_WORDS=(pemba check --exit); COMP_CWORD=2; _pemba; echo "${COMPREPLY[*]}"
COMP_WORDS=(pemba ""); COMP_CWORD=1; _pemba; echo "${#COMPREPLY[@]}"
`
	out, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	commandsAndHelp := strconv.Itoa(len(commands()) + 1)
	if len(lines) != 3 || lines[0] != "write" || lines[1] != "--exit-code" || lines[2] != commandsAndHelp {
		t.Errorf("bash completed %q; want write, --exit-code and the %s commands", lines, commandsAndHelp)
	}
	for _, shell := range []string{"zsh", "fish"} {
		var s strings.Builder
		if code := run(t.Context(), []string{"completion", shell}, &s, os.Stderr); code != 0 || !strings.Contains(s.String(), "pemba __complete") {
			t.Errorf("completion %s: exit %d, script %q", shell, code, s.String())
		}
	}
}
