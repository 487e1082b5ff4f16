package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const limitsSchema = `definition user {}

definition doc {
  relation viewer: user
  relation banned: user
  permission view = viewer - banned
}
`

// writeFile writes text to a file in a fresh temporary directory and
// returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// docLines returns n tuples giving user:anne viewer on doc:d00000, ...
func docLines(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("doc:d%05d#viewer@user:anne", i)
	}
	return out
}

// limitsServer serves a fresh store with limitsSchema written.
func limitsServer(t *testing.T) string {
	t.Helper()
	addr := startServer(t)
	must(t, addr, "schema", "write", writeFile(t, "schema.zed", limitsSchema))
	return addr
}

// lookup-resources prints every result, past the server's 10,000 cap on
// one page; with --limit it prints that many and says when more match.
func TestLookupResourcesPrintsEverything(t *testing.T) {
	addr := limitsServer(t)
	const n = maxLookupPage + 5
	rels := docLines(n)
	must(t, addr, "relationship", "import", writeFile(t, "rels.txt", strings.Join(rels, "\n")+"\n"))
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("doc:d%05d", i)
	}
	tests := []struct {
		name   string
		limit  int // 0: none
		print  int
		notice bool
	}{
		{"no limit", 0, n, false},
		{"limit below the page", 3, 3, true},
		{"limit at the page", maxLookupPage, maxLookupPage, true},
		{"limit across pages", maxLookupPage + 2, maxLookupPage + 2, true},
		{"limit at the total", n, n, false},
		{"limit above the total", n + 1, n, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"lookup-resources", "doc#view@user:anne"}
			if tt.limit > 0 {
				args = append(args, "--limit", fmt.Sprint(tt.limit))
			}
			r := pemba(t, addr, "", args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := lines(r.stdout); strings.Join(got, "\n") != strings.Join(want[:tt.print], "\n") {
				t.Errorf("printed %d resources, want the first %d", len(got), tt.print)
			}
			if !strings.Contains(r.stderr, fmt.Sprintf("%d resources at", tt.print)) {
				t.Errorf("stderr %q does not count %d resources", r.stderr, tt.print)
			}
			if got := strings.Contains(r.stderr, "stopped at --limit"); got != tt.notice {
				t.Errorf("notice of the limit = %v, want %v: %q", got, tt.notice, r.stderr)
			}
		})
	}
	// The notice goes to standard error in JSON mode too.
	r := pemba(t, addr, "", "lookup-resources", "doc#view@user:anne", "--limit", "2", "--output", "json")
	if r.code != 0 || len(lines(r.stdout)) != 2 || !strings.Contains(r.stderr, "stopped at --limit 2") {
		t.Errorf("json with --limit: %+v", r)
	}
}

// relationship read follows cursors page by page to the end; --limit
// stops it, with a notice when more match.
func TestRelationshipReadPages(t *testing.T) {
	addr := limitsServer(t)
	rels := docLines(7)
	must(t, addr, append([]string{"relationship", "write"}, rels...)...)
	tests := []struct {
		limit, print int
		notice       bool
	}{
		{0, 7, false}, {1, 1, true}, {3, 3, true}, {6, 6, true}, {7, 7, false}, {8, 7, false},
	}
	for _, page := range []int{1, 2, 3, 7, 1000} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("page %d limit %d", page, tt.limit), func(t *testing.T) {
				r := pemba(t, addr, "", "relationship", "read", "--resource-type", "doc",
					"--page-size", fmt.Sprint(page), "--limit", fmt.Sprint(tt.limit))
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
				if got := lines(r.stdout); strings.Join(got, "\n") != strings.Join(rels[:tt.print], "\n") {
					t.Errorf("printed %q, want the first %d", got, tt.print)
				}
				if got := strings.Contains(r.stderr, "stopped at --limit"); got != tt.notice {
					t.Errorf("notice of the limit = %v, want %v: %q", got, tt.notice, r.stderr)
				}
			})
		}
	}
}

// TestErrorsInCLIWords: the server's errors reach the user with the
// CLI's flag for the API field it names and without the server's package
// prefixes, and the connection hint only when no server answered.
func TestErrorsInCLIWords(t *testing.T) {
	addr := limitsServer(t)
	r := pemba(t, addr, "", "relationship", "delete", "--resource-type", "doc", "--limit", "99999")
	if r.code == 0 || !strings.Contains(r.stderr, "--limit: 99999 relationships exceeds the limit of") ||
		strings.Contains(r.stderr, "optional_limit") || strings.Contains(r.stderr, "engine:") {
		t.Errorf("delete --limit 99999: %+v", r)
	}
	r = pemba(t, addr, "", "check", "doc:1#view@user:anne", "--zookie", "garbage!")
	if r.code == 0 || !strings.Contains(r.stderr, "invalid zookie") || strings.Count(r.stderr, "invalid") != 1 {
		t.Errorf("check --zookie garbage!: %+v", r)
	}
	for _, tt := range []struct {
		err  error
		want string
		hint bool
	}{
		{status.Error(codes.InvalidArgument, "optional_limit: engine: 99999 relationships exceeds the limit of 1000"), "InvalidArgument: --limit: 99999 relationships exceeds the limit of 1000", false},
		{status.Error(codes.InvalidArgument, "eval: unknown relation or permission \"view\" on definition \"enterprise\""), `InvalidArgument: unknown relation or permission "view" on definition "enterprise"`, false},
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused\""), "Unavailable: connection error", true},
		{mustDetails(t, status.New(codes.Unavailable, "engine: datastore unavailable: pgstore: connection refused")), "Unavailable: datastore unavailable: pgstore: connection refused", false},
	} {
		got := describe(tt.err)
		if !strings.HasPrefix(got, tt.want) || strings.Contains(got, "is the server running") != tt.hint {
			t.Errorf("describe(%v) = %q; want prefix %q, hint %v", tt.err, got, tt.want, tt.hint)
		}
	}
}

// mustDetails attaches an ErrorInfo, as the server does to its errors.
func mustDetails(t *testing.T, st *status.Status) error {
	t.Helper()
	st, err := st.WithDetails(&errdetails.ErrorInfo{Reason: "DATASTORE_UNAVAILABLE", Domain: "pemba"})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// TestWriteExpiredWarns: writing a relationship whose expiration has
// passed (by the injected clock) warns, naming it and when it expired;
// it is still written.
func TestWriteExpiredWarns(t *testing.T) {
	addr := startServer(t)
	must(t, addr, "schema", "write", writeFile(t, "schema.zed", "use expiration\n\ndefinition user {}\n\ndefinition doc {\n  relation viewer: user with expiration\n}\n"))
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	var out, errb bytes.Buffer
	e := Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return map[string]string{"PEMBA_ADDRESS": addr}[k] }, Now: func() time.Time { return now }}
	code := e.Run(t.Context(), []string{"relationship", "write",
		"doc:1#viewer@user:anne[expiration:2026-12-04T00:00:00Z]", "doc:2#viewer@user:anne[expiration:2026-12-06T00:00:00Z]"})
	if code != 0 || !strings.Contains(errb.String(), "relationship doc:1#viewer@user:anne[expiration:2026-12-04T00:00:00Z] expired at 2026-12-04T00:00:00Z") ||
		strings.Contains(errb.String(), "doc:2") || !strings.Contains(errb.String(), "2 relationships written") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

// TestSchemaEmptyAndReadFile: an empty schema file is refused unless
// --allow-empty; schema read --file writes the schema atomically and
// leaves the file as it was when the read fails.
func TestSchemaEmptyAndReadFile(t *testing.T) {
	addr := limitsServer(t)
	empty := writeFile(t, "empty.zed", "// nothing yet\n")
	r := pemba(t, addr, "", "schema", "write", empty)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "defines nothing") || !strings.Contains(r.stderr, "--allow-empty") {
		t.Errorf("empty schema without --allow-empty: %+v", r)
	}
	if got := must(t, addr, "schema", "read"); !strings.Contains(got, "definition doc") {
		t.Errorf("schema after the refused write: %q", got)
	}
	out := filepath.Join(t.TempDir(), "schema.zed")
	must(t, addr, "schema", "read", "--file", out)
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), "definition doc") {
		t.Errorf("schema read --file wrote %q (%v)", b, err)
	}
	// A read that fails (no server there) leaves the file as it was.
	r = pemba(t, "127.0.0.1:1", "", "schema", "read", "--file", out)
	if b, _ := os.ReadFile(out); r.code == 0 || !strings.Contains(string(b), "definition doc") {
		t.Errorf("failed read: exit %d, file now %q", r.code, b)
	}
	if r := pemba(t, addr, "", "schema", "write", "--allow-empty", empty); r.code != 0 {
		t.Errorf("--allow-empty: %+v", r)
	}
	if got := must(t, addr, "schema", "read"); strings.Contains(got, "definition") {
		t.Errorf("schema after --allow-empty: %q", got)
	}
}
