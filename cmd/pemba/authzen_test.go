package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The AuthZEN API on a started `pemba serve -http-listen`, over real
// HTTP: mounted beside /v1/, behind the server's keys (but for the
// metadata), answering from the data written through /v1/.
func TestServeAuthZEN(t *testing.T) {
	const key = "authzen-test-key-0123456789"
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("pep "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startServeAll(t, "-datastore", "memory", "-keys-file", keys, "-http-listen", "127.0.0.1:0", "-quantum", "-1s")
	if a.http == "" {
		t.Fatal("no HTTP address printed")
	}
	post := func(path, auth, body string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, a.http+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-ID", "authzen-1")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, strings.TrimSpace(string(b))
	}
	for _, w := range []struct{ path, body string }{
		{"/v1/schema/write", `{"schema": "definition user {}\ndefinition doc {\n  relation viewer: user\n  permission view = viewer\n}"}`},
		{"/v1/relationships/write", `{"updates": [{"operation": "OPERATION_TOUCH", "relationship": {
			"resource": {"objectType": "doc", "objectId": "readme"}, "relation": "viewer",
			"subject": {"object": {"objectType": "user", "objectId": "anne"}}}}]}`},
	} {
		if code, _, body := post(w.path, key, w.body); code != http.StatusOK {
			t.Fatalf("%s: %d %s", w.path, code, body)
		}
	}
	eval := `{"subject": {"type": "user", "id": "anne"}, "action": {"name": "view"}, "resource": {"type": "doc", "id": "readme"}}`
	cases := []struct {
		path, auth, body string
		code             int
		want             string
	}{
		{"/access/v1/evaluation", key, eval, 200, `{"decision":true}`},
		{"/access/v1/evaluation", "", eval, 401, "authzen: unauthenticated: missing \"Authorization: Bearer <key>\" header"},
		{"/access/v1/evaluation", "wrong-key-0123456789", eval, 401, "authzen: unauthenticated: the key is not valid"},
		{"/access/v1/evaluations", key, `{"subject": {"type": "user", "id": "anne"}, "action": {"name": "view"},
			"evaluations": [{"resource": {"type": "doc", "id": "readme"}}, {"resource": {"type": "doc", "id": "plan"}}]}`,
			200, `{"evaluations":[{"decision":true},{"decision":false}]}`},
		{"/access/v1/search/subject", key, `{"subject": {"type": "user"}, "action": {"name": "view"}, "resource": {"type": "doc", "id": "readme"}}`,
			200, `{"page":{"next_token":"","count":1},"results":[{"type":"user","id":"anne"}]}`},
		{"/access/v1/search/resource", key, `{"subject": {"type": "user", "id": "anne"}, "action": {"name": "view"}, "resource": {"type": "doc"}}`,
			200, `{"page":{"next_token":"","count":1},"results":[{"type":"doc","id":"readme"}]}`},
		{"/access/v1/search/action", key, `{"subject": {"type": "user", "id": "anne"}, "resource": {"type": "doc", "id": "readme"}}`,
			200, `{"page":{"next_token":"","count":1},"results":[{"name":"view"}]}`},
		{"/access/v1/evaluation", key, `{"subject": "anne"}`, 400, "the request body is not valid: subject must be a JSON object, not string"},
	}
	for _, c := range cases {
		code, h, body := post(c.path, c.auth, c.body)
		if code != c.code || body != c.want {
			t.Errorf("%s (key %q): %d %s\nwant %d %s", c.path, c.auth, code, body, c.code, c.want)
		}
		if id := h.Get("X-Request-ID"); id != "authzen-1" {
			t.Errorf("%s: X-Request-ID %q", c.path, id)
		}
	}

	// The metadata, without a key, names this listener's endpoints.
	resp, err := http.Get(a.http + "/.well-known/authzen-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata: %d %v", resp.StatusCode, err)
	}
	if meta["policy_decision_point"] != a.http || meta["access_evaluation_endpoint"] != a.http+"/access/v1/evaluation" ||
		meta["search_action_endpoint"] != a.http+"/access/v1/search/action" {
		t.Errorf("metadata %v, want endpoints under %s", meta, a.http)
	}
}
