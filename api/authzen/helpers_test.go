package authzen_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pemba-authz/pemba/api/authzen"
	"github.com/pemba-authz/pemba/engine"
)

// newHandler is authzen.New over eng, failing the test on an error.
func newHandler(t testing.TB, eng *engine.Engine, opts authzen.Options) *authzen.Handler {
	t.Helper()
	h, err := authzen.New(eng, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// call sends a JSON request to h in process and returns the status and
// the body. req is marshalled unless it is a []byte or a string.
func call(t testing.TB, h http.Handler, path string, req any, header http.Header) (int, []byte) {
	t.Helper()
	var body []byte
	switch b := req.(type) {
	case []byte:
		body = b
	case string:
		body = []byte(b)
	default:
		var err error
		if body, err = json.Marshal(req); err != nil {
			t.Fatal(err)
		}
	}
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}

// callJSON is call for a 200 answer, decoded into out.
func callJSON(t testing.TB, h http.Handler, path string, req, out any) {
	t.Helper()
	status, body := call(t, h, path, req, nil)
	if status != http.StatusOK {
		t.Fatalf("%s: status %d: %s", path, status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("%s: %v: %s", path, err, body)
	}
}

// obj is shorthand for a JSON object.
type obj = map[string]any

// subj, res and act build the entities of a request.
func subj(typ, id string) obj { return obj{"type": typ, "id": id} }
func res(typ, id string) obj  { return obj{"type": typ, "id": id} }
func act(name string) obj     { return obj{"name": name} }
