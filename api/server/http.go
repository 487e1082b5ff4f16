package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/internal/openapi"
)

// The HTTP listener (RunConfig.HTTPListen) serves the HTTP/JSON API
// (gateway.go), the OpenAPI document and the handlers mounted through
// RunConfig.HTTPHandlers. Every request passes one middleware first: it
// gives the request an id, refuses bodies over the request limit, and
// records the route's metrics.

// RequestIDHeader carries a request's id: a caller's own (up to 128
// letters, digits and "._:-") is kept, otherwise the server makes one.
// It is echoed on the response, forwarded to the gRPC handlers as
// "x-request-id" metadata and named in the server's log lines.
const RequestIDHeader = "X-Request-Id"

// httpSide is the HTTP listener of one Run.
type httpSide struct {
	lis net.Listener
	srv *http.Server
	gw  *gateway
}

// listenHTTP listens on rc.HTTPListen and assembles the handler; serve
// starts serving.
func (s *Server) listenHTTP(ctx context.Context, rc RunConfig) (*httpSide, error) {
	gw, err := s.newGateway(ctx)
	if err != nil {
		return nil, err
	}
	h, err := s.httpHandler(gw.handler, rc.HTTPHandlers)
	if err != nil {
		gw.close()
		return nil, err
	}
	lis, err := net.Listen("tcp", rc.HTTPListen)
	if err != nil {
		gw.close()
		return nil, err
	}
	srv := &http.Server{Handler: s.tracing.httpHandler(h), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	if s.tls != nil {
		srv.TLSConfig = s.tls.Clone()
	}
	return &httpSide{lis: lis, srv: srv, gw: gw}, nil
}

// serve serves in the background until shutdown or close.
func (h *httpSide) serve(log *slog.Logger) {
	go func() {
		var err error
		if h.srv.TLSConfig != nil {
			err = h.srv.ServeTLS(h.lis, "", "")
		} else {
			err = h.srv.Serve(h.lis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
}

// shutdown stops accepting requests and waits up to grace for those in
// flight.
func (h *httpSide) shutdown(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
}

// close cuts every connection and the gateway's loopback.
func (h *httpSide) close() {
	h.srv.Close()
	h.lis.Close()
	h.gw.close()
}

// httpHandler routes the HTTP listener: the gateway under /v1/, the
// OpenAPI document, and the extra handlers.
func (s *Server) httpHandler(gw http.Handler, extra map[string]http.Handler) (http.Handler, error) {
	paths, err := openapi.Paths()
	if err != nil {
		return nil, fmt.Errorf("server: the embedded OpenAPI document: %w", err)
	}
	routes := make(map[string]bool, len(paths))
	for _, p := range paths {
		routes[p] = true
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw)
	mux.Handle("GET /openapi.json", openapi.Handler())
	for pattern, h := range extra {
		if err := mount(mux, pattern, h); err != nil {
			return nil, err
		}
	}
	return &httpFront{s: s, next: mux, routes: routes}, nil
}

// mount is mux.Handle with the panic of a bad or conflicting pattern
// turned into an error.
func mount(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("server: HTTP handler %q: %v", pattern, p)
		}
	}()
	if h == nil {
		return fmt.Errorf("server: HTTP handler %q is nil", pattern)
	}
	mux.Handle(pattern, h)
	return nil
}

// httpFront is the middleware in front of every HTTP route.
type httpFront struct {
	s      *Server
	next   *http.ServeMux
	routes map[string]bool // the gateway's paths, from the OpenAPI document
}

func (f *httpFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID(r.Header.Get(RequestIDHeader))
	r.Header.Set(RequestIDHeader, id)
	w.Header().Set(RequestIDHeader, id)
	rec := &httpRecorder{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec))
	if f.routes[r.URL.Path] {
		// The gateway buffers a request message's JSON whole before
		// converting it: bound it as gRPC bounds a message. An import's
		// body is a stream of messages, each bounded alone.
		limit := int64(f.s.maxRecv)
		stream := r.URL.Path == importPath
		if r.ContentLength > limit && !stream {
			f.s.writeHTTPError(rec, status.New(codes.ResourceExhausted, fmt.Sprintf(
				"request body of %d bytes is over the limit of %d bytes", r.ContentLength, limit)), ReasonLimitExceeded)
			f.observe(r, rec, id, start)
			return
		}
		r.Body = &boundedBody{ReadCloser: r.Body, limit: limit, perValue: stream, rec: rec}
	}
	f.next.ServeHTTP(rec, r)
	f.observe(r, rec, id, start)
}

// importPath is the route of ImportRelationships, a client stream.
const importPath = "/v1/relationships/import"

// boundedBody fails a body, or with perValue each top-level JSON value of
// it, longer than limit bytes, and marks the request's recorder so that
// the error answers 413 rather than the gateway's 400 for a body it could
// not decode.
type boundedBody struct {
	io.ReadCloser
	limit    int64
	perValue bool
	rec      *httpRecorder

	n       int64 // bytes of the body, or of the current value
	depth   int   // of {} and [] in the current value
	inStr   bool  // inside a JSON string
	escaped bool  // after a backslash in a string
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	for _, c := range p[:n] {
		b.n++
		if b.perValue {
			b.scan(c)
		}
		if b.n > b.limit {
			b.rec.bodyOver = b.limit
			return 0, errBodyTooLarge
		}
	}
	return n, err
}

// scan follows the JSON structure to restart the count after each
// top-level value.
func (b *boundedBody) scan(c byte) {
	switch {
	case b.inStr:
		switch {
		case b.escaped:
			b.escaped = false
		case c == '\\':
			b.escaped = true
		case c == '"':
			b.inStr = false
		}
	case c == '"':
		b.inStr = true
	case c == '{' || c == '[':
		b.depth++
	case c == '}' || c == ']':
		if b.depth--; b.depth == 0 {
			b.n = 0
		}
	}
}

// errBodyTooLarge fails the read of a body over its limit.
var errBodyTooLarge = errors.New("request body over the limit")

// observe records a finished request.
func (f *httpFront) observe(r *http.Request, rec *httpRecorder, id string, start time.Time) {
	route := r.Pattern // set by the ServeMux on this request
	if f.routes[r.URL.Path] {
		route = r.URL.Path // one gateway route (all are literal paths)
	}
	if route == "" {
		route = "unmatched"
	}
	code := rec.code
	if code == 0 {
		code = http.StatusOK
	}
	d := time.Since(start)
	f.s.httpm.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	f.s.httpm.latency.WithLabelValues(route).Observe(d.Seconds())
	if f.s.log.Enabled(r.Context(), f.s.callLevel) {
		f.s.log.Log(r.Context(), f.s.callLevel, "http request", "route", route, "method", r.Method, "status", code, "duration", d, "request_id", id)
	}
}

// requestID returns the caller's id if it is acceptable, else a new one.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n && ok; i++ {
			c := given[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		}
		if ok {
			return given
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// recorderKey is the context key of a request's *httpRecorder: the
// gateway's error handlers record the status they answer with there.
type recorderKey struct{}

// httpRecorder remembers the HTTP status of a response, and sets it from
// the gRPC status that the gateway answers with (httpStatusOf) instead of
// the gateway's own mapping.
type httpRecorder struct {
	http.ResponseWriter
	code int
	st   *status.Status // the error being answered, if any
	// bodyOver is the limit that the request's body (or one of its
	// messages) went over, if it did.
	bodyOver int64
}

// WriteHeader writes the status, mapped from st when set.
func (r *httpRecorder) WriteHeader(code int) {
	if r.code != 0 {
		return
	}
	if r.st != nil {
		code = httpStatusOf(r.st)
		if code == http.StatusUnauthorized {
			r.Header().Set("WWW-Authenticate", `Bearer realm="pemba"`)
		}
	}
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Write writes body bytes (the status first, if not yet written).
func (r *httpRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush on the connection's
// writer (streams flush every message).
func (r *httpRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// recorderOf returns the request's recorder, or nil.
func recorderOf(ctx context.Context) *httpRecorder {
	rec, _ := ctx.Value(recorderKey{}).(*httpRecorder)
	return rec
}

// httpMetrics are the HTTP listener's collectors, by route: a gateway
// path ("/v1/permissions/check"), a mounted handler's pattern, or
// "unmatched".
type httpMetrics struct {
	requests *prometheus.CounterVec   // route, code
	latency  *prometheus.HistogramVec // route
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pemba", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests handled, by route and HTTP status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pemba", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to handle an HTTP request (for streams: the whole stream), by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register HTTP metrics: %w", err)
		}
	}
	return m, nil
}

// RequireKey wraps h so that it runs only for a request that presents one
// of the server's keys ("Authorization: Bearer <key>"), as gRPC calls
// must; others get 401 with a JSON status body. With authentication off
// it returns h. Meant for handlers mounted with RunConfig.HTTPHandlers.
func (s *Server) RequireKey(h http.Handler) http.Handler {
	if !s.auth.Load().enabled() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.auth.Load().authenticateHeader(r.Context(), r.Header.Values("Authorization"))
		if err != nil {
			s.writeHTTPError(w, status.New(codes.Unauthenticated, err.Error()), ReasonUnauthenticated)
			return
		}
		h.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}
