package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpExitsZero runs every command (and subcommand) with -h, --help
// and as `pemba help CMD`: asking for help is not a usage error, so each
// exits 0 and prints a usage line.
func TestHelpExitsZero(t *testing.T) {
	cmds := [][]string{{"bench", "run"}, {"bench", "compare"}, {"datastore", "migrate"}, {"schema", "write"}, {"relationship", "read"}, {"relationship", "count"}, {"count", "resources"}}
	for _, c := range commands() {
		cmds = append(cmds, []string{c.name})
	}
	for _, c := range cmds {
		for _, args := range [][]string{
			append(append([]string(nil), c...), "-h"),
			append(append([]string(nil), c...), "--help"),
			append([]string{"help"}, c...),
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var out, errOut bytes.Buffer
				code := run(context.Background(), args, &out, &errOut)
				if code != 0 {
					t.Fatalf("exit %d, want 0; stderr:\n%s", code, errOut.String())
				}
				if text := out.String() + errOut.String(); !strings.Contains(strings.ToLower(text), "usage") {
					t.Errorf("no usage printed:\n%s", text)
				}
			})
		}
	}
}

// TestBadUsageStillExitsTwo: a wrong flag or a missing subcommand is still
// a usage error.
func TestBadUsageStillExitsTwo(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "-no-such-flag"},
		{"bench"},
		{"bench", "run", "-no-such-flag"},
		{"bench", "compare", "a.json"},
		{"datastore"},
		{"datastore", "migrate", "-no-such-flag"},
		{"no-such-command"},
		{"help", "no-such-command"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), args, &out, &errOut); code != 2 {
				t.Fatalf("exit %d, want 2", code)
			}
		})
	}
}
