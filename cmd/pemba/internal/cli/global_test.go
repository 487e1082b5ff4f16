package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/api/server"
)

// TestGlobalFlags: connection flags before the command reach every server
// command, subcommands included, and the same flag after the command wins.
func TestGlobalFlags(t *testing.T) {
	addr := startServer(t, server.Key{Name: "ci", Secret: testSecret})
	run := func(args ...string) result {
		t.Helper()
		var out, errb bytes.Buffer
		e := Env{Stdout: &out, Stderr: &errb}
		global, rest, err := e.ParseGlobal(args)
		if err != nil {
			t.Fatalf("ParseGlobal(%q): %v", args, err)
		}
		e.Global = global
		code := e.Run(t.Context(), rest)
		return result{code, out.String(), errb.String()}
	}
	if r := run("--address", addr, "--token", testSecret, "schema", "write", exampleDir+"/schema.zed"); r.code != 0 {
		t.Fatalf("schema write with global flags: exit %d, stderr %q", r.code, r.stderr)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"global address and token", []string{"--address", addr, "--token", testSecret, "check", "employee:wang#can_message@employee:li"}, 0, "false"},
		{"single dash, = form", []string{"-address=" + addr, "-token=" + testSecret, "check", "employee:wang#can_message@employee:li"}, 0, "false"},
		{"no token: unauthenticated", []string{"--address", addr, "check", "employee:wang#can_message@employee:li"}, 1, "Unauthenticated"},
		{"the command's own flag wins", []string{"--address", "127.0.0.1:1", "--token", testSecret, "check", "--address", addr, "employee:wang#can_message@employee:li"}, 0, "false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(tt.args...)
			if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", r.code, r.stdout, r.stderr, tt.code, tt.want)
			}
		})
	}
	if _, _, err := (Env{}).ParseGlobal([]string{"--limit", "3", "check"}); err == nil || !strings.Contains(err.Error(), "only the connection flags") {
		t.Errorf("ParseGlobal(--limit 3 check) = %v; want an error naming the connection flags", err)
	}
}
