package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// docExample is one ```sh block of docs/api.md's HTTP/JSON section and
// the ```json block after it, if any: the output it must print.
type docExample struct {
	line   int // of the block in the file
	script string
	want   string // "" when no output block follows
}

// httpDocExamples extracts the examples of the "## HTTP/JSON" section.
func httpDocExamples(doc string) ([]docExample, error) { return docExamples(doc, "HTTP/JSON") }

// docExamples extracts the examples of the "## heading" section.
func docExamples(doc, heading string) ([]docExample, error) {
	start := strings.Index(doc, "\n## "+heading+"\n")
	if start < 0 {
		return nil, fmt.Errorf("no ## %s heading", heading)
	}
	first := strings.Count(doc[:start], "\n") + 2
	section := doc[start+1:]
	if i := strings.Index(section[1:], "\n## "); i >= 0 {
		section = section[:i+1]
	}
	var out []docExample
	var block []string
	lang, blockLine := "", 0
	for i, line := range strings.Split(section, "\n") {
		switch t := strings.TrimSpace(line); {
		case lang == "" && strings.HasPrefix(t, "```"):
			lang, blockLine, block = strings.TrimPrefix(t, "```")+" ", first+i, nil
		case lang != "" && t == "```":
			text := strings.Join(block, "\n") + "\n"
			switch lang {
			case "sh ":
				out = append(out, docExample{line: blockLine, script: text})
			case "json ":
				if len(out) == 0 || out[len(out)-1].want != "" {
					return nil, fmt.Errorf("line %d: an output block that follows no sh block", blockLine)
				}
				out[len(out)-1].want = text
			}
			lang = ""
		case lang != "":
			block = append(block, line)
		}
	}
	if lang != "" {
		return nil, fmt.Errorf("line %d: unterminated block", blockLine)
	}
	return out, nil
}

// sameOutput compares outputs line by line: lines that are JSON as JSON
// values with every "token" string (zookies and cursors, which differ
// from run to run) masked, other lines exactly.
func sameOutput(got, want string) bool {
	g := strings.Split(strings.TrimRight(got, "\n"), "\n")
	w := strings.Split(strings.TrimRight(want, "\n"), "\n")
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		var gv, wv any
		if json.Unmarshal([]byte(g[i]), &gv) == nil && json.Unmarshal([]byte(w[i]), &wv) == nil {
			if !reflect.DeepEqual(maskTokens(gv), maskTokens(wv)) {
				return false
			}
		} else if g[i] != w[i] {
			return false
		}
	}
	return true
}

// maskTokens replaces the value of every "token" key in v.
func maskTokens(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if _, ok := x.(string); ok && k == "token" {
				v[k] = zookieMask
			} else {
				v[k] = maskTokens(x)
			}
		}
	case []any:
		for i := range v {
			v[i] = maskTokens(v[i])
		}
	}
	return v
}

func TestHTTPDocExtraction(t *testing.T) {
	doc := "# X\n\n```sh\nnot this\n```\n\n## HTTP/JSON\n\ntext\n\n```\nplain\n```\n\n```sh\ncurl a \\\n  b\n```\n\n```json\n{\"a\":1}\n```\n\n```sh\ncurl c\n```\n\n## Next\n\n```sh\nnor this\n```\n"
	got, err := httpDocExamples(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []docExample{{line: 15, script: "curl a \\\n  b\n", want: "{\"a\":1}\n"}, {line: 24, script: "curl c\n"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := httpDocExamples("## HTTP/JSON\n\n```json\n{}\n```\n"); err == nil {
		t.Error("an output block without a command: no error")
	}
	for _, c := range []struct {
		got, want string
		same      bool
	}{
		{`{"t":{"token":"a"},"x":1}` + "\n", `{"t": {"token": "b"}, "x": 1}`, true},
		{`{"x":1}`, `{"x":2}`, false},
		{"{}\n400\n", "{}\n400", true},
		{"{}\n400\n", "{}\n404", false},
		{"{}\n{}\n", "{}", false},
	} {
		if sameOutput(c.got, c.want) != c.same {
			t.Errorf("sameOutput(%q, %q) = %v", c.got, c.want, !c.same)
		}
	}
}

// TestAPIDocCurlExamples runs the curl examples of docs/api.md's HTTP/JSON
// section, in order, against a started `pemba serve -http-listen` with a
// key, and compares each one's output with the block after it.
func TestAPIDocCurlExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the examples need curl: %v", err) // never skipped: CI installs it
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	examples, err := httpDocExamples(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) < 4 {
		t.Fatalf("%d examples, want the write, check, lookup and error ones", len(examples))
	}
	const key = "docs-example-key-0123456789"
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("docs "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startServeAll(t, "-datastore", "memory", "-keys-file", keys, "-http-listen", "127.0.0.1:0")
	if a.http == "" {
		t.Fatal("no HTTP address printed")
	}
	for _, ex := range examples {
		cmd := exec.CommandContext(t.Context(), "sh", "-e", "-c", ex.script)
		cmd.Env = append(os.Environ(), "PEMBA_HTTP="+a.http, "PEMBA_KEY="+key)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("docs/api.md:%d: %v\nstdout:\n%s\nstderr:\n%s", ex.line, err, stdout.String(), stderr.String())
		}
		if ex.want != "" && !sameOutput(stdout.String(), ex.want) {
			t.Errorf("docs/api.md:%d printed\n%s\nwant (tokens aside)\n%s", ex.line, stdout.String(), ex.want)
		}
	}
}
