package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// startServeHTTP runs `pemba serve -http-listen 127.0.0.1:0 args...` until
// the test ends and returns the lines it printed up to its gRPC address.
func startServeHTTP(t *testing.T, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-listen", "127.0.0.1:0", "-store", "memory", "-http-listen", "127.0.0.1:0"}, args...), pw, &stderr)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			cancel()
			t.Fatalf("serve printed %q, then %v (exit %d, stderr %s)", lines, err, <-done, stderr.String())
		}
		lines = append(lines, strings.TrimSpace(line))
		if strings.HasPrefix(line, "pemba: serving gRPC on ") {
			break
		}
	}
	go io.Copy(io.Discard, br)
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited with %d; stderr:\n%s", code, stderr.String())
		}
	})
	return lines
}

// printedURL returns the URL in the printed line that starts with prefix.
func printedURL(t *testing.T, lines []string, prefix string) string {
	t.Helper()
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("no line %q... in %q", prefix, lines)
	return ""
}

func TestServePlayground(t *testing.T) {
	lines := startServeHTTP(t, "-playground")
	url := printedURL(t, lines, "pemba: serving the playground on ")
	if !strings.HasSuffix(url, "/playground/") {
		t.Fatalf("playground URL %q", url)
	}
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
	lines := startServeHTTP(t)
	base := strings.TrimSuffix(printedURL(t, lines, "pemba: serving HTTP/JSON on "), "/v1/")
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
		{"without an HTTP listener", []string{"-store", "memory", "-playground"}, "-playground needs -http-listen"},
		{"off loopback", []string{"-store", "memory", "-insecure-no-auth", "-http-listen", "0.0.0.0:0", "-playground"}, "-playground-public"},
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
