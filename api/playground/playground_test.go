package playground

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/validation"
	"github.com/pemba-authz/pemba/examples/enterprise"
)

// docSchema is the schema most cases use; the line numbers in the cases
// below count from its first line.
const docSchema = `definition user {}

definition group {
	relation member: user | group#member
}

caveat on_weekday(day string) {
	day != "sat" && day != "sun"
}

definition document {
	relation owner: user
	relation viewer: user | group#member | user with on_weekday
	relation banned: user
	permission edit = owner
	permission view = (viewer + edit) - banned
}`

const docRelationships = `document:readme#owner@user:anne
document:readme#viewer@group:eng#member
group:eng#member@user:bob
document:readme#viewer@user:carl[on_weekday]
// a comment
document:readme#banned@user:dan
document:readme#viewer@user:dan`

// fixedNow is the clock of every test: answers never depend on today.
func fixedNow() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }

// testTimeout bounds evaluations in tests that do not test the limit:
// the enterprise example under -race on a loaded machine takes seconds.
const testTimeout = 2 * time.Minute

func newTestHandler() *Handler { return New(Options{Now: fixedNow, Timeout: testTimeout}) }

// post sends body as JSON and decodes the answer into out (when not nil).
func post(t *testing.T, h http.Handler, path string, body any, out any) *httptest.ResponseRecorder {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if out != nil {
		if rec.Code != http.StatusOK {
			t.Fatalf("POST %s: status %d: %s", path, rec.Code, rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("POST %s: %v: %s", path, err, rec.Body)
		}
	}
	return rec
}

func TestSchemaEndpoint(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   []Problem // Message is matched as a substring
	}{
		{name: "valid", schema: docSchema},
		{name: "empty", schema: ""},
		{
			name:   "unknown relation",
			schema: "definition user {}\ndefinition doc {\n\trelation viewer: user\n\tpermission view = viewr\n}",
			want:   []Problem{{Pane: paneSchema, Line: 4, Column: 20, Message: `"viewr"`}},
		},
		{
			name:   "column counts characters, not bytes",
			schema: "definition user {}\ndefinition doc { /* é */ permission v = nope }",
			want:   []Problem{{Pane: paneSchema, Line: 2, Column: 41, Message: `"nope"`}},
		},
		{
			name:   "syntax error",
			schema: "definition user {\n  relation x: user\n  permission = x\n}",
			want:   []Problem{{Pane: paneSchema, Line: 3, Column: 14}},
		},
		{
			name:   "CRLF line ends",
			schema: "definition user {}\r\ndefinition doc {\r\n\tpermission view = nobody\r\n}",
			want:   []Problem{{Pane: paneSchema, Line: 3, Column: 20, Message: `"nobody"`}},
		},
	}
	h := newTestHandler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got SchemaResult
			post(t, h, "/playground/api/schema", Panes{Schema: tt.schema}, &got)
			matchProblems(t, got.Problems, tt.want)
		})
	}
}

// matchProblems compares problems, matching each wanted message as a
// substring (an empty one matches any).
func matchProblems(t *testing.T, got, want []Problem) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("problems = %+v, want %+v", got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.Pane != w.Pane || g.Line != w.Line || (w.Column != 0 && g.Column != w.Column) || !strings.Contains(g.Message, w.Message) {
			t.Errorf("problem %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestRunEndpoint(t *testing.T) {
	type verdict struct {
		line int
		pass bool
		msg  string // substring of the failure message
	}
	tests := []struct {
		name        string
		panes       Panes
		problems    []Problem
		assertions  []verdict
		validations []verdict
	}{
		{
			name: "every assertion passes",
			panes: Panes{Schema: docSchema, Relationships: docRelationships, Assertions: `assertions:
  assertTrue:
    - document:readme#view@user:anne
    - document:readme#view@user:bob
    - 'document:readme#view@user:carl with {"day": "mon"}'
  assertFalse:
    - document:readme#view@user:dan
    - 'document:readme#view@user:carl with {"day": "sun"}'
  assertCaveated:
    - document:readme#view@user:carl
validation:
  document:readme#edit:
    - "[user:anne] is <document:readme#owner>"
`},
			assertions:  []verdict{{3, true, ""}, {4, true, ""}, {5, true, ""}, {7, true, ""}, {8, true, ""}, {10, true, ""}},
			validations: []verdict{{12, true, ""}},
		},
		{
			name: "failures at their lines",
			panes: Panes{Schema: docSchema, Relationships: docRelationships, Assertions: `assertions:
  assertTrue:
    - document:readme#view@user:anne
    - document:readme#edit@user:bob
  assertFalse:
    - document:readme#view@user:carl
validation:
  document:readme#edit:
    - "[user:bob] is <document:readme#owner>"
`},
			assertions:  []verdict{{3, true, ""}, {4, false, "got no permission"}, {6, false, "got conditional permission"}},
			validations: []verdict{{8, false, "[user:bob] was not found"}},
		},
		{
			name:     "schema errors stop the run",
			panes:    Panes{Schema: "definition doc {\n  permission view = nobody\n}", Relationships: "doc:1#x@user:a", Assertions: "assertions:\n  assertTrue:\n    - doc:1#view@user:a\n"},
			problems: []Problem{{Pane: paneSchema, Line: 2, Column: 21, Message: `"nobody"`}},
		},
		{
			name: "a malformed relationship, at its line",
			panes: Panes{Schema: docSchema, Relationships: "document:readme#owner@user:anne\n\ndocument:readme#owner@@user:bob",
				Assertions: "assertions:\n  assertTrue:\n    - document:readme#view@user:anne\n"},
			problems: []Problem{{Pane: paneRelationships, Line: 3, Message: "document:readme#owner@@user:bob"}},
		},
		{
			name: "a relationship the schema refuses; the rest load",
			panes: Panes{Schema: docSchema, Relationships: "document:readme#owner@user:anne\ndocument:readme#owner@group:eng\ndocument:readme#owner@user:bob",
				Assertions: "assertions:\n  assertTrue:\n    - document:readme#view@user:bob\n"},
			problems:   []Problem{{Pane: paneRelationships, Line: 2, Message: "subject type not allowed"}},
			assertions: []verdict{{3, true, ""}},
		},
		{
			name:     "malformed YAML in the assertions pane",
			panes:    Panes{Schema: docSchema, Relationships: docRelationships, Assertions: "assertions:\n  assertTrue:\n    - document:readme#view@user:anne\n  - oops: [\n"},
			problems: []Problem{{Pane: paneAssertions}},
		},
		{
			name:     "an unknown assertion kind",
			panes:    Panes{Schema: docSchema, Relationships: docRelationships, Assertions: "assertions:\n  assertMaybe:\n    - document:readme#view@user:anne\n"},
			problems: []Problem{{Pane: paneAssertions, Line: 2, Message: "assertMaybe"}},
		},
		{
			name:       "an assertion on an unknown permission fails at its line",
			panes:      Panes{Schema: docSchema, Relationships: docRelationships, Assertions: "assertions:\n  assertTrue:\n    - document:readme#read@user:anne\n"},
			assertions: []verdict{{3, false, "read"}},
		},
		{
			name: "a schema whose first line is indented",
			panes: Panes{Schema: "  definition user {}\ndefinition doc { relation r: user }", Relationships: "  doc:1#r@user:a",
				Assertions: "assertions:\n  assertTrue:\n    - doc:1#r@user:a\n"},
			assertions: []verdict{{3, true, ""}},
		},
		{
			name:  "empty panes",
			panes: Panes{},
		},
	}
	h := newTestHandler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got RunResult
			rec := post(t, h, "/playground/api/run", tt.panes, &got)
			if strings.Contains(rec.Body.String(), "null") {
				t.Errorf("the answer has a null list: %s", rec.Body)
			}
			// The YAML parser's column is not part of the answer.
			for i := range tt.problems {
				if tt.problems[i].Line == 0 {
					if len(got.Problems) > i {
						tt.problems[i].Line = got.Problems[i].Line
					}
				}
			}
			matchProblems(t, got.Problems, tt.problems)
			if len(got.Assertions) != len(tt.assertions) {
				t.Fatalf("assertions = %+v, want %d", got.Assertions, len(tt.assertions))
			}
			for i, w := range tt.assertions {
				g := got.Assertions[i]
				if g.Line != w.line || g.Pass != w.pass || !strings.Contains(g.Message, w.msg) {
					t.Errorf("assertion %d = %+v, want line %d pass %v message ~%q", i, g, w.line, w.pass, w.msg)
				}
			}
			if len(got.Validations) != len(tt.validations) {
				t.Fatalf("validations = %+v, want %d", got.Validations, len(tt.validations))
			}
			for i, w := range tt.validations {
				g := got.Validations[i]
				if g.Line != w.line || g.Pass != w.pass || !strings.Contains(strings.Join(g.Messages, "\n"), w.msg) {
					t.Errorf("validation %d = %+v, want line %d pass %v message ~%q", i, g, w.line, w.pass, w.msg)
				}
			}
		})
	}
}

// granting lists the nodes of t marked as granting, as object#relation,
// in depth-first order, and the stored subjects marked as matches.
func granting(t *Node) (nodes, subjects []string) {
	var walk func(n *Node)
	walk = func(n *Node) {
		if n.Grants {
			nodes = append(nodes, n.Object+"#"+n.Relation)
		}
		for _, s := range n.Subjects {
			if s.Match {
				subjects = append(subjects, n.Object+"#"+n.Relation+"@"+s.Subject)
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	if t != nil {
		walk(t)
	}
	return nodes, subjects
}

func TestCheckEndpoint(t *testing.T) {
	base := Panes{Schema: docSchema, Relationships: docRelationships, Assertions: "this: [is not valid YAML"}
	tests := []struct {
		name     string
		check    string
		context  string
		panes    *Panes // nil: base
		want     string // permissionship
		missing  []string
		grants   []string // object#relation of the granting nodes
		matches  []string
		err      string // substring of Error
		problems []Problem
	}{
		{
			name: "through a group", check: "document:readme#view@user:bob", want: "HAS_PERMISSION",
			grants:  []string{"document:readme#view", "document:readme#view", "document:readme#viewer", "group:eng#member"},
			matches: []string{"group:eng#member@user:bob"},
		},
		{
			name: "as owner", check: "document:readme#view@user:anne", want: "HAS_PERMISSION",
			grants:  []string{"document:readme#view", "document:readme#view", "document:readme#edit", "document:readme#owner"},
			matches: []string{"document:readme#owner@user:anne"},
		},
		{name: "banned: no path is marked", check: "document:readme#view@user:dan", want: "NO_PERMISSION"},
		{name: "a stranger", check: "document:readme#view@user:zoe", want: "NO_PERMISSION"},
		{
			name: "caveated without context", check: "document:readme#view@user:carl", want: "CONDITIONAL_PERMISSION", missing: []string{"day"},
			grants:  []string{"document:readme#view", "document:readme#view", "document:readme#viewer"},
			matches: []string{"document:readme#viewer@user:carl"},
		},
		{
			name: "caveated with context", check: "document:readme#view@user:carl", context: `{"day": "tue"}`, want: "HAS_PERMISSION",
			grants:  []string{"document:readme#view", "document:readme#view", "document:readme#viewer"},
			matches: []string{"document:readme#viewer@user:carl"},
		},
		{name: "caveat false", check: `document:readme#view@user:carl with {"day": "sat"}`, want: "NO_PERMISSION"},
		{name: "malformed check", check: "document:readme#view", err: "check"},
		{name: "malformed context", check: "document:readme#view@user:carl", context: "{day", err: "context"},
		{name: "unknown permission", check: "document:readme#read@user:anne", err: "read"},
		{name: "unknown type", check: "folder:x#view@user:anne", err: "folder"},
		{
			name: "schema errors stop the check", check: "document:readme#view@user:anne",
			panes:    &Panes{Schema: "definition document { permission view = nobody }"},
			problems: []Problem{{Pane: paneSchema, Line: 1, Column: 41}},
		},
		{
			name: "bad relationships are reported, the rest load", check: "document:readme#view@user:anne", want: "HAS_PERMISSION",
			panes:    &Panes{Schema: docSchema, Relationships: "document:readme#owner@user:anne\ndocument:readme#view@user:bob"},
			problems: []Problem{{Pane: paneRelationships, Line: 2, Message: "permission"}},
			grants:   []string{"document:readme#view", "document:readme#view", "document:readme#edit", "document:readme#owner"},
			matches:  []string{"document:readme#owner@user:anne"},
		},
	}
	h := newTestHandler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			if tt.panes != nil {
				p = *tt.panes
			}
			var got CheckResult
			post(t, h, "/playground/api/check", CheckRequest{Panes: p, Check: tt.check, Context: tt.context}, &got)
			matchProblems(t, got.Problems, tt.problems)
			if tt.err != "" || got.Error != "" {
				if tt.err == "" || !strings.Contains(got.Error, tt.err) {
					t.Fatalf("error = %q, want ~%q", got.Error, tt.err)
				}
				return
			}
			if got.Permissionship != tt.want || strings.Join(got.MissingContext, ",") != strings.Join(tt.missing, ",") {
				t.Errorf("answer = %s missing %v, want %s missing %v", got.Permissionship, got.MissingContext, tt.want, tt.missing)
			}
			if tt.want == "" {
				return
			}
			if got.Tree == nil {
				t.Fatal("no tree")
			}
			if root := got.Tree.Object + "#" + got.Tree.Relation; root != "document:readme#view" {
				t.Errorf("tree root = %s", root)
			}
			nodes, subs := granting(got.Tree)
			if strings.Join(nodes, " ") != strings.Join(tt.grants, " ") {
				t.Errorf("granting nodes = %v, want %v", nodes, tt.grants)
			}
			if strings.Join(subs, " ") != strings.Join(tt.matches, " ") {
				t.Errorf("matched subjects = %v, want %v", subs, tt.matches)
			}
		})
	}
}

func TestGrantsOnTheExample(t *testing.T) {
	// The enterprise README explains why zhang can view c42: through the
	// arrow region->viewer on region:north.
	p, err := Example()
	if err != nil {
		t.Fatal(err)
	}
	var got CheckResult
	post(t, newTestHandler(), "/playground/api/check", CheckRequest{Panes: p, Check: "crm_customer:c42#view@employee:zhang"}, &got)
	if len(got.Problems) > 0 || got.Error != "" || got.Permissionship != "HAS_PERMISSION" {
		t.Fatalf("got %+v", got)
	}
	_, subs := granting(got.Tree)
	if strings.Join(subs, " ") != "region:north#viewer@employee:zhang" {
		t.Errorf("matched subjects = %v", subs)
	}
	var arrow *Node
	for _, c := range got.Tree.Children {
		if c.Grants {
			if arrow != nil {
				t.Fatalf("two granting children of the root: %s#%s and %s#%s", arrow.Object, arrow.Relation, c.Object, c.Relation)
			}
			arrow = c
		}
	}
	if arrow == nil || !arrow.Arrow || len(arrow.Subjects) != 1 || arrow.Subjects[0].Subject != "region:north" {
		t.Errorf("the granting child of the root is %+v, want the arrow via region:north", arrow)
	}
}

func TestHTTPErrors(t *testing.T) {
	h := New(Options{Now: fixedNow, MaxRequestBytes: 100})
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		contains                        string
	}{
		{"wrong content type", "POST", "/playground/api/run", "text/plain", `{}`, http.StatusUnsupportedMediaType, "application/json"},
		{"too large", "POST", "/playground/api/run", "application/json", `{"schema": "` + strings.Repeat("x", 200) + `"}`, http.StatusRequestEntityTooLarge, "100 bytes"},
		{"malformed JSON", "POST", "/playground/api/run", "application/json", `{"schema": `, http.StatusBadRequest, "request body"},
		{"unknown field", "POST", "/playground/api/run", "application/json", `{"schemas": ""}`, http.StatusBadRequest, "schemas"},
		{"two values", "POST", "/playground/api/schema", "application/json", `{} {}`, http.StatusBadRequest, "more than one"},
		{"empty check", "POST", "/playground/api/check", "application/json", `{"check": " "}`, http.StatusBadRequest, "resource#permission@subject"},
		{"GET a POST route", "GET", "/playground/api/run", "", "", http.StatusMethodNotAllowed, ""},
		{"unknown API", "POST", "/playground/api/nope", "application/json", `{}`, http.StatusNotFound, ""},
		{"unknown asset", "GET", "/playground/static/nope.js", "", "", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("%s %s: %d %q, want %d ~%q", tt.method, tt.path, rec.Code, rec.Body, tt.status, tt.contains)
			}
		})
	}
}

func TestPageAndAssets(t *testing.T) {
	h := newTestHandler()
	tests := []struct {
		path, ctype, contains string
		status                int
	}{
		{"/playground", "", "", http.StatusMovedPermanently},
		{"/playground/", "text/html", `<script src="static/app.js"`, http.StatusOK},
		{"/playground/static/app.js", "javascript", "drawTree", http.StatusOK},
		{"/playground/static/style.css", "text/css", ".grants", http.StatusOK},
		{"/playground/api/example", "application/json", "crm_customer", http.StatusOK},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != tt.status || !strings.Contains(rec.Header().Get("Content-Type"), tt.ctype) || !strings.Contains(rec.Body.String(), tt.contains) {
			t.Errorf("GET %s: %d %s, want %d %s ~%q", tt.path, rec.Code, rec.Header().Get("Content-Type"), tt.status, tt.ctype, tt.contains)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tt.path, csp)
		}
	}
	// The page needs nothing from the network.
	for _, asset := range []string{"index.html", "app.js", "style.css"} {
		b, err := assets.ReadFile("assets/" + asset)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("http://")) && !bytes.Contains(b, []byte("http://www.w3.org/2000/svg")) || bytes.Contains(b, []byte("https://")) {
			t.Errorf("%s refers to the network", asset)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Run("busy", func(t *testing.T) {
		h := New(Options{Now: fixedNow, MaxConcurrent: 1, Timeout: time.Millisecond})
		h.turns <- struct{}{} // every turn taken
		rec := post(t, h, "/playground/api/schema", Panes{}, nil)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "busy") {
			t.Errorf("got %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("evaluation over time", func(t *testing.T) {
		h := New(Options{Now: fixedNow, Timeout: time.Millisecond})
		rec := httptest.NewRecorder()
		evaluate(h, rec, httptest.NewRequest("POST", "/", nil), func(ctx context.Context) (any, error) {
			<-ctx.Done() // an evaluation that runs until stopped
			return nil, ctx.Err()
		})
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "longer than the limit of 1ms") {
			t.Errorf("got %d %s", rec.Code, rec.Body)
		}
		if len(h.turns) != 0 {
			t.Errorf("%d turns still held", len(h.turns))
		}
	})
}

func TestDownload(t *testing.T) {
	p := Panes{Schema: docSchema, Relationships: docRelationships, Assertions: "assertions:\n  assertTrue:\n    - document:readme#view@user:anne\n"}
	rec := post(t, newTestHandler(), "/playground/api/download", p, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Disposition"), "playground.yaml") {
		t.Fatalf("got %d %v", rec.Code, rec.Header())
	}
	body, _ := io.ReadAll(rec.Body)
	// The download is a validation file that `pemba validate` runs.
	f, err := validation.Parse("playground.yaml", body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	res, err := validation.Run(context.Background(), f, validation.Options{Now: fixedNow})
	if err != nil || !res.OK() || res.Assertions != 1 {
		t.Fatalf("run: %v %+v", err, res)
	}
	if f.Schema != docSchema || len(f.Relationships) != 6 {
		t.Errorf("schema or relationships changed:\n%s", body)
	}
}

// TestComposeSplit checks that Split undoes Compose and that every line of
// every pane lands where layout.locate says.
func TestComposeSplit(t *testing.T) {
	tests := []Panes{
		{Schema: docSchema, Relationships: docRelationships, Assertions: "assertions:\n  assertTrue:\n    - document:readme#view@user:anne\n"},
		{Schema: "\n\ndefinition user {}\n\n", Relationships: "\n// c\nx:1#r@user:a\n", Assertions: "# comment\nassertions:\n"},
		{Schema: "  indented {}\n\tand a tab", Relationships: "", Assertions: ""},
		{},
	}
	for i, p := range tests {
		text, lay := p.compose()
		lines := strings.Split(text, "\n")
		for _, pane := range []struct{ name, text string }{{paneSchema, p.Schema}, {paneRelationships, p.Relationships}, {paneAssertions, p.Assertions}} {
			for j, l := range strings.Split(normalize(pane.text), "\n") {
				if strings.TrimSpace(l) == "" {
					continue
				}
				found := 0
				for k, fl := range lines {
					if strings.TrimSpace(fl) == strings.TrimSpace(l) {
						if name, line := lay.locate(k + 1); name == pane.name && line == j+1 {
							found = k + 1
						}
					}
				}
				if found == 0 {
					t.Errorf("case %d: %s line %d %q is not where locate says in\n%s", i, pane.name, j+1, l, text)
				}
			}
		}
		got, err := Split(text, "")
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if normalize(got.Schema) != strings.TrimRight(normalize(p.Schema), "\n") ||
			normalize(got.Relationships) != strings.TrimRight(normalize(p.Relationships), "\n") ||
			strings.TrimSpace(got.Assertions) != strings.TrimSpace(p.Assertions) {
			t.Errorf("case %d: Split(Compose(p)) = %+v, want %+v", i, got, p)
		}
	}
}

// TestExample checks that the example the page loads is
// examples/enterprise, whole: composed from its panes it runs every
// assertion and validation of enterprise.yaml, and they pass.
func TestExample(t *testing.T) {
	p, err := Example()
	if err != nil {
		t.Fatal(err)
	}
	if p.Schema != strings.TrimSuffix(enterprise.Schema(), "\n") {
		t.Error("the example's schema is not examples/enterprise/schema.zed")
	}
	orig, err := validation.Parse("enterprise.yaml", []byte(enterprise.ValidationFile()))
	if err != nil {
		t.Fatal(err)
	}
	var got RunResult
	post(t, newTestHandler(), "/playground/api/run", p, &got)
	if len(got.Problems) > 0 {
		t.Fatalf("problems: %+v", got.Problems)
	}
	if len(got.Assertions) != len(orig.Assertions) || len(got.Validations) != len(orig.Expected) || len(orig.Assertions) < 100 {
		t.Fatalf("%d assertions and %d validations, want %d and %d", len(got.Assertions), len(got.Validations), len(orig.Assertions), len(orig.Expected))
	}
	for _, a := range got.Assertions {
		if !a.Pass {
			t.Errorf("line %d: %s %s: %s", a.Line, a.Kind, a.Text, a.Message)
		}
	}
	for _, v := range got.Validations {
		if !v.Pass {
			t.Errorf("line %d: %s: %v", v.Line, v.Key, v.Messages)
		}
	}
	// The pane's lines are the file's, shifted: each assertion's text is
	// on the line the answer names.
	lines := strings.Split(p.Assertions, "\n")
	for _, a := range got.Assertions[:10] {
		if !strings.Contains(lines[a.Line-1], a.Text) {
			t.Errorf("assertion %q reported at line %d: %q", a.Text, a.Line, lines[a.Line-1])
		}
	}
}
