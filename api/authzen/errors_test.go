package authzen_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/api/authzen"
	"github.com/pemba-authz/pemba/engine"
)

// Requests the API refuses as a whole get the status of §10.1.2's table
// (400, 401, 500; 413 for an oversized body, 503 when the datastore
// cannot answer) with an error message string as the body, never JSON
// and never a dropped connection. Test data: errors.yaml has the
// malformed requests; these are the cases YAML cannot express.

const errorsSchema = `
definition user {}
definition group {
  relation member: user | group#member
}
definition doc {
  relation viewer: user | group#member
  permission read = viewer
}`

func TestOversizedBody(t *testing.T) {
	eng := newWorld(t, errorsSchema, "doc:1#viewer@user:u")
	h := newHandler(t, eng, authzen.Options{MaxBodyBytes: 200})
	ok := `{"subject":{"type":"user","id":"u"},"action":{"name":"read"},"resource":{"type":"doc","id":"1"}}`
	pad := `,"context":{"pad":"` + strings.Repeat("x", 200) + `"}}`
	big := strings.TrimSuffix(ok, "}") + pad
	for _, path := range authzen.Patterns()[:5] {
		status, body := call(t, h, path, big, nil)
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: %d bytes: status %d, want 413; body %s", path, len(big), status, body)
		}
		if !strings.Contains(string(body), "larger than 200 bytes") {
			t.Errorf("%s: body %q does not say the limit", path, body)
		}
	}
	// The limit is on the body, not on what a body may say.
	if status, body := call(t, h, authzen.EvaluationPath, ok, nil); status != http.StatusOK {
		t.Errorf("a %d-byte body: status %d: %s", len(ok), status, body)
	}
}

// An answer the engine cannot give (the data nests deeper than its
// limit) is a 500 for a single evaluation and the item's error in a
// batch; it is never a deny.
func TestInternalError(t *testing.T) {
	eng := newWorldWith(t, engine.Options{MaxDepth: 3}, errorsSchema, "")
	importRels(t, eng, `
doc:deep#viewer@group:g1#member
group:g1#member@group:g2#member
group:g2#member@group:g3#member
group:g3#member@group:g4#member
group:g4#member@group:g5#member
group:g5#member@user:u
doc:1#viewer@user:u
`)
	h := newHandler(t, eng, authzen.Options{})
	deep := obj{"subject": subj("user", "u"), "action": act("read"), "resource": res("doc", "deep")}
	status, body := call(t, h, authzen.EvaluationPath, deep, nil)
	if status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500: %s", status, body)
	}
	var resp struct {
		Evaluations []struct {
			Decision bool `json:"decision"`
			Context  struct {
				Error struct {
					Status int `json:"status"`
				} `json:"error"`
			} `json:"context"`
		} `json:"evaluations"`
	}
	callJSON(t, h, authzen.EvaluationsPath, obj{
		"subject": subj("user", "u"), "action": act("read"),
		"evaluations": []any{obj{"resource": res("doc", "1")}, obj{"resource": res("doc", "deep")}},
	}, &resp)
	if len(resp.Evaluations) != 2 || !resp.Evaluations[0].Decision ||
		resp.Evaluations[1].Decision || resp.Evaluations[1].Context.Error.Status != 500 {
		t.Errorf("batch answered %+v, want a permit and an item error 500", resp.Evaluations)
	}
}

// A closed engine (or an unreachable datastore) fails every endpoint with
// 503, a batch as a whole: no item can be answered.
func TestUnavailable(t *testing.T) {
	eng := newWorld(t, errorsSchema, "doc:1#viewer@user:u")
	h := newHandler(t, eng, authzen.Options{})
	eng.Close()
	reqs := map[string]obj{
		authzen.EvaluationPath:     {"subject": subj("user", "u"), "action": act("read"), "resource": res("doc", "1")},
		authzen.EvaluationsPath:    {"subject": subj("user", "u"), "action": act("read"), "evaluations": []any{obj{"resource": res("doc", "1")}}},
		authzen.SearchSubjectPath:  {"subject": obj{"type": "user"}, "action": act("read"), "resource": res("doc", "1")},
		authzen.SearchResourcePath: {"subject": subj("user", "u"), "action": act("read"), "resource": obj{"type": "doc"}},
		authzen.SearchActionPath:   {"subject": subj("user", "u"), "resource": res("doc", "1")},
	}
	for path, req := range reqs {
		if status, body := call(t, h, path, req, nil); status != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503: %s", path, status, body)
		}
	}
}

// Every error of a whole request is plain text, says what is wrong, and
// echoes the request id; 401s name the scheme (§10.1.2, §10.1.3).
func TestErrorShape(t *testing.T) {
	eng := newWorld(t, errorsSchema, "doc:1#viewer@user:u")
	h := newHandler(t, eng, authzen.Options{Authenticate: keyChecker(map[string]string{"s3cret-key-000000": "pep"})})
	r := httptest.NewRequest(http.MethodPost, authzen.EvaluationPath, bytes.NewReader([]byte(`{}`)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Request-ID", "abc-1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", w.Code)
	}
	if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate %q", got)
	}
	if got := w.Header().Get("X-Request-ID"); got != "abc-1" {
		t.Errorf("X-Request-ID %q, want abc-1", got)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	if json.Valid(w.Body.Bytes()) {
		t.Errorf("body %q is JSON, want a message string", w.Body.Bytes())
	}
}

// A panic below the handler (here in the key checker) is answered with a
// 500 and a reference, not a dropped connection, and the handler goes on
// serving.
func TestPanicIsA500(t *testing.T) {
	eng := newWorld(t, errorsSchema, "doc:1#viewer@user:u")
	h := newHandler(t, eng, authzen.Options{Authenticate: func(key string) (string, error) {
		if key == "boom" {
			panic("key checker failed")
		}
		return "pep", nil
	}})
	req := obj{"subject": subj("user", "u"), "action": act("read"), "resource": res("doc", "1")}
	status, body := call(t, h, authzen.EvaluationPath, req, http.Header{"Authorization": {"Bearer boom"}})
	if status != http.StatusInternalServerError || !strings.Contains(string(body), "internal error (reference ") {
		t.Errorf("status %d, body %q; want 500 with a reference", status, body)
	}
	if strings.Contains(string(body), "key checker failed") {
		t.Errorf("the panic's value reached the caller: %q", body)
	}
	if status, body := call(t, h, authzen.EvaluationPath, req, http.Header{"Authorization": {"Bearer fine"}}); status != http.StatusOK {
		t.Errorf("after the panic: status %d: %s", status, body)
	}
}

// A batch over the engine's bulk check limit is refused whole (400), not
// cut short; one at the limit is answered.
func TestBatchLimit(t *testing.T) {
	eng := newWorld(t, errorsSchema, "doc:1#viewer@user:u")
	h := newHandler(t, eng, authzen.Options{})
	max := eng.Limits().MaxBulkCheckItems
	batch := func(n int) obj {
		items := make([]any, n)
		for i := range items {
			items[i] = obj{}
		}
		return obj{"subject": subj("user", "u"), "action": act("read"), "resource": res("doc", "1"), "evaluations": items}
	}
	status, body := call(t, h, authzen.EvaluationsPath, batch(max+1), nil)
	if status != http.StatusBadRequest || !strings.Contains(string(body), fmt.Sprintf("at most %d are allowed", max)) {
		t.Errorf("%d items: status %d: %s", max+1, status, body)
	}
	var resp struct {
		Evaluations []struct {
			Decision bool `json:"decision"`
		} `json:"evaluations"`
	}
	callJSON(t, h, authzen.EvaluationsPath, batch(max), &resp)
	if len(resp.Evaluations) != max || !resp.Evaluations[max-1].Decision {
		t.Errorf("%d items: %d answers", max, len(resp.Evaluations))
	}
}
