package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
	"github.com/pemba-authz/pemba/engine/store/pgstore"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
)

const auditSchema = `definition user {}
definition doc {
  relation viewer: user
  permission view = viewer
}
`

// auditWrites makes one write of each kind through the command line,
// each with a reason, and returns the schema file it wrote.
func auditWrites(t *testing.T, env map[string]string) {
	t.Helper()
	run := func(stdin string, args ...string) {
		t.Helper()
		if r := pembaEnv(t, env, stdin, args...); r.code != 0 {
			t.Fatalf("pemba %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	run(auditSchema, "schema", "write", "--reason", "initial model", "-")
	run("", "relationship", "write", "--reason", "ticket 42", "doc:1#viewer@user:tom", "doc:2#viewer@user:ann")
	run("", "relationship", "delete", "--reason", "tom left", "--resource-type", "doc", "--subject", "user:tom")
	run("doc:3#viewer@user:ann\ndoc:4#viewer@user:bob\n", "relationship", "import", "--reason", "migration", "-")
}

// TestAuditCommands: --reason on every write command reaches the audit
// log with the key's name; audit query filters, pages and prints; audit
// verify passes on an untouched log.
func TestAuditCommands(t *testing.T) {
	addr := startServer(t, server.Key{Name: "ops", Secret: testSecret})
	env := map[string]string{"PEMBA_ADDRESS": addr, "PEMBA_TOKEN": testSecret}
	auditWrites(t, env)
	query := func(args ...string) string {
		t.Helper()
		r := pembaEnv(t, env, "", append([]string{"audit", "query"}, args...)...)
		if r.code != 0 {
			t.Fatalf("audit query %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	// Text: a header per entry, then its changes.
	out := query("--subject", "user:tom")
	re := regexp.MustCompile(`(?m)^// revision (\d+) \S+ at \S+ by (\S+): (\w+) request "[^"]+" reason "([^"]*)"$`)
	var heads []string
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		heads = append(heads, strings.Join(m[1:], " "))
	}
	if want := []string{"2 ops WriteRelationships ticket 42", "3 ops DeleteRelationships tom left"}; !slices.Equal(heads, want) {
		t.Errorf("audit query --subject user:tom headers %q, want %q\n%s", heads, want, out)
	}
	for _, line := range []string{"touch doc:1#viewer@user:tom\n", "touch doc:2#viewer@user:ann\n", "delete doc:1#viewer@user:tom\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("audit query output lacks %q:\n%s", line, out)
		}
	}
	type entry struct {
		Revision  uint64 `json:"revision"`
		Caller    string `json:"caller"`
		Reason    string `json:"reason"`
		Operation string `json:"operation"`
		Cursor    string `json:"cursor"`
		Hash      string `json:"hash"`
		Updates   []struct {
			Operation string `json:"operation"`
		} `json:"updates"`
	}
	entries := func(out string) []entry {
		t.Helper()
		var es []entry
		for _, l := range lines(out) {
			if l == "" {
				continue
			}
			var e entry
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			es = append(es, e)
		}
		return es
	}
	all := entries(query("--output", "json"))
	var got []string
	for _, e := range all {
		got = append(got, e.Operation+" "+e.Reason)
		if e.Caller != "ops" || len(e.Hash) != 64 {
			t.Errorf("entry %d: caller %q hash %q", e.Revision, e.Caller, e.Hash)
		}
	}
	if want := []string{"WriteSchema initial model", "WriteRelationships ticket 42", "DeleteRelationships tom left", "ImportRelationships migration"}; !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	for _, tc := range []struct {
		args []string
		want []uint64
	}{
		{[]string{"--object", "doc:3"}, []uint64{4}},
		{[]string{"--object", "doc", "--relation", "viewer"}, []uint64{2, 3, 4}},
		{[]string{"--caller", "ops", "--limit", "1"}, []uint64{1}},
		{[]string{"--caller", "nobody"}, nil},
		{[]string{"--since", "2000-01-01T00:00:00Z", "--until", "2000-01-02T00:00:00Z"}, nil},
		{[]string{"--cursor", all[1].Cursor}, []uint64{3, 4}},
	} {
		var revs []uint64
		for _, e := range entries(query(append(tc.args, "--output", "json")...)) {
			revs = append(revs, e.Revision)
		}
		if !slices.Equal(revs, tc.want) {
			t.Errorf("audit query %v: revisions %v, want %v", tc.args, revs, tc.want)
		}
	}
	for _, bad := range [][]string{{"--object", "doc:"}, {"--since", "yesterday"}, {"--subject", ":x"}, {"extra"}} {
		if r := pembaEnv(t, env, "", append([]string{"audit", "query"}, bad...)...); r.code != ExitUsage {
			t.Errorf("audit query %v: exit %d, want %d (%s)", bad, r.code, ExitUsage, r.stderr)
		}
	}
	r := pembaEnv(t, env, "", "audit", "verify")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ok: 4 entries verified, revisions 1 to 4\n") {
		t.Errorf("audit verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Without a key the log is not readable.
	if r := pemba(t, addr, "", "audit", "verify"); r.code != ExitFailed || !strings.Contains(r.stderr, "Unauthenticated") {
		t.Errorf("audit verify without a key: exit %d: %s", r.code, r.stderr)
	}
}

// TestAuditVerifyTampered edits one audit entry in the datastore, behind
// the server's back (Pebble: through the data directory's keys;
// PostgreSQL: with SQL), and `pemba audit verify` names exactly that
// entry.
func TestAuditVerifyTampered(t *testing.T) {
	// Revision 2's reason becomes "ticket 43": same length, so only the
	// hash can tell.
	forge := func(enc []byte) []byte {
		return bytes.Replace(enc, []byte("ticket 42"), []byte("ticket 43"), 1)
	}
	tests := []struct {
		name string
		// open returns the store and the edit of revision 2's entry.
		open func(t *testing.T) (store.Store, func(t *testing.T))
	}{
		{"pebble", func(t *testing.T) (store.Store, func(t *testing.T)) {
			st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			return st, func(t *testing.T) {
				if err := st.TamperAudit(2, forge); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"postgres", func(t *testing.T) (store.Store, func(t *testing.T)) {
			uri, _ := pgtest.NewDatabase(t)
			ctx := context.Background()
			if err := pgstore.Migrate(ctx, uri); err != nil {
				t.Fatal(err)
			}
			st, err := pgstore.Open(ctx, uri, pgstore.Options{GCInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			return st, func(t *testing.T) {
				if n := pgtest.Exec(t, uri, `UPDATE pemba_audit SET entry = overlay(entry placing 'ticket 43'::bytea from position('ticket 42'::bytea in entry))
					WHERE revision = 2`); n != 1 {
					t.Fatalf("tampered with %d rows", n)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, tamper := tt.open(t)
			addr := serveStore(t, st)
			env := map[string]string{"PEMBA_ADDRESS": addr}
			auditWrites(t, env)
			if r := pembaEnv(t, env, "", "audit", "verify"); r.code != 0 {
				t.Fatalf("audit verify before tampering: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			tamper(t)
			r := pembaEnv(t, env, "", "audit", "verify")
			if r.code != ExitFailed || !strings.HasPrefix(r.stdout, "MISMATCH at revision 2: hash mismatch\n") ||
				!strings.Contains(r.stdout, "1 entry before it verified, revision 1\n") {
				t.Errorf("audit verify after tampering with revision 2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			t.Logf("pemba audit verify:\n%s", r.stdout)
			r = pembaEnv(t, env, "", "audit", "verify", "--output", "json")
			var rep struct {
				OK            bool `json:"ok"`
				FirstMismatch struct {
					Revision uint64 `json:"revision"`
				} `json:"first_mismatch"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.OK || rep.FirstMismatch.Revision != 2 || r.code != ExitFailed {
				t.Errorf("audit verify --output json: exit %d %s (%v)", r.code, r.stdout, err)
			}
			// The query shows the edited text: the log is evidence, not a vault.
			if out := pembaEnv(t, env, "", "audit", "query", "--object", "doc:2").stdout; !strings.Contains(out, `reason "ticket 43"`) {
				t.Errorf("query after tampering:\n%s", out)
			}
		})
	}
}

// serveStore serves an engine over st (closed with it) until the test
// ends and returns the address.
func serveStore(t *testing.T, st store.Store) string {
	t.Helper()
	eng, err := engine.Open(context.Background(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(eng, server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		eng.Close()
		st.Close()
	})
	return lis.Addr().String()
}

// TestCounted: the plurals the CLI prints, "entry" included.
func TestCounted(t *testing.T) {
	for _, tc := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "relationship", "0 relationships"},
		{1, "relationship", "1 relationship"},
		{2, "relationship", "2 relationships"},
		{1, "entry", "1 entry"},
		{4, "entry", "4 entries"},
		{0, "entry", "0 entries"},
		{2, "key", "2 keys"},
	} {
		if got := counted(tc.n, tc.noun); got != tc.want {
			t.Errorf("counted(%d, %q) = %q, want %q", tc.n, tc.noun, got, tc.want)
		}
	}
}
