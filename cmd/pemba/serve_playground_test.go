package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestServePlayground(t *testing.T) {
	url := startServeAll(t, "-datastore", "memory", "-http-listen", "127.0.0.1:0", "-playground").http + "/playground/"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "<title>Pemba playground</title>") {
		t.Fatalf("GET %s: %d %.200s", url, resp.StatusCode, page)
	}
	// The page's API answers from the panes it is sent, without a key.
	body := `{"schema": "definition user {}\ndefinition doc { relation viewer: user }", "relationships": "doc:1#viewer@user:anne", "assertions": "", "check": "doc:1#viewer@user:anne"}`
	resp, err = http.Post(url+"api/check", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Permissionship string }
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || got.Permissionship != "HAS_PERMISSION" {
		t.Fatalf("POST api/check: %d %+v %v", resp.StatusCode, got, err)
	}
}

func TestServePlaygroundOff(t *testing.T) {
	base := startServeAll(t, "-datastore", "memory", "-http-listen", "127.0.0.1:0").http
	resp, err := http.Get(base + "/playground/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /playground/ without -playground: %d, want 404", resp.StatusCode)
	}
}

func TestServePlaygroundUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"without an HTTP listener", []string{"-datastore", "memory", "-playground"}, "-playground needs -http-listen"},
		{"off loopback", []string{"-datastore", "memory", "-insecure-no-auth", "-http-listen", "0.0.0.0:0", "-playground"}, "-playground-public"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), append([]string{"serve", "-listen", "127.0.0.1:0"}, tt.args...), &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestPlaygroundDocExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the examples need curl: %v", err) // never skipped: CI installs it
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	examples, err := docExamples(string(doc), "The playground")
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) != 2 {
		t.Fatalf("%d examples, want the schema and the check ones", len(examples))
	}
	a := startServeAll(t, "-datastore", "memory", "-http-listen", "127.0.0.1:0", "-playground")
	for _, ex := range examples {
		cmd := exec.CommandContext(t.Context(), "sh", "-e", "-c", ex.script)
		cmd.Env = append(os.Environ(), "PEMBA_HTTP="+a.http)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("docs/cli.md:%d: %v\nstdout:\n%s\nstderr:\n%s", ex.line, err, stdout.String(), stderr.String())
		}
		if ex.want == "" || !sameOutput(stdout.String(), ex.want) {
			t.Errorf("docs/cli.md:%d printed\n%s\nwant\n%s", ex.line, stdout.String(), ex.want)
		}
	}
}
