package authzen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pemba-authz/pemba/api/authzen"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// A conformance file (testdata/*.yaml) is a world, a schema and its
// relationships, and HTTP exchanges with it, transcribed from the
// specification's text; see certification.yaml and spec_examples.yaml.
type conformanceFile struct {
	// Fixture names another file whose schema and relationships this
	// one uses.
	Fixture       string `yaml:"fixture"`
	Schema        string `yaml:"schema"`
	Relationships string `yaml:"relationships"`
	Options       struct {
		BaseURL string `yaml:"base_url"`
		// Keys turns authentication on: secret -> holder.
		Keys map[string]string `yaml:"keys"`
	} `yaml:"options"`
	Cases []conformanceCase `yaml:"cases"`
}

type conformanceCase struct {
	Name   string `yaml:"name"`
	Method string `yaml:"method"` // default POST
	Path   string `yaml:"path"`
	// Request is the body, as JSON; Body a raw body instead.
	Request     any               `yaml:"request"`
	Body        *string           `yaml:"body"`
	ContentType *string           `yaml:"content_type"` // default application/json
	Headers     map[string]string `yaml:"headers"`
	// Repeat sends the request this many times, expecting the same
	// answer each time.
	Repeat int `yaml:"repeat"`

	Status          int               `yaml:"status"`
	ResponseHeaders map[string]string `yaml:"response_headers"`
	// Response is compared with the JSON body by Match: "subset" (the
	// default: objects may have more members, arrays must have the same
	// length), "exact", or "contains" (arrays need only include the
	// expected elements, in any order). "$nonempty" matches any
	// non-empty string in every mode.
	Response any    `yaml:"response"`
	Match    string `yaml:"match"`
	// SameAs expects the very body of an earlier case.
	SameAs string `yaml:"same_as"`
	// Error is a substring of an error response's message.
	Error string `yaml:"error"`
}

// conformanceClock fixes the engine's time: expirations in the test data
// lie in 2020 and 2099.
var conformanceClock = func() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) }

// newWorld opens an engine over a fresh memstore holding schema and the
// relationships (one per line, tuple.Parse syntax).
func newWorld(t testing.TB, schema, relationships string) *engine.Engine {
	t.Helper()
	return newWorldWith(t, engine.Options{}, schema, relationships)
}

// newWorldWith is newWorld with engine options (the clock is always
// conformanceClock).
func newWorldWith(t testing.TB, opts engine.Options, schema, relationships string) *engine.Engine {
	t.Helper()
	ctx := context.Background()
	opts.Now = conformanceClock
	eng, err := engine.Open(ctx, memstore.New(memstore.Options{Now: conformanceClock}), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if _, _, err := eng.WriteSchema(ctx, "test", schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	importRels(t, eng, relationships)
	return eng
}

// importRels imports relationships, one per line in tuple.Parse syntax
// ("//" starts a comment line).
func importRels(t testing.TB, eng *engine.Engine, text string) {
	t.Helper()
	var rels []tuple.Relationship
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "//") {
			continue
		}
		r, err := tuple.Parse(line)
		if err != nil {
			t.Fatalf("relationship %q: %v", line, err)
		}
		rels = append(rels, r)
	}
	if len(rels) > 0 {
		_, _, err := eng.Import(context.Background(), "test", func(yield func(tuple.Relationship, error) bool) {
			for _, r := range rels {
				if !yield(r, nil) {
					return
				}
			}
		})
		if err != nil {
			t.Fatalf("relationships: %v", err)
		}
	}
}

func TestConformance(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no conformance files")
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
			f := readConformance(t, path)
			eng := newWorld(t, f.Schema, f.Relationships)
			opts := authzen.Options{BaseURL: f.Options.BaseURL}
			if len(f.Options.Keys) > 0 {
				opts.Authenticate = keyChecker(f.Options.Keys)
			}
			h, err := authzen.New(eng, opts)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			bodies := map[string][]byte{}
			var nextToken string
			for _, c := range f.Cases {
				if c.Name == "" || c.Path == "" {
					t.Fatalf("%s: a case needs a name and a path", path)
				}
				if _, dup := bodies[c.Name]; dup {
					t.Fatalf("%s: two cases named %q", path, c.Name)
				}
				body := runCase(t, srv, c, nextToken)
				bodies[c.Name] = body
				if c.Status == http.StatusOK {
					var page struct {
						Page *struct {
							NextToken string `json:"next_token"`
						} `json:"page"`
					}
					if json.Unmarshal(body, &page) == nil && page.Page != nil {
						nextToken = page.Page.NextToken
					}
				}
				if c.SameAs != "" {
					want, ok := bodies[c.SameAs]
					if !ok {
						t.Fatalf("%s: same_as names no earlier case %q", c.Name, c.SameAs)
					}
					if !bytes.Equal(body, want) {
						t.Errorf("%s: body\n%s\nwant the body of %q\n%s", c.Name, body, c.SameAs, want)
					}
				}
			}
		})
	}
}

func readConformance(t testing.TB, path string) *conformanceFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f conformanceFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if f.Fixture != "" {
		base := readConformance(t, filepath.Join(filepath.Dir(path), f.Fixture))
		f.Schema, f.Relationships = base.Schema, base.Relationships
	}
	if f.Schema == "" || len(f.Cases) == 0 {
		t.Fatalf("%s: no schema or no cases", path)
	}
	return &f
}

// keyChecker accepts the given secrets, as api/server's keys do.
func keyChecker(keys map[string]string) authzen.Authenticator {
	return func(key string) (string, error) {
		if name, ok := keys[key]; ok {
			return name, nil
		}
		return "", fmt.Errorf("the key is not valid")
	}
}

// runCase sends c's request (every time it is repeated) and checks the
// answer; it returns the body.
func runCase(t *testing.T, srv *httptest.Server, c conformanceCase, nextToken string) []byte {
	t.Helper()
	var body []byte
	switch {
	case c.Body != nil:
		body = []byte(*c.Body)
	case c.Request != nil:
		req := substitute(normalize(t, c.Request), nextToken)
		var err error
		if body, err = json.Marshal(req); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
	}
	method := c.Method
	if method == "" {
		method = http.MethodPost
	}
	var first []byte
	for i := 0; i < max(c.Repeat, 1); i++ {
		req, err := http.NewRequest(method, srv.URL+c.Path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if method == http.MethodPost {
			ct := "application/json"
			if c.ContentType != nil {
				ct = *c.ContentType
			}
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
		}
		for k, v := range c.Headers {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if resp.StatusCode != c.Status {
			t.Errorf("%s: status %d, want %d; body: %s", c.Name, resp.StatusCode, c.Status, got)
			return got
		}
		for k, v := range c.ResponseHeaders {
			if h := resp.Header.Get(k); h != v {
				t.Errorf("%s: response header %s = %q, want %q", c.Name, k, h, v)
			}
		}
		if c.Error != "" && !strings.Contains(string(got), c.Error) {
			t.Errorf("%s: error %q does not contain %q", c.Name, got, c.Error)
		}
		// §C-5: a successful answer is application/json; an error is
		// a message string (§10.1.2).
		if ct := resp.Header.Get("Content-Type"); c.Status == http.StatusOK && ct != "application/json" {
			t.Errorf("%s: a 200 with Content-Type %q", c.Name, ct)
		}
		if c.Status >= 400 && resp.Header.Get("Content-Type") == "application/json" {
			t.Errorf("%s: an error answered as JSON: %s", c.Name, got)
		}
		if c.Response != nil {
			var actual any
			if err := json.Unmarshal(got, &actual); err != nil {
				t.Fatalf("%s: body is not JSON: %v: %s", c.Name, err, got)
			}
			want := normalize(t, c.Response)
			if msg := match(c.Match, want, actual, ""); msg != "" {
				t.Errorf("%s: %s\n got: %s", c.Name, msg, got)
			}
		}
		if i == 0 {
			first = got
		} else if !bytes.Equal(got, first) {
			t.Errorf("%s: repeat %d answered %s, the first time %s", c.Name, i, got, first)
		}
	}
	return first
}

// normalize round-trips YAML values through JSON, so that numbers and
// maps have the types encoding/json gives.
func normalize(t testing.TB, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// substitute replaces the string "$next_token" with the page token of
// the previous response.
func substitute(v any, nextToken string) any {
	switch x := v.(type) {
	case string:
		if x == "$next_token" {
			return nextToken
		}
	case map[string]any:
		for k, e := range x {
			x[k] = substitute(e, nextToken)
		}
	case []any:
		for i, e := range x {
			x[i] = substitute(e, nextToken)
		}
	}
	return v
}

// match compares want with got by mode; it returns "" or what differs.
func match(mode string, want, got any, path string) string {
	if path == "" {
		path = "body"
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: want an object", path)
		}
		if mode == "exact" {
			for k := range g {
				if _, ok := w[k]; !ok {
					return fmt.Sprintf("%s.%s is unexpected", path, k)
				}
			}
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Sprintf("%s.%s is missing", path, k)
			}
			if msg := match(mode, wv, gv, path+"."+k); msg != "" {
				return msg
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Sprintf("%s: want an array", path)
		}
		if mode == "contains" {
			for i, wv := range w {
				found := false
				for _, gv := range g {
					if match(mode, wv, gv, "") == "" {
						found = true
						break
					}
				}
				if !found {
					return fmt.Sprintf("%s has no element like [%d] %s", path, i, jsonOf(wv))
				}
			}
			return ""
		}
		if len(g) != len(w) {
			return fmt.Sprintf("%s has %d elements, want %d: %s", path, len(g), len(w), jsonOf(w))
		}
		for i := range w {
			if msg := match(mode, w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); msg != "" {
				return msg
			}
		}
		return ""
	case string:
		if w == "$nonempty" {
			if s, ok := got.(string); ok && s != "" {
				return ""
			}
			return fmt.Sprintf("%s = %s, want a non-empty string", path, jsonOf(got))
		}
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Sprintf("%s = %s, want %s", path, jsonOf(got), jsonOf(want))
	}
	return ""
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
