package authzen_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/pemba-authz/pemba/api/authzen"
)

// FuzzRequest sends arbitrary bodies to every endpoint: the decoder and
// the mapping onto Pemba must answer each with a decision or a search
// page (200) or refuse it as malformed (400), never with a 500 (a panic
// is recovered as one) and never with a body of the wrong shape. Seeds:
// every request of the conformance files. Run:
//
//	go test ./api/authzen -run '^$' -fuzz FuzzRequest -fuzztime 1m
func FuzzRequest(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	paths := authzen.Patterns()[:5] // the POST endpoints
	for _, file := range files {
		for _, c := range readConformance(f, file).Cases {
			var body []byte
			switch {
			case c.Body != nil:
				body = []byte(*c.Body)
			case c.Request != nil:
				if body, err = json.Marshal(normalize(f, c.Request)); err != nil {
					f.Fatal(err)
				}
			default:
				continue
			}
			for i, p := range paths {
				if p == c.Path {
					f.Add(uint8(i), body)
				}
			}
		}
	}
	fx := readConformance(f, "testdata/certification.yaml")
	eng := newWorld(f, fx.Schema, fx.Relationships)
	h := newHandler(f, eng, authzen.Options{PageSize: 2})
	f.Fuzz(func(t *testing.T, endpoint uint8, body []byte) {
		path := paths[int(endpoint)%len(paths)]
		status, got := call(t, h, path, body, nil)
		switch status {
		case http.StatusOK:
			var v map[string]json.RawMessage
			if err := json.Unmarshal(got, &v); err != nil {
				t.Fatalf("%s %q: a 200 that is not a JSON object: %s", path, body, got)
			}
			want := "results"
			switch path {
			case authzen.EvaluationPath:
				want = "decision"
			case authzen.EvaluationsPath:
				if _, ok := v["decision"]; ok {
					want = "decision" // no items: a single evaluation (§7.1)
				} else {
					want = "evaluations"
				}
			}
			if _, ok := v[want]; !ok {
				t.Fatalf("%s %q: a 200 without %q: %s", path, body, want, got)
			}
		case http.StatusBadRequest:
			if len(got) < 2 || json.Valid(got) {
				t.Fatalf("%s %q: a 400 whose body is not a message: %q", path, body, got)
			}
		default:
			t.Fatalf("%s %q: status %d: %s", path, body, status, got)
		}
	})
}
