package authzen

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/schema"
)

// Defaults for Options fields left zero.
const (
	// DefaultMaxBodyBytes bounds a request body; a larger one is refused
	// with 413 before it is parsed.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultPageSize is the number of results of a search page when the
	// request gives no page.limit, and the most any page holds.
	DefaultPageSize = 1000
)

// Authenticator checks the key of an "Authorization: Bearer <key>"
// header and returns the name of its holder; an error means the key is
// not valid. Package api/server's keys make one (the same keys as the
// gRPC API).
type Authenticator func(key string) (caller string, err error)

// Options configure a Handler.
type Options struct {
	// Authenticate checks bearer keys; nil serves without authentication
	// (as the gRPC server does with no keys configured).
	Authenticate Authenticator
	// BaseURL is the Policy Decision Point identifier published in the
	// metadata (§9.1.1), e.g. "https://pdp.example.com", without a
	// trailing slash. Empty: derived from each metadata request's Host
	// (https when the request came over TLS).
	BaseURL string
	// MaxBodyBytes bounds a request body (0: DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// PageSize is the default and largest search page (0:
	// DefaultPageSize).
	PageSize int
	// Logger receives internal errors with their causes (nil: discard).
	Logger *slog.Logger
}

// Handler serves the Authorization API over one engine. Create it with
// New; it is safe for concurrent use.
type Handler struct {
	eng      *engine.Engine
	auth     Authenticator
	baseURL  string
	maxBody  int64
	pageSize int
	log      *slog.Logger
	mux      *http.ServeMux
	// schema is the last schema compiled for an action search, reused
	// while the schema in force is unchanged.
	schema atomic.Pointer[schema.Schema]
}

// New returns the Authorization API handler over e.
func New(e *engine.Engine, opts Options) (*Handler, error) {
	if e == nil {
		return nil, fmt.Errorf("authzen: nil engine")
	}
	h := &Handler{
		eng:      e,
		auth:     opts.Authenticate,
		baseURL:  strings.TrimSuffix(opts.BaseURL, "/"),
		maxBody:  opts.MaxBodyBytes,
		pageSize: opts.PageSize,
		log:      opts.Logger,
		mux:      http.NewServeMux(),
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.pageSize <= 0 {
		h.pageSize = DefaultPageSize
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.mux.HandleFunc("POST "+EvaluationPath, h.authenticated(h.evaluation))
	h.mux.HandleFunc("POST "+EvaluationsPath, h.authenticated(h.evaluations))
	h.mux.HandleFunc("POST "+SearchSubjectPath, h.authenticated(h.searchSubject))
	h.mux.HandleFunc("POST "+SearchResourcePath, h.authenticated(h.searchResource))
	h.mux.HandleFunc("POST "+SearchActionPath, h.authenticated(h.searchAction))
	// The metadata names endpoints only; PEPs fetch it before they hold a
	// key, so it is served without one.
	h.mux.HandleFunc("GET "+MetadataPath, h.metadata)
	return h, nil
}

// Paths of the API (§10.1, table "API Endpoint Overview"; §9.2).
const (
	EvaluationPath     = "/access/v1/evaluation"
	EvaluationsPath    = "/access/v1/evaluations"
	SearchSubjectPath  = "/access/v1/search/subject"
	SearchResourcePath = "/access/v1/search/resource"
	SearchActionPath   = "/access/v1/search/action"
	MetadataPath       = "/.well-known/authzen-configuration"
)

// Patterns lists the paths the handler serves, for a mux that mounts it.
func Patterns() []string {
	return []string{EvaluationPath, EvaluationsPath, SearchSubjectPath, SearchResourcePath, SearchActionPath, MetadataPath}
}

// ServeHTTP routes a request to its endpoint. The X-Request-ID of a
// request is echoed on its response (§10.1.3), errors included, and a
// panic is answered with a 500, never a dropped connection.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get("X-Request-ID"); id != "" {
		w.Header().Set("X-Request-ID", id)
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.fail(w, r, fmt.Errorf("%w: %v", errPanic, p))
		}
	}()
	h.mux.ServeHTTP(w, r)
}

// authenticated runs next only for a request with a valid bearer key.
func (h *Handler) authenticated(next http.HandlerFunc) http.HandlerFunc {
	if h.auth == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h.authenticate(r); err != nil {
			h.fail(w, r, err)
			return
		}
		next(w, r)
	}
}

func (h *Handler) authenticate(r *http.Request) error {
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		return fmt.Errorf("%w: missing \"Authorization: Bearer <key>\" header", ErrUnauthenticated)
	case len(vals) > 1:
		return fmt.Errorf("%w: more than one Authorization header", ErrUnauthenticated)
	}
	scheme, key, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || key == "" {
		return fmt.Errorf("%w: the Authorization header is not \"Bearer <key>\"", ErrUnauthenticated)
	}
	if _, err := h.auth(key); err != nil {
		// The checker's reason stays here: a caller learns only that the
		// key was refused.
		return fmt.Errorf("%w: the key is not valid", ErrUnauthenticated)
	}
	return nil
}

// fail answers the whole request with err's status.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, classify(h.log, r.Pattern, err))
}

// reply writes a 200 with v as its JSON body.
func (h *Handler) reply(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Responses hold only what decoding produced and engine names.
		writeError(w, classify(h.log, "reply", fmt.Errorf("authzen: encode response: %w", err)))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}
