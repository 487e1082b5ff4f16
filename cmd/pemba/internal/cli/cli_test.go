package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/schema"
)

const (
	exampleDir = "../../../../examples/enterprise"
	testSecret = "cli-test-secret-0123456789abcdef"
)

// startServer serves a fresh memstore engine on 127.0.0.1:0 until the
// test ends and returns its address.
func startServer(t *testing.T, keys ...server.Key) string {
	t.Helper()
	return startServerConfig(t, server.Config{Keys: keys})
}

func startServerConfig(t *testing.T, cfg server.Config) string {
	t.Helper()
	return startServerEngine(t, engine.Options{}, cfg)
}

// startServerEngine is startServerConfig with engine options (small
// limits, say).
func startServerEngine(t *testing.T, opts engine.Options, cfg server.Config) string {
	t.Helper()
	st := memstore.New(memstore.Options{})
	eng, err := engine.Open(context.Background(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(eng, cfg)
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

// result is what one command run produced.
type result struct {
	code           int
	stdout, stderr string
}

// pemba runs one command against addr (as PEMBA_ADDRESS) with stdin.
func pemba(t *testing.T, addr, stdin string, args ...string) result {
	t.Helper()
	return pembaEnv(t, map[string]string{"PEMBA_ADDRESS": addr}, stdin, args...)
}

func pembaEnv(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	code := e.Run(t.Context(), args)
	return result{code, out.String(), errb.String()}
}

// must runs a command that must succeed and returns its standard output.
func must(t *testing.T, addr string, args ...string) string {
	t.Helper()
	r := pemba(t, addr, "", args...)
	if r.code != 0 {
		t.Fatalf("pemba %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// TestEnterpriseScenario drives every server command through the
// enterprise example, as a newcomer would.
func TestEnterpriseScenario(t *testing.T) {
	addr := startServer(t)
	schemaFile := filepath.Join(exampleDir, "schema.zed")
	zk := strings.TrimSpace(must(t, addr, "schema", "write", schemaFile))
	if zk == "" {
		t.Fatal("schema write printed no zookie")
	}
	src, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := must(t, addr, "schema", "read"); strings.TrimSpace(got) != strings.TrimSpace(string(src)) {
		t.Errorf("schema read differs from the file written:\n%s", got)
	}

	// Watch from the schema's zookie, so the import below is seen however
	// late the stream starts.
	watchCtx, stopWatch := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	watchDone := make(chan int, 1)
	var watchErr syncBuffer
	go func() {
		e := Env{Stdout: pw, Stderr: &watchErr, Getenv: func(k string) string { return map[string]string{"PEMBA_ADDRESS": addr}[k] }}
		watchDone <- e.Run(watchCtx, []string{"watch", "--zookie", zk})
		pw.Close()
	}()

	imported := must(t, addr, "relationship", "import", filepath.Join(exampleDir, "quickstart.relationships"))
	if strings.TrimSpace(imported) == "" {
		t.Error("import printed no zookie")
	}
	sc := bufio.NewScanner(pr)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "// ") {
		t.Fatalf("watch header = %q (stderr %s)", sc.Text(), watchErr.String())
	}
	if !sc.Scan() || sc.Text() != "touch platform:pemba#reviewer@employee:ada" {
		t.Errorf("first watched change = %q", sc.Text())
	}
	stopWatch()
	go io.Copy(io.Discard, pr)
	if code := <-watchDone; code != 0 {
		t.Errorf("watch ended with exit %d: %s", code, watchErr.String())
	}

	checks := []struct {
		args []string
		want string
		code int // with --exit-code
	}{
		{[]string{"employee:wang#can_message@employee:li"}, "true", 0},
		{[]string{"employee:wang#can_message@employee:zhao"}, "false", ExitDenied},
		{[]string{"employee:li", "can_message", "employee:bill"}, "false", ExitDenied},
		{[]string{"department:acme_finance#manage@employee:sun"}, "false", ExitDenied},
		{[]string{"department:acme_hr_recruiting#manage@employee:sun"}, "true", 0},
		{[]string{"link:acme_globex#use_file_transfer@employee:li"}, "conditional (missing context: size)", ExitConditional},
		{[]string{"link:acme_globex#use_file_transfer@employee:li", "--context", `{"size": 1048576}`}, "true", 0},
	}
	for _, c := range checks {
		if got := strings.TrimSpace(must(t, addr, append([]string{"check"}, c.args...)...)); got != c.want {
			t.Errorf("check %q = %q, want %q", c.args, got, c.want)
		}
		if r := pemba(t, addr, "", append([]string{"check", "--exit-code"}, c.args...)...); r.code != c.code {
			t.Errorf("check --exit-code %q: exit %d, want %d", c.args, r.code, c.code)
		}
	}

	tree := must(t, addr, "expand", "crm_customer:c42#view")
	for _, want := range []string{
		"∪ crm_customer:c42#view\n",
		"├── crm_customer:c42#viewer: department:acme_sales_north_key#member, employee:deng, employee:xu\n",
		"│   └── department:acme_sales_north_key#member: employee:zhou\n",
		"├── → via region:north\n│   └── region:north#viewer: employee:zhang\n",
		"        └── enterprise:acme#super_admin: employee:liu\n",
	} {
		if !strings.Contains(tree, want) {
			t.Errorf("expand lacks %q:\n%s", want, tree)
		}
	}
	if tree := must(t, addr, "expand", "crm_customer:c42#view", "--subject", "employee:zhang"); strings.Count(tree, "←") != 1 || !strings.Contains(tree, "region:north#viewer: employee:zhang  ← employee:zhang\n") {
		t.Errorf("expand --subject employee:zhang:\n%s", tree)
	}
	if tree := must(t, addr, "expand", "link:acme_globex#approved", "--subject", "employee:li"); !strings.Contains(tree, "employee:*  ← employee:li") {
		t.Errorf("expand --subject marks no wildcard:\n%s", tree)
	}
	if tree := must(t, addr, "expand", "crm_customer:c42#view_contact", "--depth", "1"); !strings.Contains(tree, "− crm_customer:c42#view_contact") || !strings.Contains(tree, "(truncated)") {
		t.Errorf("expand --depth 1 of an exclusion:\n%s", tree)
	}

	if got := lines(must(t, addr, "lookup-resources", "crm_customer#edit@employee:zhao")); !slices.Equal(got, []string{"crm_customer:c42", "crm_customer:c7", "crm_customer:c99"}) {
		t.Errorf("lookup-resources = %q", got)
	}
	if got := lines(must(t, addr, "lookup-resources", "crm_customer#edit@employee:zhao", "--limit", "2")); len(got) != 2 {
		t.Errorf("lookup-resources --limit 2 = %q", got)
	}
	wantViewers := []string{"employee:chen", "employee:deng", "employee:guo", "employee:lin", "employee:liu", "employee:pan", "employee:qin", "employee:xu", "employee:zhang", "employee:zhao", "employee:zhou"}
	if got := lines(must(t, addr, "lookup-subjects", "crm_customer:c42#view", "employee")); !slices.Equal(got, wantViewers) {
		t.Errorf("lookup-subjects = %q", got)
	}

	// Reads page through with cursors; export lists everything.
	read := lines(must(t, addr, "relationship", "read", "--resource-type", "crm_customer", "--resource-id", "c42", "--page-size", "2"))
	if len(read) != 11 || !slices.Contains(read, "crm_customer:c42#region@region:north") {
		t.Errorf("read c42 = %q", read)
	}
	if got := lines(must(t, addr, "relationship", "read", "--resource-type", "crm_customer", "--subject", "department#member")); !slices.Equal(got, []string{"crm_customer:c42#viewer@department:acme_sales_north_key#member"}) {
		t.Errorf("read by subject set = %q", got)
	}
	// 224 imported, of which 11 expired in 2020 and are no longer read.
	if n := len(lines(must(t, addr, "relationship", "export"))); n != 213 {
		t.Errorf("export: %d relationships, want 213", n)
	}

	// An employee joins, then leaves: the check at the delete's zookie
	// denies, the one at the join's exact snapshot still allows.
	joined := strings.TrimSpace(must(t, addr, "relationship", "write", "--op", "create",
		"enterprise:acme#member@employee:tom", "crm_customer:c42#viewer@employee:tom"))
	if got := strings.TrimSpace(must(t, addr, "check", "crm_customer:c42#view@employee:tom", "--zookie", joined)); got != "true" {
		t.Errorf("tom before leaving: %q", got)
	}
	if r := pemba(t, addr, "", "relationship", "write", "--op", "create", "enterprise:acme#member@employee:tom"); r.code != 1 || !strings.Contains(r.stderr, "AlreadyExists") {
		t.Errorf("create twice: exit %d, stderr %q", r.code, r.stderr)
	}
	del := pemba(t, addr, "", "relationship", "delete", "--resource-type", "crm_customer", "--subject", "employee:tom")
	if del.code != 0 || !strings.Contains(del.stderr, "1 relationship deleted") {
		t.Fatalf("delete: %+v", del)
	}
	left := pemba(t, addr, "// tom leaves acme\n\nenterprise:acme#member@employee:tom\n", "relationship", "write", "--op", "delete", "--file", "-")
	if left.code != 0 {
		t.Fatalf("write --op delete --file -: %+v", left)
	}
	if got := strings.TrimSpace(must(t, addr, "check", "--zookie", strings.TrimSpace(left.stdout), "enterprise:acme#member@employee:tom")); got != "false" {
		t.Errorf("tom's membership after leaving: %q", got)
	}
	gone := strings.TrimSpace(del.stdout)
	for _, c := range []struct{ mode, zk, want string }{
		{"at_least_as_fresh", gone, "false"},
		{"at_exact_snapshot", joined, "true"},
	} {
		if got := strings.TrimSpace(must(t, addr, "check", "--consistency", c.mode, "--zookie", c.zk, "crm_customer:c42#view@employee:tom")); got != c.want {
			t.Errorf("check at %s: %q, want %q", c.mode, got, c.want)
		}
	}
}

// seed writes the enterprise schema and a few relationships and returns
// the write's zookie.
func seed(t *testing.T, addr string) string {
	t.Helper()
	must(t, addr, "schema", "write", filepath.Join(exampleDir, "schema.zed"))
	return strings.TrimSpace(must(t, addr, "relationship", "write",
		"enterprise:acme#member@employee:li", "enterprise:acme#creator@employee:chen",
		"crm_customer:c1#enterprise@enterprise:acme", "crm_customer:c1#viewer@employee:li",
		`link:l1#file_transfer@employee:li[file_size_limit:{"max_bytes":10}]`))
}

// TestJSONOutput checks that --output json prints parseable JSON with the
// fields scripts need.
func TestJSONOutput(t *testing.T) {
	addr := startServer(t)
	zk := seed(t, addr)
	tests := []struct {
		args []string
		want map[string]any // top-level fields of the first JSON line
	}{
		{[]string{"check", "crm_customer:c1#view@employee:li"}, map[string]any{"permissionship": "has_permission", "allowed": true}},
		{[]string{"check", "crm_customer:c1#view@employee:wang"}, map[string]any{"permissionship": "no_permission", "allowed": false}},
		{[]string{"check", "link:l1#file_transfer@employee:li"}, map[string]any{"permissionship": "conditional_permission", "missing_context": []any{"size"}}},
		{[]string{"lookup-resources", "crm_customer#view@employee:chen"}, map[string]any{"resource": "crm_customer:c1", "resource_id": "c1"}},
		{[]string{"lookup-subjects", "crm_customer:c1#view", "employee"}, map[string]any{"subject": "employee:chen"}},
		{[]string{"relationship", "read", "--resource-type", "link"}, map[string]any{"resource": "link:l1", "caveat": "file_size_limit", "caveat_context": map[string]any{"max_bytes": float64(10)}}},
		{[]string{"relationship", "export", "--resource-type", "crm_customer", "--relation", "viewer"}, map[string]any{"text": "crm_customer:c1#viewer@employee:li"}},
		{[]string{"schema", "read"}, map[string]any{}},
		{[]string{"expand", "crm_customer:c1#view"}, map[string]any{}},
		{[]string{"relationship", "write", "crm_customer:c2#viewer@employee:li"}, map[string]any{"written": float64(1)}},
		{[]string{"relationship", "delete", "--resource-type", "crm_customer", "--resource-id", "c2"}, map[string]any{"deleted": float64(1), "complete": true}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			out := must(t, addr, append(tt.args, "--output", "json")...)
			var got map[string]any
			if err := json.Unmarshal([]byte(lines(out)[0]), &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			for k, v := range tt.want {
				if gb, _ := json.Marshal(got[k]); string(gb) != string(must1(json.Marshal(v))) {
					t.Errorf("%s = %s, want %v", k, gb, v)
				}
			}
			if tt.args[0] != "schema" || tt.args[1] != "read" {
				if _, ok := got["zookie"].(string); !ok && tt.args[0] != "relationship" {
					t.Errorf("no zookie in %v", got)
				}
			}
		})
	}
	// expand's tree is the API's tree in protojson.
	var ex struct {
		Zookie string `json:"zookie"`
		Tree   struct {
			Intermediate struct{ Operation string } `json:"intermediate"`
		} `json:"tree"`
	}
	if err := json.Unmarshal([]byte(must(t, addr, "expand", "crm_customer:c1#view", "--output", "json", "--zookie", zk)), &ex); err != nil || ex.Tree.Intermediate.Operation != "OPERATION_UNION" || ex.Zookie == "" {
		t.Errorf("expand json = %+v, %v", ex, err)
	}
}

func must1(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestExitCodes: usage errors exit 2 before any call; failures exit 1
// with the gRPC code in the message.
func TestExitCodes(t *testing.T) {
	addr := startServer(t)
	zk := seed(t, addr)
	dead := func() string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := lis.Addr().String()
		lis.Close()
		return a
	}()
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"no command", "", nil, 2, "no command"},
		{"unknown command", "", []string{"frob"}, 2, `unknown command "frob"`},
		{"schema without subcommand", "", []string{"schema"}, 2, "missing subcommand"},
		{"unknown subcommand", "", []string{"relationship", "frob"}, 2, `unknown subcommand "frob"`},
		{"unknown flag", "", []string{"check", "--frob", "a:b#c@d:e"}, 2, "flag provided but not defined: -frob"},
		{"check without argument", "", []string{"check"}, 2, "want RESOURCE#PERMISSION@SUBJECT"},
		{"check without @", "", []string{"check", "doc:1#view"}, 2, "want RESOURCE#PERMISSION@SUBJECT"},
		{"check bad subject", "", []string{"check", "doc:1#view@user"}, 2, "subject"},
		{"check bad context", "", []string{"check", "doc:1#view@user:a", "--context", "[1]"}, 2, "--context"},
		{"bad output", "", []string{"check", "doc:1#view@user:a", "--output", "yaml"}, 2, `unknown --output "yaml"`},
		{"bad consistency", "", []string{"check", "doc:1#view@user:a", "--consistency", "eventually"}, 2, "unknown --consistency"},
		{"fresh without zookie", "", []string{"check", "doc:1#view@user:a", "--consistency", "at_least_as_fresh"}, 2, "needs --zookie"},
		{"zookie with full", "", []string{"check", "doc:1#view@user:a", "--consistency", "fully_consistent", "--zookie", zk}, 2, "--zookie goes with"},
		{"insecure and tls", "", []string{"check", "doc:1#view@user:a", "--insecure", "--tls"}, 2, "contradicts"},
		{"delete without type", "", []string{"relationship", "delete", "--subject", "employee:li"}, 2, "--resource-type is required"},
		{"delete bad subject", "", []string{"relationship", "delete", "--resource-type", "doc", "--subject", "user:"}, 2, "--subject"},
		{"write nothing", "", []string{"relationship", "write"}, 2, "no tuples"},
		{"write bad op", "", []string{"relationship", "write", "--op", "upsert", "a:b#c@d:e"}, 2, "unknown --op"},
		{"lookup-resources on an object", "", []string{"lookup-resources", "doc:1#view@user:a"}, 2, "a type, not an object"},
		{"lookup-subjects one argument", "", []string{"lookup-subjects", "doc:1#view"}, 2, "want RESOURCE#PERMISSION and SUBJECT_TYPE"},
		{"expand without permission", "", []string{"expand", "doc:1"}, 2, "TYPE:ID#PERMISSION"},
		{"watch stray argument", "", []string{"watch", "x"}, 2, "unexpected arguments"},

		{"bad tuple argument", "", []string{"relationship", "write", "doc:1#viewer"}, 2, "argument 1"},
		{"bad tuple on a line", "// c\nenterprise:acme#member@employee:li\nnot a tuple\n", []string{"relationship", "write", "--file", "-"}, 1, "<stdin>:3:"},
		{"unknown relation", "", []string{"relationship", "write", "enterprise:acme#frob@employee:li"}, 1, "InvalidArgument: "},
		{"unknown permission", "", []string{"check", "enterprise:acme#frob@employee:li"}, 1, "InvalidArgument: "},
		{"garbage zookie", "", []string{"check", "--zookie", "garbage", "enterprise:acme#member@employee:li"}, 1, "InvalidArgument: "},
		{"missing file", "", []string{"relationship", "import", "/nonexistent/x"}, 1, "no such file"},
		{"invalid schema", "definition user {\n  relation r: nobody\n}\n", []string{"schema", "write", "-"}, 1, "<stdin>:2:"},
		{"unreachable server", "", []string{"check", "--address", dead, "enterprise:acme#member@employee:li"}, 1, "Unavailable: "},
		{"watch of an unreachable server", "", []string{"watch", "--address", dead}, 1, "Unavailable: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := pemba(t, addr, tt.stdin, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
		})
	}
	if r := pemba(t, addr, "", "check", "-h"); r.code != 0 || !strings.Contains(r.stdout, "usage: pemba check") || !strings.Contains(r.stdout, "-consistency") {
		t.Errorf("check -h: %+v", r)
	}
}

// TestToken: the preshared key comes from --token or PEMBA_TOKEN.
func TestToken(t *testing.T) {
	addr := startServer(t, server.Key{Name: "cli", Secret: testSecret})
	src := "definition user {}\n"
	if r := pemba(t, addr, src, "schema", "write", "-"); r.code != 1 || !strings.Contains(r.stderr, "Unauthenticated") {
		t.Errorf("without a token: %+v", r)
	}
	if r := pemba(t, addr, src, "schema", "write", "-", "--token", testSecret); r.code != 0 {
		t.Errorf("with --token: %+v", r)
	}
	env := map[string]string{"PEMBA_ADDRESS": addr, "PEMBA_TOKEN": testSecret}
	if r := pembaEnv(t, env, "", "schema", "read"); r.code != 0 || r.stdout != src {
		t.Errorf("with PEMBA_TOKEN: %+v", r)
	}
	if r := pembaEnv(t, env, "", "schema", "read", "-h"); strings.Contains(r.stdout, testSecret) {
		t.Error("-h printed the token")
	}
}

// TestSchemaFmtAndDiff: the offline schema tools.
func TestSchemaFmtAndDiff(t *testing.T) {
	dir := t.TempDir()
	messy := "definition user {}\ndefinition doc {\n relation viewer: user\n  permission view = viewer+viewer }\n"
	file := filepath.Join(dir, "doc.zed")
	if err := os.WriteFile(file, []byte(messy), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := schema.FormatSource("doc.zed", messy)
	if err != nil {
		t.Fatal(err)
	}
	if r := pemba(t, "", "", "schema", "fmt", file); r.code != 0 || r.stdout != want {
		t.Errorf("fmt: %+v, want stdout %q", r, want)
	}
	if r := pemba(t, "", messy, "schema", "fmt", "-"); r.code != 0 || r.stdout != want {
		t.Errorf("fmt -: %+v", r)
	}
	if r := pemba(t, "", "", "schema", "fmt", "-w", file); r.code != 0 || r.stdout != "" {
		t.Errorf("fmt -w: %+v", r)
	}
	if b, _ := os.ReadFile(file); string(b) != want {
		t.Errorf("after -w the file holds %q", b)
	}
	bad := filepath.Join(dir, "bad.zed")
	if err := os.WriteFile(bad, []byte("definition doc {\n  relation viewer user\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := pemba(t, "", "", "schema", "fmt", bad, file); r.code != 1 || !strings.Contains(r.stderr, bad+":2:") || r.stdout != want {
		t.Errorf("fmt of a bad and a good file: %+v", r)
	}
	if r := pemba(t, "", "", "schema", "fmt"); r.code != 2 {
		t.Errorf("fmt without files: %+v", r)
	}

	newer := filepath.Join(dir, "new.zed")
	if err := os.WriteFile(newer, []byte("definition user {}\ndefinition doc {\n  relation editor: user\n  permission view = editor\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := pemba(t, "", "", "schema", "diff", file, newer)
	if r.code != 0 || !strings.Contains(r.stdout, "relation removed: doc#viewer") || !strings.Contains(r.stdout, "relation added: doc#editor") || !strings.Contains(r.stdout, "permission changed: doc#view") {
		t.Errorf("diff: %+v", r)
	}
	r = pemba(t, "", "", "schema", "diff", "--output", "json", file, newer)
	var changes []map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &changes); err != nil || len(changes) != 3 || changes[0]["kind"] == "" {
		t.Errorf("diff json: %q, %v", r.stdout, err)
	}
	if r := pemba(t, "", "", "schema", "diff", file, file); r.code != 0 || r.stdout != "" {
		t.Errorf("diff of equal files: %+v", r)
	}
	if r := pemba(t, "", "", "schema", "diff", file, bad); r.code != 1 || !strings.Contains(r.stderr, bad+":2:") {
		t.Errorf("diff with an invalid file: %+v", r)
	}
	if r := pemba(t, "", "", "schema", "diff", file); r.code != 2 {
		t.Errorf("diff with one file: %+v", r)
	}
}

func TestParseSubjectFilter(t *testing.T) {
	tests := []struct {
		in           string
		typ, id, rel string
		bad          bool
	}{
		{in: "user", typ: "user"},
		{in: "user:anne", typ: "user", id: "anne"},
		{in: "group:eng#member", typ: "group", id: "eng", rel: "member"},
		{in: "group#member", typ: "group", rel: "member"},
		{in: "user#...", typ: "user", rel: "..."},
		{in: "", bad: true},
		{in: "user:", bad: true},
		{in: "user#", bad: true},
		{in: ":anne", bad: true},
	}
	for _, tt := range tests {
		sf, err := parseSubjectFilter(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && (sf.Type != tt.typ || sf.ID != tt.id || sf.Relation != tt.rel)) {
			t.Errorf("parseSubjectFilter(%q) = %+v, %v", tt.in, sf, err)
		}
	}
}

// TestWatchJSON: watch --output json prints one object per transaction,
// filtered by --object-type, and ends with exit 0 when cancelled.
func TestWatchJSON(t *testing.T) {
	addr := startServer(t)
	must(t, addr, "schema", "write", filepath.Join(exampleDir, "schema.zed"))
	// acme needs its creator before its members (the one_creator
	// invariant); the watch starts after it.
	zk := strings.TrimSpace(must(t, addr, "relationship", "write", "enterprise:acme#creator@employee:chen"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		e := Env{Stdout: pw, Stderr: &stderr, Getenv: func(k string) string { return map[string]string{"PEMBA_ADDRESS": addr}[k] }}
		done <- e.Run(ctx, []string{"watch", "--output", "json", "--zookie", zk, "--object-type", "crm_customer"})
		pw.Close()
	}()
	must(t, addr, "relationship", "write", "enterprise:acme#member@employee:li")
	must(t, addr, "relationship", "write", "crm_customer:c1#viewer@employee:li", "enterprise:acme#member@employee:wang")
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("no output; stderr %s", stderr.String())
	}
	var got struct {
		Zookie  string `json:"zookie"`
		Caller  string `json:"caller"`
		Updates []struct {
			Operation    string           `json:"operation"`
			Relationship jsonRelationship `json:"relationship"`
		} `json:"updates"`
	}
	if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, sc.Text())
	}
	if got.Zookie == "" || len(got.Updates) != 1 || got.Updates[0].Operation != "touch" || got.Updates[0].Relationship.Text != "crm_customer:c1#viewer@employee:li" {
		t.Errorf("watched %s", sc.Text())
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

// TestWatchResumes: when the server restarts, watch resumes after the
// last change it printed.
func TestWatchResumes(t *testing.T) {
	st := memstore.New(memstore.Options{})
	defer st.Close()
	eng, err := engine.Open(context.Background(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	// serve serves eng on lis until stop is called.
	serve := func(lis net.Listener) (stop func()) {
		srv, err := server.New(eng, server.Config{})
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(lis) }()
		return func() {
			srv.Stop()
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	stop := serve(lis)
	must(t, addr, "schema", "write", filepath.Join(exampleDir, "schema.zed"))
	// acme needs its creator before its members (the one_creator
	// invariant); the watch starts after it.
	zk := strings.TrimSpace(must(t, addr, "relationship", "write", "enterprise:acme#creator@employee:chen"))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		e := Env{Stdout: pw, Stderr: &stderr, Getenv: func(k string) string { return map[string]string{"PEMBA_ADDRESS": addr}[k] }}
		done <- e.Run(ctx, []string{"watch", "--zookie", zk})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	next := func() string {
		t.Helper()
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "//") {
				return sc.Text()
			}
		}
		t.Fatalf("watch output ended; stderr %s", stderr.String())
		return ""
	}
	must(t, addr, "relationship", "write", "enterprise:acme#member@employee:li")
	if got := next(); got != "touch enterprise:acme#member@employee:li" {
		t.Fatalf("before the restart: %q", got)
	}

	stop()
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	defer serve(lis)()
	must(t, addr, "relationship", "write", "enterprise:acme#member@employee:wang")
	if got := next(); got != "touch enterprise:acme#member@employee:wang" {
		t.Errorf("after the restart: %q", got)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "Unavailable") || !strings.Contains(stderr.String(), "resuming in") {
		t.Errorf("stderr %q does not report the resumption", stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for one writer goroutine and a
// reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
