package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/internal/openapi"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// httpTestKey is the key of the servers that require one.
const httpTestKey = "http-test-key-0123456789"

// httpServer is a running server with an HTTP listener.
type httpServer struct {
	base   string // "http://127.0.0.1:port"
	client *http.Client
	reg    *prometheus.Registry
	key    string       // sent as a bearer key when set
	stop   func() error // ends Run and returns its error (once; the test's cleanup calls it too)
}

// startHTTP runs a server over a fresh memstore engine with rc's HTTP
// side (HTTPListen defaults to a free loopback port) until the test ends.
// mount, if given, returns the server's RunConfig.HTTPHandlers.
func startHTTP(t testing.TB, cfg Config, rc RunConfig, mount ...func(*Server) map[string]http.Handler) *httpServer {
	t.Helper()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	eng, err := engine.Open(t.Context(), st, engine.Options{Warn: Warn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	srv, err := New(eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mount {
		rc.HTTPHandlers = m(srv)
	}
	rc.Listen = "127.0.0.1:0"
	if rc.HTTPListen == "" {
		rc.HTTPListen = "127.0.0.1:0"
	}
	addrs := make(chan net.Addr, 1)
	rc.HTTPListening = func(a net.Addr) { addrs <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, rc) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	hs := &httpServer{client: &http.Client{}, reg: reg, stop: stop}
	if len(cfg.Keys) > 0 {
		hs.key = cfg.Keys[0].Secret
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	select {
	case a := <-addrs:
		hs.base = scheme + "://" + a.String()
	case err := <-done:
		t.Fatalf("Run ended before listening: %v", err)
	}
	return hs
}

// httpResult is an answer: its status, headers and body.
type httpResult struct {
	code   int
	header http.Header
	body   []byte
}

// do sends body (JSON) to path with the server's key, if any, and extra
// headers (name, value pairs).
func (h *httpServer) do(t testing.TB, method, path, body string, headers ...string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if h.key != "" {
		req.Header.Set("Authorization", "Bearer "+h.key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{code: resp.StatusCode, header: resp.Header, body: b}
}

func (h *httpServer) post(t testing.TB, path, body string, headers ...string) httpResult {
	t.Helper()
	return h.do(t, http.MethodPost, path, body, headers...)
}

// object decodes a unary answer.
func (r httpResult) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// lines decodes a streamed answer: one JSON object per line.
func (r httpResult) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(r.body), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// field returns the value at a dotted path of m ("a.b.0.c"), or nil.
func field(m any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch v := m.(type) {
		case map[string]any:
			m = v[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i < 0 || i >= len(v) {
				return nil
			}
			m = v[i]
		default:
			return nil
		}
	}
	return m
}

// results returns field path of every {"result": ...} line, failing on an
// {"error": ...} line.
func results(t *testing.T, r httpResult, path string) []string {
	t.Helper()
	var out []string
	for _, l := range r.lines(t) {
		if e, ok := l["error"]; ok {
			t.Fatalf("stream failed: %v", e)
		}
		out = append(out, fmt.Sprint(field(l["result"], path)))
	}
	return out
}

const httpSchema = `definition user {}
definition group {
	relation member: user | group#member
}
definition doc {
	relation owner: user
	relation viewer: user | group#member
	permission view = viewer + owner
}`

// relJSON is the JSON of relationship "type:id#relation@type:id[#relation]".
func relJSON(t testing.TB, s string) string {
	t.Helper()
	res, subj, ok := strings.Cut(s, "@")
	obj, rel, ok2 := strings.Cut(res, "#")
	rtype, rid, ok3 := strings.Cut(obj, ":")
	sobj, srel, _ := strings.Cut(subj, "#")
	stype, sid, ok4 := strings.Cut(sobj, ":")
	if !ok || !ok2 || !ok3 || !ok4 {
		t.Fatalf("bad relationship %q", s)
	}
	return fmt.Sprintf(`{"resource":{"objectType":%q,"objectId":%q},"relation":%q,"subject":{"object":{"objectType":%q,"objectId":%q},"optionalRelation":%q}}`,
		rtype, rid, rel, stype, sid, srel)
}

// writeJSON is a WriteRelationships body touching rels.
func writeJSON(t testing.TB, op string, rels ...string) string {
	t.Helper()
	ups := make([]string, len(rels))
	for i, r := range rels {
		ups[i] = fmt.Sprintf(`{"operation":%q,"relationship":%s}`, op, relJSON(t, r))
	}
	return `{"updates":[` + strings.Join(ups, ",") + `]}`
}

func schemaJSON(schema string) string {
	b, _ := json.Marshal(map[string]string{"schema": schema})
	return string(b)
}

// TestHTTPRoutes calls every route of the HTTP/JSON API in turn, as a
// story over one store, and checks each answer. The route list is the
// OpenAPI document's, so a route added to the protos without a case here
// fails the test.
func TestHTTPRoutes(t *testing.T) {
	h := startHTTP(t, Config{Keys: []Key{{Name: "alice", Secret: httpTestKey}}}, RunConfig{})
	const fc = `"consistency":{"fullyConsistent":true}`
	tested := map[string]bool{}
	call := func(path, body string) httpResult {
		t.Helper()
		tested[path] = true
		r := h.post(t, path, body)
		if r.code != http.StatusOK {
			t.Fatalf("POST %s = %d %s, want 200", path, r.code, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("POST %s: Content-Type %q, want application/json", path, ct)
		}
		return r
	}

	schemaAt := field(call("/v1/schema/write", schemaJSON(httpSchema)).object(t), "writtenAt.token")
	if s, _ := schemaAt.(string); s == "" {
		t.Fatalf("WriteSchema: no writtenAt token")
	}
	if got := field(call("/v1/schema/read", `{`+fc+`}`).object(t), "schemaText"); !strings.Contains(fmt.Sprint(got), "permission view = viewer + owner") {
		t.Errorf("ReadSchema: schemaText %q", got)
	}
	wrote := field(call("/v1/relationships/write", writeJSON(t, "OPERATION_CREATE",
		"doc:1#viewer@user:tom", "doc:2#owner@user:tom", "doc:3#viewer@group:eng#member", "group:eng#member@user:ann")).object(t), "writtenAt.token")

	check := call("/v1/permissions/check", `{`+fc+`,"resource":{"objectType":"doc","objectId":"1"},"permission":"view","subject":{"object":{"objectType":"user","objectId":"tom"}}}`)
	if got := field(check.object(t), "permissionship"); got != "PERMISSIONSHIP_HAS_PERMISSION" {
		t.Errorf("CheckPermission: %v", got)
	}
	bulk := call("/v1/permissions/checkbulk", `{`+fc+`,"items":[
		{"resource":{"objectType":"doc","objectId":"3"},"permission":"view","subject":{"object":{"objectType":"user","objectId":"ann"}}},
		{"resource":{"objectType":"doc","objectId":"3"},"permission":"view","subject":{"object":{"objectType":"user","objectId":"tom"}}},
		{"resource":{"objectType":"doc","objectId":"3"},"permission":"nope","subject":{"object":{"objectType":"user","objectId":"tom"}}}]}`).object(t)
	for i, want := range []string{"PERMISSIONSHIP_HAS_PERMISSION", "PERMISSIONSHIP_NO_PERMISSION", "<nil>"} {
		if got := fmt.Sprint(field(bulk, fmt.Sprintf("pairs.%d.item.permissionship", i))); got != want {
			t.Errorf("CheckBulkPermissions item %d: %s, want %s", i, got, want)
		}
	}
	if got := field(bulk, "pairs.2.error.code"); got != float64(3) {
		t.Errorf("CheckBulkPermissions item 2: error code %v, want 3 (INVALID_ARGUMENT)", got)
	}
	// A permission set over two documents, with a contextual group
	// membership that makes tom a viewer of doc 3 for this request only.
	set := call("/v1/permissions/checkset", `{`+fc+`,"resources":[{"objectType":"doc","objectId":"1"},{"objectType":"doc","objectId":"3"}],"includeRelations":true,"subject":{"object":{"objectType":"user","objectId":"tom"}},
		"contextualRelationships":[`+relJSON(t, "group:eng#member@user:tom")+`]}`).object(t)
	if got := fmt.Sprint(field(set, "permissions")); got != "[owner viewer view]" {
		t.Errorf("CheckPermissionSet: columns %s", got)
	}
	for i, want := range []string{"NO", "HAS", "HAS", "NO", "HAS", "HAS"} {
		row, col := i/3, i%3
		if got := fmt.Sprint(field(set, fmt.Sprintf("rows.%d.cells.%d.answer.permissionship", row, col))); got != "PERMISSIONSHIP_"+want+"_PERMISSION" {
			t.Errorf("CheckPermissionSet row %d column %d: %s, want %s", row, col, got, want)
		}
	}
	expand := call("/v1/permissions/expand", `{`+fc+`,"resource":{"objectType":"doc","objectId":"3"},"permission":"view"}`)
	if !bytes.Contains(expand.body, []byte(`"ann"`)) {
		t.Errorf("ExpandPermissionTree: no ann in %s", expand.body)
	}

	// The streams: one {"result": ...} per line.
	res := call("/v1/permissions/resources", `{`+fc+`,"resourceObjectType":"doc","permission":"view","subject":{"object":{"objectType":"user","objectId":"tom"}}}`)
	if got := results(t, res, "resourceObjectId"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("LookupResources: %v, want [1 2]", got)
	}
	subj := call("/v1/permissions/subjects", `{`+fc+`,"resource":{"objectType":"doc","objectId":"3"},"permission":"view","subjectObjectType":"user"}`)
	if got := results(t, subj, "subject.subjectObjectId"); !slices.Equal(got, []string{"ann"}) {
		t.Errorf("LookupSubjects: %v, want [ann]", got)
	}
	read := call("/v1/relationships/read", `{`+fc+`,"relationshipFilter":{"resourceType":"doc"}}`)
	if got := results(t, read, "relationship.resource.objectId"); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Errorf("ReadRelationships: %v, want [1 2 3]", got)
	}
	count := call("/v1/permissions/resources/count", `{`+fc+`,"resourceObjectType":"doc","permission":"view","subject":{"object":{"objectType":"user","objectId":"tom"}}}`).object(t)
	if got, at := field(count, "count"), field(count, "countedAt.token"); got != "2" || at == nil { // uint64 is a JSON string
		t.Errorf("CountResources: count %v at %v, want \"2\" and a zookie", got, at)
	}
	if got := field(call("/v1/relationships/count", `{`+fc+`,"relationshipFilter":{"resourceType":"doc"}}`).object(t), "count"); got != "3" {
		t.Errorf("CountRelationships: count %v, want \"3\"", got)
	}
	// Import is a client stream: one request message per line.
	imp := call("/v1/relationships/import",
		`{"relationships":[`+relJSON(t, "doc:4#viewer@user:tom")+`,`+relJSON(t, "doc:5#viewer@user:tom")+"]}\n"+
			`{"relationships":[`+relJSON(t, "doc:6#viewer@user:ann")+"]}\n")
	if got := field(imp.object(t), "numLoaded"); got != "3" { // uint64 is a JSON string
		t.Errorf("ImportRelationships: numLoaded %v, want \"3\"", got)
	}
	exp := call("/v1/relationships/export", `{`+fc+`,"optionalBatchSize":4}`)
	n := 0
	for _, l := range exp.lines(t) {
		rels, _ := field(l, "result.relationships").([]any)
		n += len(rels)
	}
	if lines := len(exp.lines(t)); n != 7 || lines != 2 {
		t.Errorf("ExportRelationships: %d relationships in %d lines, want 7 in 2", n, lines)
	}
	del := call("/v1/relationships/delete", `{"relationshipFilter":{"resourceType":"doc","optionalResourceId":"6"}}`).object(t)
	if got := field(del, "relationshipsDeletedCount"); got != "1" {
		t.Errorf("DeleteRelationships: count %v, want \"1\"", got)
	}

	// The diff of that write: a summary line, then one line per grant.
	diff := call("/v1/permissions/diff", `{"from":{"token":"`+schemaAt.(string)+`"},"to":{"token":"`+fmt.Sprint(wrote)+`"},"scope":{"resourceObjectType":"doc","permission":"view"}}`)
	if got := results(t, diff, "change.subject.object.objectId"); !slices.Equal(got, []string{"<nil>", "tom", "tom", "ann"}) {
		t.Errorf("DiffPermissions: subjects %v, want [<nil> tom tom ann]", got)
	}
	// A permission watch from the write: its first line is a checkpoint.
	tested["/v1/watch/permissions"] = true
	if line := firstLine(t, h, "/v1/watch/permissions", `{"optionalStartCursor":{"token":"`+fmt.Sprint(wrote)+`"},"scope":{"resourceObjectType":"doc","permission":"view"}}`); field(line, "result.checkpoint") != true {
		t.Errorf("WatchPermissions: first line %v, want a checkpoint", line)
	}

	// Watch from the schema's revision: the first line is the write of
	// the four relationships. The stream stays open; read one line.
	tested["/v1/watch"] = true
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/v1/watch", strings.NewReader(`{"optionalStartCursor":{"token":"`+schemaAt.(string)+`"}}`))
	req.Header.Set("Authorization", "Bearer "+httpTestKey)
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Watch: %d", resp.StatusCode)
	}
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	var w map[string]any
	if err := json.Unmarshal(line, &w); err != nil {
		t.Fatal(err)
	}
	if ups, _ := field(w, "result.updates").([]any); len(ups) != 4 {
		t.Errorf("Watch: first line %s, want the 4 written relationships", line)
	}

	paths, err := openapi.Paths()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if !tested[p] {
			t.Errorf("route %s is not tested", p)
		}
	}
}

// firstLine posts body to a streaming route that stays open and returns
// its first line.
func firstLine(t *testing.T, h *httpServer, path, body string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+httpTestKey)
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHTTPEveryMethodRouted: every method of the public pemba.v1 services
// has an HTTP route in the OpenAPI document (a new method's rule in
// api/proto/pemba/v1/http.yaml is not forgotten).
func TestHTTPEveryMethodRouted(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapi.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string]bool{}
	for _, methods := range doc.Paths {
		for _, op := range methods {
			ops[op.OperationID] = true
		}
	}
	n := 0
	for _, sd := range []struct {
		name    string
		methods []string
	}{
		{"PermissionsService", methodNames(pb.PermissionsService_ServiceDesc.Methods, pb.PermissionsService_ServiceDesc.Streams)},
		{"SchemaService", methodNames(pb.SchemaService_ServiceDesc.Methods, pb.SchemaService_ServiceDesc.Streams)},
		{"WatchService", methodNames(pb.WatchService_ServiceDesc.Methods, pb.WatchService_ServiceDesc.Streams)},
	} {
		for _, m := range sd.methods {
			n++
			if !ops[sd.name+"_"+m] {
				t.Errorf("%s.%s has no HTTP route", sd.name, m)
			}
		}
	}
	// Every route is a method's (a literal count here made every new RPC
	// a merge conflict).
	if n != len(ops) {
		t.Errorf("%d methods, %d routes; want as many of each", n, len(ops))
	}
}

// TestHTTPAuth: without a key, or with a wrong one, every route answers
// 401 with the gRPC status as JSON; with the key it is served. The
// OpenAPI document needs no key.
func TestHTTPAuth(t *testing.T) {
	h := startHTTP(t, Config{Keys: []Key{{Name: "alice", Secret: httpTestKey}}}, RunConfig{})
	anon := &httpServer{base: h.base, client: h.client}
	wrong := &httpServer{base: h.base, client: h.client, key: "not-the-key-0123456789"}
	paths, err := openapi.Paths()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		for name, c := range map[string]*httpServer{"no key": anon, "wrong key": wrong} {
			r := c.post(t, p, `{}`)
			if r.code != http.StatusUnauthorized {
				t.Errorf("%s %s = %d %s, want 401", name, p, r.code, r.body)
				continue
			}
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("%s %s: WWW-Authenticate %q", name, p, got)
			}
			body := r.object(t)
			if e, ok := body["error"]; ok && len(body) == 1 {
				body, _ = e.(map[string]any) // a stream's error line
			}
			if field(body, "code") != float64(16) || field(body, "details.0.reason") != ReasonUnauthenticated {
				t.Errorf("%s %s: body %s, want code 16 and reason %s", name, p, r.body, ReasonUnauthenticated)
			}
		}
	}
	if r := h.post(t, "/v1/schema/write", schemaJSON(httpSchema)); r.code != http.StatusOK {
		t.Errorf("with the key: %d %s", r.code, r.body)
	}
	if r := anon.do(t, http.MethodGet, "/openapi.json", ""); r.code != http.StatusOK || !bytes.Equal(r.body, openapi.JSON()) {
		t.Errorf("GET /openapi.json without a key = %d, want 200 and the document", r.code)
	}
}

// TestHTTPErrors: gRPC codes become HTTP statuses, with the status as the
// JSON body: code, message, and the details naming the reason and the
// field.
func TestHTTPErrors(t *testing.T) {
	h := startHTTP(t, Config{MaxRecvMsgBytes: 64 << 10}, RunConfig{})
	if r := h.post(t, "/v1/schema/read", `{}`); r.code != http.StatusNotFound || field(r.object(t), "details.0.reason") != ReasonNotFound {
		t.Errorf("ReadSchema before any schema = %d %s, want 404 NOT_FOUND", r.code, r.body)
	}
	if r := h.post(t, "/v1/schema/write", schemaJSON(httpSchema)); r.code != http.StatusOK {
		t.Fatalf("WriteSchema = %d %s", r.code, r.body)
	}
	if r := h.post(t, "/v1/relationships/write", writeJSON(t, "OPERATION_CREATE", "doc:1#viewer@user:tom")); r.code != http.StatusOK {
		t.Fatalf("write = %d %s", r.code, r.body)
	}
	checkTom := func(obj string) string {
		return `{"consistency":{"fullyConsistent":true},"resource":{"objectType":"doc","objectId":"` + obj + `"},"permission":"view","subject":{"object":{"objectType":"user","objectId":"tom"}}}`
	}
	big := `{"schema":"` + strings.Repeat("x", 70<<10) + `"}`
	for _, c := range []struct {
		name, path, body string
		code             int
		reason           string
		field            string // the BadRequest detail's field, if any
		message          string // in the message
	}{
		{"empty object id", "/v1/permissions/check", checkTom(""), 400, ReasonInvalidArgument, "resource.object_id", "resource.object_id"},
		{"unknown permission", "/v1/permissions/check", strings.Replace(checkTom("1"), `"view"`, `"edit"`, 1), 400, ReasonUnknownRelation, "", "edit"},
		{"unknown JSON field", "/v1/permissions/check", `{"resourse":{}}`, 400, "", "", `unknown field "resourse"`},
		{"not JSON", "/v1/permissions/check", `{"resource":`, 400, "", "", ""},
		{"bad schema", "/v1/schema/write", schemaJSON("definition doc { relation viewer: nobody }"), 400, ReasonInvalidSchema, "", "nobody"},
		{"create existing", "/v1/relationships/write", writeJSON(t, "OPERATION_CREATE", "doc:1#viewer@user:tom"), 409, ReasonAlreadyExists, "", ""},
		{"precondition", "/v1/relationships/write", `{"updates":[` + strings.TrimSuffix(strings.TrimPrefix(writeJSON(t, "OPERATION_TOUCH", "doc:2#viewer@user:tom"), `{"updates":[`), `]}`) +
			`],"optionalPreconditions":[{"operation":"OPERATION_MUST_EXIST","filter":{"resourceType":"doc","optionalResourceId":"9"}}]}`, 412, ReasonPreconditionFailed, "", ""},
		{"unsafe schema change", "/v1/schema/write", schemaJSON("definition user {}\ndefinition doc {}"), 400, ReasonUnsafeSchemaChange, "", ""},
		{"bad zookie", "/v1/permissions/check", `{"consistency":{"atLeastAsFresh":{"token":"bogus"}},` + strings.TrimPrefix(checkTom("1"), `{"consistency":{"fullyConsistent":true},`), 400, ReasonInvalidZookie, "", ""},
		{"limit", "/v1/permissions/resources", `{"resourceObjectType":"doc","permission":"view","subject":{"object":{"objectType":"user","objectId":"tom"}},"optionalLimit":100000,"consistency":{"fullyConsistent":true}}`, 413, ReasonLimitExceeded, "", ""},
		{"body over the limit", "/v1/schema/write", big, 413, ReasonLimitExceeded, "", "over the limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.post(t, c.path, c.body)
			if r.code != c.code {
				t.Fatalf("POST %s = %d %s, want %d", c.path, r.code, r.body, c.code)
			}
			body := r.object(t)
			if e, ok := body["error"]; ok && len(body) == 1 {
				body, _ = e.(map[string]any) // a stream's error line
			}
			if code, _ := field(body, "code").(float64); code == 0 {
				t.Errorf("body %s has no status code", r.body)
			}
			if !strings.Contains(fmt.Sprint(field(body, "message")), c.message) {
				t.Errorf("message %q does not contain %q", field(body, "message"), c.message)
			}
			var reason, fieldName string
			details, _ := field(body, "details").([]any)
			for _, d := range details {
				switch field(d, "@type") {
				case "type.googleapis.com/google.rpc.ErrorInfo":
					reason = fmt.Sprint(field(d, "reason"))
				case "type.googleapis.com/google.rpc.BadRequest":
					fieldName = fmt.Sprint(field(d, "fieldViolations.0.field"))
				}
			}
			if reason != c.reason || fieldName != c.field {
				t.Errorf("details %v: reason %q field %q, want %q %q", details, reason, fieldName, c.reason, c.field)
			}
		})
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/v1/nope", http.StatusNotFound},
		{http.MethodGet, "/v1/permissions/check", http.StatusMethodNotAllowed},
		{http.MethodPost, "/nope", http.StatusNotFound},
	} {
		r := h.do(t, c.method, c.path, `{}`)
		if r.code != c.code {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, r.code, c.code)
		}
		if allow := r.header.Get("Allow"); c.code == http.StatusMethodNotAllowed && allow != http.MethodPost {
			t.Errorf("%s %s: Allow %q, want POST", c.method, c.path, allow)
		}
	}
}

// TestHTTPStreamError: a stream that fails before its first message
// answers with the mapped status and the error as its only line.
func TestHTTPStreamError(t *testing.T) {
	h := startHTTP(t, Config{}, RunConfig{})
	r := h.post(t, "/v1/permissions/resources", `{"resourceObjectType":"doc","permission":"view","subject":{"object":{"objectType":"user","objectId":"tom"}}}`)
	lines := r.lines(t)
	if r.code != http.StatusBadRequest || len(lines) != 1 || field(lines[0], "error.details.0.reason") != ReasonNoSchema {
		t.Errorf("LookupResources without a schema = %d %s, want 400 and one error line with reason %s", r.code, r.body, ReasonNoSchema)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test.
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

// TestHTTPRequestID: a caller's request id is echoed and reaches the gRPC
// handlers (their log line names it); a missing or unacceptable one is
// replaced by a new one.
func TestHTTPRequestID(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := startHTTP(t, Config{Logger: log}, RunConfig{})
	r := h.post(t, "/v1/schema/write", schemaJSON(httpSchema), RequestIDHeader, "trace-42.a_b:c")
	if r.code != http.StatusOK || r.header.Get(RequestIDHeader) != "trace-42.a_b:c" {
		t.Fatalf("= %d, %s %q; want 200 and the id echoed", r.code, RequestIDHeader, r.header.Get(RequestIDHeader))
	}
	if !strings.Contains(logs.String(), "method=/pemba.v1.SchemaService/WriteSchema caller=anonymous code=OK") ||
		!strings.Contains(logs.String(), "request_id=trace-42.a_b:c") {
		t.Errorf("the gRPC call's log line does not name the request id:\n%s", logs.String())
	}
	seen := map[string]bool{}
	for _, given := range []string{"", "bad id with spaces", strings.Repeat("x", 129), "ünïcode"} {
		r := h.post(t, "/v1/schema/read", `{}`, RequestIDHeader, given)
		id := r.header.Get(RequestIDHeader)
		if id == "" || id == given || seen[id] || len(id) != 32 {
			t.Errorf("given %q: id %q, want a new 32-digit one", given, id)
		}
		seen[id] = true
	}
	// Errors carry it too, before any routing.
	if r := h.post(t, "/nope", ``); r.header.Get(RequestIDHeader) == "" {
		t.Errorf("404 without a request id")
	}
}

// gatheredCounter returns the value of a counter with the given labels.
func gatheredCounter(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// TestHTTPMetricsAndMount: requests are counted by route and status, for
// the gateway's routes and mounted handlers alike; a mounted handler is
// reached on its pattern, behind RequireKey when it asks for it.
func TestHTTPMetricsAndMount(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s %s", callerOf(r.Context()), r.Header.Get(RequestIDHeader))
	})
	h := startHTTP(t, Config{Keys: []Key{{Name: "alice", Secret: httpTestKey}}}, RunConfig{}, func(s *Server) map[string]http.Handler {
		return map[string]http.Handler{"GET /hello/{name}": s.RequireKey(hello), "/open/": hello}
	})
	reg := h.reg
	anon := &httpServer{base: h.base, client: h.client}

	for range 3 {
		h.post(t, "/v1/schema/write", schemaJSON(httpSchema))
	}
	h.post(t, "/v1/schema/write", "{")
	if r := h.do(t, http.MethodGet, "/hello/x", "", RequestIDHeader, "id-1"); r.code != 200 || string(r.body) != "hello alice id-1" {
		t.Errorf("GET /hello/x = %d %q", r.code, r.body)
	}
	if r := anon.do(t, http.MethodGet, "/hello/x", ""); r.code != http.StatusUnauthorized {
		t.Errorf("GET /hello/x without a key = %d, want 401", r.code)
	}
	if r := anon.do(t, http.MethodGet, "/open/y", ""); r.code != 200 || !strings.HasPrefix(string(r.body), "hello anonymous ") {
		t.Errorf("GET /open/y = %d %q", r.code, r.body)
	}
	anon.do(t, http.MethodGet, "/nope", "")
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"/v1/schema/write", "200", 3},
		{"/v1/schema/write", "400", 1},
		{"GET /hello/{name}", "200", 1},
		{"GET /hello/{name}", "401", 1},
		{"/open/", "200", 1},
		{"unmatched", "404", 1},
	} {
		if got := gatheredCounter(t, reg, "pemba_http_requests_total", map[string]string{"route": c.route, "code": c.code}); got != c.want {
			t.Errorf("pemba_http_requests_total{route=%q,code=%q} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	// The gateway's calls are gRPC calls, counted there too.
	if got := gatheredCounter(t, reg, "pemba_grpc_requests_total", map[string]string{"method": "SchemaService/WriteSchema", "code": "OK"}); got != 3 {
		t.Errorf("pemba_grpc_requests_total{method=WriteSchema,code=OK} = %v, want 3", got)
	}
}

// TestHTTPRunRefusesBadHandlers: a conflicting or nil handler, or handlers
// without an HTTP address, fail Run before it serves.
func TestHTTPRunRefusesBadHandlers(t *testing.T) {
	ok := http.NotFoundHandler()
	for name, rc := range map[string]RunConfig{
		"conflict with the API": {HTTPListen: "127.0.0.1:0", HTTPHandlers: map[string]http.Handler{"/v1/": ok}},
		"bad pattern":           {HTTPListen: "127.0.0.1:0", HTTPHandlers: map[string]http.Handler{"GET": ok}},
		"nil handler":           {HTTPListen: "127.0.0.1:0", HTTPHandlers: map[string]http.Handler{"/x": nil}},
		"no address":            {HTTPHandlers: map[string]http.Handler{"/x": ok}},
	} {
		srv, _ := newRunServer(t)
		rc.Listen = "127.0.0.1:0"
		if err := srv.Run(t.Context(), rc); err == nil {
			t.Errorf("%s: Run = nil, want an error", name)
		}
	}
}

// TestHTTPTLS: with Config.TLS the HTTP listener serves HTTPS, and the
// gateway reaches the gRPC server (TLS too) over its loopback.
func TestHTTPTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	h := startHTTP(t, Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}, RunConfig{})
	plain := &httpServer{base: strings.Replace(h.base, "https:", "http:", 1), client: h.client}
	h.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if r := h.post(t, "/v1/schema/write", schemaJSON(httpSchema)); r.code != http.StatusOK {
		t.Fatalf("over HTTPS: %d %s", r.code, r.body)
	}
	r := h.post(t, "/v1/permissions/subjects", `{"resource":{"objectType":"doc","objectId":"1"},"permission":"view","subjectObjectType":"user"}`)
	if r.code != http.StatusOK || len(r.lines(t)) != 0 {
		t.Errorf("stream over HTTPS: %d %s", r.code, r.body)
	}
	if r := plain.post(t, "/v1/schema/read", `{}`); r.code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS listener = %d, want 400", r.code)
	}
}

// methodNames returns the names of a service's methods and streams.
func methodNames(methods []grpc.MethodDesc, streams []grpc.StreamDesc) []string {
	var out []string
	for _, m := range methods {
		out = append(out, m.MethodName)
	}
	for _, s := range streams {
		out = append(out, s.StreamName)
	}
	return out
}

// TestHTTPStopCutsOpenWatch: stopping the server ends an open HTTP watch
// stream after the grace period (as it ends a gRPC one), and Run returns.
func TestHTTPStopCutsOpenWatch(t *testing.T) {
	h := startHTTP(t, Config{}, RunConfig{StopGrace: 50 * time.Millisecond})
	at := field(h.post(t, "/v1/schema/write", schemaJSON(httpSchema)).object(t), "writtenAt.token")
	h.post(t, "/v1/relationships/write", writeJSON(t, "OPERATION_TOUCH", "doc:1#viewer@user:tom"))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, h.base+"/v1/watch", strings.NewReader(`{"optionalStartCursor":{"token":"`+fmt.Sprint(at)+`"}}`))
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadBytes('\n'); err != nil { // the stream is open
		t.Fatal(err)
	}
	if err := h.stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	// The stream ends: with a last error line, or cut.
	rest, _ := io.ReadAll(br)
	if len(rest) > 0 && !bytes.Contains(rest, []byte(`"error"`)) {
		t.Errorf("after stop the stream sent %q", rest)
	}
}

// TestHTTPStatusOf: the HTTP status of every code, and of the reasons
// that override grpc-gateway's mapping.
func TestHTTPStatusOf(t *testing.T) {
	for _, c := range []struct {
		code   codes.Code
		reason string
		want   int
	}{
		{codes.InvalidArgument, ReasonInvalidArgument, 400},
		{codes.FailedPrecondition, ReasonNoSchema, 400},
		{codes.FailedPrecondition, ReasonSnapshotExpired, 400},
		{codes.FailedPrecondition, ReasonPreconditionFailed, 412},
		{codes.Unauthenticated, ReasonUnauthenticated, 401},
		{codes.PermissionDenied, "", 403},
		{codes.NotFound, ReasonNotFound, 404},
		{codes.AlreadyExists, ReasonAlreadyExists, 409},
		{codes.Aborted, "", 409},
		{codes.ResourceExhausted, ReasonLimitExceeded, 413},
		{codes.ResourceExhausted, "", 413}, // gRPC's own message-size limit
		{codes.ResourceExhausted, ReasonMaxDepth, 422},
		{codes.ResourceExhausted, ReasonKeyLimit, 429},
		{codes.PermissionDenied, ReasonPermissionDenied, 403},
		{codes.ResourceExhausted, ReasonOverloaded, 429},
		{codes.Canceled, ReasonCanceled, 499},
		{codes.Unknown, ReasonCommitOutcomeUnknown, 500},
		{codes.Internal, ReasonInternal, 500},
		{codes.Unimplemented, "", 501},
		{codes.Unavailable, ReasonUnavailable, 503},
		{codes.DeadlineExceeded, ReasonDeadlineExceeded, 504},
	} {
		st := status.New(c.code, "x")
		if c.reason != "" {
			st = withReason(st, c.reason)
		}
		if got := httpStatusOf(st); got != c.want {
			t.Errorf("%v %s: %d, want %d", c.code, c.reason, got, c.want)
		}
	}
}

// TestHTTPBodyLimits: a request message's JSON is bounded by
// MaxRecvMsgBytes whether the body's length is announced or not (413);
// an import's body is bounded per message, not as a whole.
func TestHTTPBodyLimits(t *testing.T) {
	const limit = 16 << 10
	h := startHTTP(t, Config{MaxRecvMsgBytes: limit}, RunConfig{})
	if r := h.post(t, "/v1/schema/write", schemaJSON(httpSchema)); r.code != http.StatusOK {
		t.Fatalf("WriteSchema = %d %s", r.code, r.body)
	}
	// A message of under limit/2 bytes of JSON: 50 relationships.
	var rels []string
	for i := range 50 {
		rels = append(rels, relJSON(t, fmt.Sprintf("doc:%d#viewer@user:u%d", i, i)))
	}
	half := `{"relationships":[` + strings.Join(rels, ",") + `]}`
	if len(half) < limit/3 || len(half) > limit/2 {
		t.Fatalf("message of %d bytes, want about %d", len(half), limit/2)
	}
	big := `{"relationships":[` + strings.Join(append(append(rels, rels...), rels...), ",") + `]}` // 3 halves
	chunked := func(path, body string) httpResult {
		t.Helper()
		// An io.MultiReader has no known length: the body goes chunked.
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.base+path, io.MultiReader(strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return httpResult{code: resp.StatusCode, header: resp.Header, body: b}
	}
	for _, c := range []struct {
		name, path, body string
		chunked          bool
		code             int
	}{
		{"import: messages under the limit, body over it", importPath, strings.Repeat(half+"\n", 4), true, 200},
		{"import: one message over the limit", importPath, half + "\n" + big + "\n", true, 413},
		{"unary, chunked, over the limit", "/v1/schema/write", schemaJSON(strings.Repeat("x", limit)), true, 413},
		{"unary, with a length, over the limit", "/v1/schema/write", schemaJSON(strings.Repeat("x", limit)), false, 413},
		{"unary, chunked, under the limit", "/v1/schema/read", `{"consistency":{"fullyConsistent":true}}`, true, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r httpResult
			if c.chunked {
				r = chunked(c.path, c.body)
			} else {
				r = h.post(t, c.path, c.body)
			}
			if r.code != c.code {
				t.Fatalf("= %d %s, want %d", r.code, r.body, c.code)
			}
			if c.code == 413 && field(r.object(t), "details.0.reason") != ReasonLimitExceeded {
				t.Errorf("body %s, want reason %s", r.body, ReasonLimitExceeded)
			}
		})
	}
	// Strings may hold braces: a message is bounded as a whole, not cut
	// at a brace inside a string.
	var b boundedBody
	b.perValue = true
	for _, c := range []byte(`{"a":"}{\"}"}`) {
		b.scan(c)
	}
	if b.depth != 0 || b.inStr || b.n != 0 {
		t.Errorf("after one value: depth %d, in string %v, count %d", b.depth, b.inStr, b.n)
	}
	for _, c := range []byte(`{"a":"}`) {
		b.n++
		b.scan(c)
	}
	if b.depth != 1 || !b.inStr || b.n != 7 {
		t.Errorf("inside a string: depth %d, in string %v, count %d; want 1, true, 7", b.depth, b.inStr, b.n)
	}
}

// BenchmarkHTTPCheck is BenchmarkCheck's "grpc" case over HTTP/JSON: one
// client, keep-alive, the gateway translating to the in-process gRPC
// server.
func BenchmarkHTTPCheck(b *testing.B) {
	h := startHTTP(b, Config{}, RunConfig{})
	if r := h.post(b, "/v1/schema/write", schemaJSON(httpSchema)); r.code != http.StatusOK {
		b.Fatal(r.code)
	}
	at := field(h.post(b, "/v1/relationships/write", writeJSON(b, "OPERATION_TOUCH", "doc:readme#viewer@user:anne")).object(b), "writtenAt.token")
	body := `{"consistency":{"atLeastAsFresh":{"token":"` + fmt.Sprint(at) + `"}},"resource":{"objectType":"doc","objectId":"readme"},"permission":"view","subject":{"object":{"objectType":"user","objectId":"anne"}}}`
	b.ReportAllocs()
	for b.Loop() {
		if r := h.post(b, "/v1/permissions/check", body); r.code != http.StatusOK {
			b.Fatal(r.code)
		}
	}
}
