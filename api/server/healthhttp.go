package server

import (
	"context"
	"net/http"
	"time"
)

// healthTimeout bounds one /healthz or /readyz probe.
const healthTimeout = 2 * time.Second

// HealthHandler serves the HTTP probes for orchestrators:
//
//   - /healthz (liveness): 200 when the engine answers (it is open and
//     its store returns a head revision), 503 otherwise.
//   - /readyz (readiness): as /healthz, and also 503 once the server
//     has begun to stop, so that load balancers drain it.
//
// The body is "ok" or the reason in one line.
func (s *Server) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.probe(w, r, false)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		s.probe(w, r, true)
	})
	return mux
}

func (s *Server) probe(w http.ResponseWriter, r *http.Request, ready bool) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if ready && s.stopping.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("stopping\n"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := s.eng.Ping(ctx); err != nil {
		// The cause goes to the log, not to unauthenticated callers.
		s.log.Warn("health probe failed", "path", r.URL.Path, "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("unavailable\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
