package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/token"
)

const (
	// goRun is how the README invokes pemba; the test substitutes a
	// binary built once.
	goRun = "go run ./cmd/pemba"
	// expectPrefix starts a README comment line showing a line of the
	// standard output of the command before it. A command's "# → "
	// lines are its whole standard output; a command without any must
	// print nothing there.
	expectPrefix = "# → "
	// zookieMask replaces zookies, which differ from run to run, in
	// the outputs that the test compares.
	zookieMask = "<zookie>"
)

// quickstartCommand is one command of the README's quickstart and the
// lines of standard output it must print.
type quickstartCommand struct {
	line   string
	expect []string
}

// quickstart extracts the commands of the ```sh blocks under the
// "## Quickstart" heading of a README.
func quickstart(readme string) ([]quickstartCommand, error) {
	_, section, ok := strings.Cut(readme, "\n## Quickstart")
	if !ok {
		return nil, fmt.Errorf("no ## Quickstart heading")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var cmds []quickstartCommand
	inBlock := false
	pending := ""
	for _, line := range strings.Split(section, "\n") {
		switch {
		case !inBlock && strings.TrimSpace(line) == "```sh":
			inBlock = true
			continue
		case inBlock && strings.TrimSpace(line) == "```":
			inBlock = false
			continue
		case !inBlock:
			continue
		}
		line = strings.TrimSpace(line)
		if line == strings.TrimSpace(expectPrefix) {
			line = expectPrefix // an empty line of output
		}
		switch {
		case strings.HasPrefix(line, expectPrefix):
			if len(cmds) == 0 {
				return nil, fmt.Errorf("expected output %q before any command", line)
			}
			cmds[len(cmds)-1].expect = append(cmds[len(cmds)-1].expect, strings.TrimPrefix(line, expectPrefix))
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasSuffix(line, "\\"):
			pending += strings.TrimSuffix(line, "\\") + " "
		default:
			cmds = append(cmds, quickstartCommand{line: pending + line})
			pending = ""
		}
	}
	if inBlock || pending != "" {
		return nil, fmt.Errorf("unterminated code block or continued line")
	}
	return cmds, nil
}

func TestQuickstartExtraction(t *testing.T) {
	readme := "# X\n\n## Quickstart\n\ntext\n\n```sh\n# a comment\ngo run ./cmd/pemba check a \\\n  b\n# → true\n# →\n# →   x  \ngo run ./cmd/pemba y\n```\n\n```go\nignored\n```\n\n## Next\n\n```sh\nnot this\n```\n"
	got, err := quickstart(readme)
	want := []quickstartCommand{
		{line: "go run ./cmd/pemba check a  b", expect: []string{"true", "", "  x"}},
		{line: "go run ./cmd/pemba y"},
	}
	if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("quickstart = %q, %v; want %q", got, err, want)
	}
	if _, err := quickstart("# no quickstart\n"); err == nil {
		t.Error("a README without a quickstart passed")
	}
}

// TestReadmeQuickstart runs the README's quickstart against a real
// `pemba serve` child process, so that the quickstart cannot rot: every
// command must exit 0 and print the output its "# → " lines show.
func TestReadmeQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a server")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := quickstart(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "pemba")
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// The quickstart starts the server in the background and stops it
	// with kill %1; the test runs that serve command itself, on a free
	// port, and the rest through sh.
	var script strings.Builder
	script.WriteString("set -u\n")
	var run []quickstartCommand
	var serve string
	for _, c := range cmds {
		switch {
		case strings.HasPrefix(c.line, goRun+" serve "):
			if serve != "" {
				t.Fatal("the quickstart starts two servers")
			}
			serve = c.line
		case c.line == "kill %1":
		default:
			if !strings.Contains(c.line, goRun+" ") {
				t.Fatalf("quickstart command %q does not run %q", c.line, goRun)
			}
			i := len(run)
			run = append(run, c)
			fmt.Fprintf(&script, "echo '@@@ %d'; echo '@@@ %d' >&2\n%s\necho \"@@@ exit $?\"\n", i, i, strings.ReplaceAll(c.line, goRun, strconv.Quote(bin)))
		}
	}
	if serve == "" || len(run) < 8 {
		t.Fatalf("quickstart has no serve command or too few commands (%d)", len(run))
	}
	addr := startReadmeServer(t, ctx, bin, serve)

	cmd := exec.CommandContext(ctx, sh, "-c", script.String())
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PEMBA_ADDRESS="+addr, "PEMBA_TOKEN=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sh: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	outs := splitMarked(stdout.String())
	errs := splitMarked(stderr.String())
	exitRE := regexp.MustCompile(`(?m)^@@@ exit (\d+)\n?\z`)
	for i, c := range run {
		out := outs[i]
		m := exitRE.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("%s: no exit status in output %q", c.line, out)
			continue
		}
		out = out[:len(out)-len(m[0])]
		if m[1] != "0" {
			t.Errorf("%s: exit %s\nstdout:\n%s\nstderr:\n%s", c.line, m[1], out, errs[i])
		}
		if got, want := maskZookies(out), maskZookies(expectedOutput(c.expect)); got != want {
			t.Errorf("%s: the README shows a different output (zookies masked)\nREADME:\n%sstdout:\n%sstderr:\n%s", c.line, want, got, errs[i])
		}
	}
}

// expectedOutput is the standard output that a command's "# → " lines show.
func expectedOutput(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// maskZookies replaces each line of s that is a well-formed zookie (of
// any datastore) with zookieMask.
func maskZookies(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, line := range lines {
		text := strings.TrimSuffix(line, "\n")
		if _, err := token.DecodeZookie(token.Fingerprint{}, text); err == nil || errors.Is(err, token.ErrOtherStore) {
			lines[i] = zookieMask + line[len(text):]
		}
	}
	return strings.Join(lines, "")
}

func TestMaskZookies(t *testing.T) {
	z := token.EncodeZookie(token.FingerprintOf("memory", "x"), 42)
	// One character changed: CRC-32 catches every burst of up to 32 bits.
	c := byte('A')
	if z[5] == c {
		c = 'B'
	}
	corrupt := z[:5] + string(c) + z[6:]
	for _, tc := range []struct{ in, want string }{
		{z + "\n", zookieMask + "\n"},
		{"true\n" + z + "\nfalse\n", "true\n" + zookieMask + "\nfalse\n"},
		{z, zookieMask},
		{"checked at " + z + "\n", "checked at " + z + "\n"}, // only whole lines
		{corrupt + "\n", corrupt + "\n"},                     // the checksum fails
		{"true\nemployee:zhang\n", "true\nemployee:zhang\n"},
		{"", ""},
	} {
		if got := maskZookies(tc.in); got != tc.want {
			t.Errorf("maskZookies(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// splitMarked splits output at "@@@ N" lines into the parts after each.
func splitMarked(s string) map[int]string {
	parts := map[int]string{}
	cur := -1
	for _, line := range strings.SplitAfter(s, "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "@@@ %d\n", &n); err == nil && !strings.HasPrefix(line, "@@@ exit") {
			cur = n
			continue
		}
		if cur >= 0 {
			parts[cur] += line
		}
	}
	return parts
}

// startReadmeServer runs the README's serve command (listening on a free
// loopback port instead) until the test ends, and returns the address
// it printed once listening.
func startReadmeServer(t *testing.T, ctx context.Context, bin, line string) string {
	t.Helper()
	line = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), "&"))
	if strings.ContainsAny(line, `'"$`) {
		t.Fatalf("serve command %q needs a shell; keep it to plain words", line)
	}
	args := strings.Fields(strings.TrimPrefix(line, goRun))
	for i := range args {
		if i > 0 && (args[i-1] == "-listen" || args[i-1] == "--listen") {
			args[i] = "127.0.0.1:0"
		}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	var stderr bytes.Buffer
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	// The address is logged (on stderr) once the listener is open.
	br := bufio.NewReader(io.TeeReader(errPipe, &stderr))
	addr, _, err := readAddrs(br)
	if err != nil {
		stop()
		t.Fatalf("serve %q: %v; stderr:\n%s", args, err, stderr.String())
	}
	go io.Copy(io.Discard, br)
	t.Cleanup(stop)
	return addr
}

// TestQuickstartRelationships: the quickstart's relationship file is the
// relationships block of the enterprise validation file, line for line.
func TestQuickstartRelationships(t *testing.T) {
	yaml, err := os.ReadFile("../../examples/enterprise/enterprise.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rels, err := os.ReadFile("../../examples/enterprise/quickstart.relationships")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(yaml), "\nrelationships: |\n")
	if !ok {
		t.Fatal("enterprise.yaml has no relationships: | block")
	}
	var want []string
	for _, line := range strings.Split(block, "\n") {
		if line != "" && !strings.HasPrefix(line, "  ") {
			break // the next top-level key
		}
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "//") {
			want = append(want, l)
		}
	}
	var got []string
	for _, line := range strings.Split(string(rels), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "//") {
			got = append(got, l)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("quickstart.relationships (%d relationships) differs from enterprise.yaml's block (%d); regenerate it", len(got), len(want))
	}
}
