// Package playground serves a page for schema authors at /playground: a
// schema, its test relationships and assertions (the three parts of a
// validation file, the format `pemba validate` runs) are edited side by
// side, and every answer is visible as the author types.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary (no
// network is needed to load it). It calls JSON endpoints under
// /playground/api/:
//
//	POST /playground/api/schema    compile the schema: errors with line and column
//	POST /playground/api/run       run the assertions and the validation key
//	POST /playground/api/check     check resource#permission@subject, with the Expand tree
//	POST /playground/api/download  the three panes as one validation file
//	GET  /playground/api/example   the enterprise example, as three panes
//
// Every request is evaluated by a fresh engine over an empty in-memory
// store that is dropped when the request ends: the playground never sees
// the server's own data. Request bodies are limited in size, evaluation in
// time and in concurrency (see Options); bodies must be JSON
// (Content-Type: application/json), which a cross-site form cannot send.
package playground

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/examples/enterprise"
)

// Path is where the page is served; the API lives under Path + "/api/".
const Path = "/playground"

// Defaults for Options fields left zero.
const (
	DefaultMaxRequestBytes = 1 << 20
	DefaultTimeout         = 5 * time.Second
	DefaultMaxConcurrent   = 4
)

// Options configure the handler. The zero value is usable.
type Options struct {
	// MaxRequestBytes bounds a request body (0: DefaultMaxRequestBytes).
	MaxRequestBytes int64
	// Timeout bounds the evaluation of one request (0: DefaultTimeout).
	Timeout time.Duration
	// MaxConcurrent bounds the requests evaluated at once; others wait
	// for a turn within their Timeout (0: DefaultMaxConcurrent).
	MaxConcurrent int
	// Now is the clock that decides which relationships have expired
	// (nil: time.Now).
	Now func() time.Time
}

//go:embed assets
var assets embed.FS

// Handler serves the playground. Create it with New.
type Handler struct {
	mux   *http.ServeMux
	opts  Options
	turns chan struct{} // one token per request being evaluated
}

// New returns the playground's handler. Mount it at Path and Path + "/"
// (it serves nothing else).
func New(opts Options) *Handler {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{mux: http.NewServeMux(), opts: opts, turns: make(chan struct{}, opts.MaxConcurrent)}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(Path+"/static/", http.FileServerFS(static))
	h.mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Path+"/", http.StatusMovedPermanently)
	})
	h.mux.HandleFunc("GET "+Path+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		page, _ := fs.ReadFile(static, "index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	h.mux.Handle("GET "+Path+"/static/", files)
	h.mux.HandleFunc("GET "+Path+"/api/example", h.example)
	h.mux.HandleFunc("POST "+Path+"/api/schema", h.schema)
	h.mux.HandleFunc("POST "+Path+"/api/run", h.run)
	h.mux.HandleFunc("POST "+Path+"/api/check", h.check)
	h.mux.HandleFunc("POST "+Path+"/api/download", h.download)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// The page loads only its own assets and talks only to its own API.
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body into v, answering the error itself (and
// returning false) when it cannot.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type is %q; send application/json", ct))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.opts.MaxRequestBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the limit of %d bytes", tooBig.Limit))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

// evaluate runs fn with the handler's time limit, after waiting for a
// turn, and answers its result.
func evaluate[T any](h *Handler, w http.ResponseWriter, r *http.Request, fn func(ctx context.Context) (T, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	select {
	case h.turns <- struct{}{}:
		defer func() { <-h.turns }()
	case <-ctx.Done():
		writeError(w, http.StatusServiceUnavailable, "the playground is busy; try again")
		return
	}
	res, err := fn(ctx)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("evaluation took longer than the limit of %v", h.opts.Timeout))
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// SchemaResult answers /playground/api/schema.
type SchemaResult struct {
	Problems []Problem `json:"problems"`
}

func (h *Handler) schema(w http.ResponseWriter, r *http.Request) {
	var p Panes
	if !h.decode(w, r, &p) {
		return
	}
	evaluate(h, w, r, func(context.Context) (*SchemaResult, error) {
		probs := compileSchema(p.Schema)
		if probs == nil {
			probs = []Problem{}
		}
		return &SchemaResult{Problems: probs}, nil
	})
}

func (h *Handler) run(w http.ResponseWriter, r *http.Request) {
	var p Panes
	if !h.decode(w, r, &p) {
		return
	}
	evaluate(h, w, r, func(ctx context.Context) (*RunResult, error) { return run(ctx, p, h.opts.Now) })
}

func (h *Handler) check(w http.ResponseWriter, r *http.Request) {
	var req CheckRequest
	if !h.decode(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Check) == "" {
		writeError(w, http.StatusBadRequest, "check: give resource#permission@subject")
		return
	}
	evaluate(h, w, r, func(ctx context.Context) (*CheckResult, error) {
		res, err := check(ctx, req, h.opts.Now)
		if res != nil && res.Problems == nil {
			res.Problems = []Problem{}
		}
		return res, err
	})
}

func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	var p Panes
	if !h.decode(w, r, &p) {
		return
	}
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="playground.yaml"`)
	w.Write([]byte(p.Compose()))
}

// Example returns the enterprise example (examples/enterprise) as panes.
func Example() (Panes, error) {
	return Split(enterprise.ValidationFile(), enterprise.Schema())
}

func (h *Handler) example(w http.ResponseWriter, r *http.Request) {
	p, err := Example()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, p)
}
