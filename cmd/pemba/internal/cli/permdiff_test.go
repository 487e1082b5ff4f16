package cli

import (
	"bufio"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiffAndWatchPermissions: on the enterprise example, revoke li's
// grant on the acme-globex link and ask the diff what it removed; then
// watch can_message while the link's approval is revoked.
func TestDiffAndWatchPermissions(t *testing.T) {
	addr := startServer(t)
	must(t, addr, "schema", "write", filepath.Join(exampleDir, "schema.zed"))
	z0 := strings.TrimSpace(must(t, addr, "relationship", "import", filepath.Join(exampleDir, "quickstart.relationships")))
	z1 := strings.TrimSpace(must(t, addr, "relationship", "write", "--op", "delete", "link:acme_globex#granted@employee:li", "employee:li#link@link:acme_globex"))

	r := pemba(t, addr, "", "diff", "--from", z0, "--to", z1, "employee#can_message")
	if r.code != 0 {
		t.Fatalf("diff: exit %d: %s", r.code, r.stderr)
	}
	if want := "- employee:li#can_message@employee:wang\n- employee:wang#can_message@employee:li\n"; r.stdout != want {
		t.Errorf("diff printed\n%s\nwant\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "2 changes (0 granted, 2 revoked) from 2 relationship changes") {
		t.Errorf("diff summary: %q", r.stderr)
	}
	one := must(t, addr, "diff", "--from", z0, "--to", z1, "--subject", "employee:li", "--output", "json", "employee:wang#can_message")
	if want := `{"resource":"employee:wang","permission":"can_message","subject":"employee:li","before":"has_permission","after":"no_permission"}` + "\n"; one != want {
		t.Errorf("diff --subject --output json printed %s, want %s", one, want)
	}
	for _, bad := range [][]string{
		{"diff", "--to", z1, "employee#can_message"},   // no --from
		{"diff", "--from", z0, "--to", z1, "employee"}, // no permission
		{"diff", "--from", z0, "--to", z1, "--subject", "employee:li", "--subject-type", "employee", "employee#can_message"},
	} {
		if r := pemba(t, addr, "", bad...); r.code != 2 {
			t.Errorf("pemba %s: exit %d, want 2 (usage)", strings.Join(bad, " "), r.code)
		}
	}
	if r := pemba(t, addr, "", "diff", "--from", z1, "--to", z0, "employee#can_message"); r.code != 1 || !strings.Contains(r.stderr, "InvalidArgument") {
		t.Errorf("reversed diff: exit %d, stderr %q", r.code, r.stderr)
	}

	// The watch starts from z0, before li's grant was revoked: it
	// replays that write (li loses can_message), then sees the link's
	// approval revoked (deng loses it too).
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		e := Env{Stdout: pw, Stderr: &stderr, Getenv: func(k string) string { return map[string]string{"PEMBA_ADDRESS": addr}[k] }}
		done <- e.Run(ctx, []string{"watch-permissions", "--from", z0, "employee#can_message"})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "// checkpoint "+z0+" at ") {
		t.Fatalf("first line %q, want the checkpoint at %s (stderr %s)", sc.Text(), z0, stderr.String())
	}
	step := func(z string, want ...string) {
		t.Helper()
		var got []string
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "// checkpoint") {
				if !strings.HasPrefix(sc.Text(), "// checkpoint "+z+" at ") {
					t.Errorf("checkpoint %q, want one at %s", sc.Text(), z)
				}
				break
			}
			got = append(got, sc.Text())
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("watch-permissions printed %q before the checkpoint at %s, want %q", got, z, want)
		}
	}
	step(z1,
		"- employee:li#can_message@employee:wang (write at "+z1+")",
		"- employee:wang#can_message@employee:li (write at "+z1+")")
	z2 := strings.TrimSpace(must(t, addr, "relationship", "write", "--op", "delete", "link:acme_globex#approved@employee:*", "link:acme_globex#granted@employee:wang", "link:acme_globex#granted@employee:zhao", "link:acme_globex#granted@employee:bill", "link:acme_globex#granted@employee:deng"))
	step(z2,
		"- employee:deng#can_message@employee:wang (write at "+z2+")",
		"- employee:wang#can_message@employee:deng (write at "+z2+")")
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}
