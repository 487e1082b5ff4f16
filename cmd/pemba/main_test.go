package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunDispatch(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no command", nil, 2, "", "usage: pemba [--address HOST:PORT]"},
		{"help", []string{"help"}, 0, "validate", ""},
		{"unknown", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"validate without files", []string{"validate"}, 2, "", "usage: pemba validate"},
		{"validate the example", []string{"validate", "../../examples/enterprise/enterprise.yaml"}, 0, "all passed", ""},
		{"global flags before a local command", []string{"--address", "127.0.0.1:1", "validate", "x.yaml"}, 2, "", `"validate" takes no connection flags before its name (--address ...)`},
		{"unknown global flag", []string{"--limit", "3", "check", "a:b#c@d:e"}, 2, "", "only the connection flags"},
		{"global flags and no command", []string{"--address", "127.0.0.1:1"}, 2, "", "no command after the connection flags"},
		{"global flag, unknown command", []string{"--address", "127.0.0.1:1", "frobnicate"}, 2, "", `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stdout %q, stderr %q; want them to contain %q and %q", stdout.String(), stderr.String(), tt.stdout, tt.stderr)
			}
		})
	}
}
