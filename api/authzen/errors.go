package authzen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// This file is the only place where errors become HTTP statuses. The
// Authorization API knows two kinds of failure (§7.2.1): errors of the
// whole payload are HTTP statuses (§10.1.2: 400, 401, 403, 500, with an
// error message string as the body), and errors of one evaluation are a
// deny whose context carries {"error": {"status", "message"}}.

// ErrUnauthenticated: no bearer key, or not a valid one.
var ErrUnauthenticated = errors.New("authzen: unauthenticated")

// errPanic marks a recovered panic.
var errPanic = errors.New("authzen: panic")

// failure is how one error is answered.
type failure struct {
	// status is the HTTP status of the error: of the response when it
	// concerns the whole request, of the item's context.error otherwise.
	status int
	// unknown: the request names a type, relation or permission the
	// schema lacks. An evaluation of it is a deny and a search finds
	// nothing (certification scenario §C-4-6), not a malformed request.
	unknown bool
	// whole: the failure is the server's, not the item's (the datastore
	// is down, no schema is written): it fails the whole request, never
	// one item of a batch.
	whole bool
	// message is what the caller is told.
	message string
}

// errorRule maps every error matching one of targets (errors.Is) to a
// status. The first matching rule wins.
type errorRule struct {
	targets []error
	status  int
	unknown bool
	whole   bool
}

var errorRules = []errorRule{
	{targets: []error{ErrUnauthenticated}, status: http.StatusUnauthorized, whole: true},
	{targets: []error{context.Canceled, context.DeadlineExceeded}, status: http.StatusServiceUnavailable, whole: true},
	{targets: []error{engine.ErrClosed, engine.ErrUnavailable, engine.ErrNoSchema}, status: http.StatusServiceUnavailable, whole: true},
	{targets: []error{errUnknownName, engine.ErrUnknownDefinition, engine.ErrUnknownRelation}, status: http.StatusNotFound, unknown: true},
	// The answer is not known: the data nests deeper than the limit.
	{targets: []error{engine.ErrMaxDepth}, status: http.StatusInternalServerError},
	// The stored data and the schema disagree: not the caller's fault.
	{targets: []error{engine.ErrUnknownStoredCaveat}, status: http.StatusInternalServerError},
	{targets: []error{engine.ErrLimitExceeded, engine.ErrCaveat, engine.ErrInvalidCursor, engine.ErrInvalidZookie,
		engine.ErrFutureZookie, engine.ErrSnapshotExpired, engine.ErrInvalidRequest, tuple.ErrInvalid}, status: http.StatusBadRequest},
}

// classify says how err is answered. Errors no rule knows are internal:
// the caller gets a reference, the log gets the cause.
func classify(log *slog.Logger, route string, err error) failure {
	var br *badRequest
	if errors.As(err, &br) {
		return failure{status: br.status, message: br.msg}
	}
	for _, r := range errorRules {
		for _, t := range r.targets {
			if errors.Is(err, t) {
				f := failure{status: r.status, unknown: r.unknown, whole: r.whole, message: err.Error()}
				if errors.Is(err, engine.ErrUnavailable) {
					// The datastore's message names hosts and sockets.
					log.Warn("authzen: datastore unavailable", "route", route, "err", err.Error())
					f.message = "datastore unavailable; retry with backoff"
				}
				return f
			}
		}
	}
	ref := newRef()
	if errors.Is(err, errPanic) {
		log.Error("authzen: panic in handler", "route", route, "ref", ref, "panic", err.Error())
	} else {
		log.Error("authzen: internal error", "route", route, "ref", ref, "err", err.Error())
	}
	return failure{status: http.StatusInternalServerError, message: "internal error (reference " + ref + "; the server log has the cause)"}
}

// itemError is the decision of one evaluation that failed (§7.2.1):
// closed, with the error in its context.
func itemError(f failure) decision {
	return decision{Decision: false, Context: map[string]any{
		"error": map[string]any{"status": f.status, "message": f.message},
	}}
}

// writeError answers the whole request with f's status and message, as
// §10.1.2 has it: an error message string.
func writeError(w http.ResponseWriter, f failure) {
	h := w.Header()
	if f.status == http.StatusUnauthorized {
		// §11.3: a 401 names the expected scheme.
		h.Set("WWW-Authenticate", `Bearer realm="pemba"`)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(f.status)
	_, _ = w.Write([]byte(f.message + "\n"))
}

// newRef returns a short random reference for correlating an internal
// error with its log line.
func newRef() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
