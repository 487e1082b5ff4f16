package main

import (
	"log/slog"
	"net/http"

	"github.com/pemba-authz/pemba/api/authzen"
	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
)

// authzenHandlers mounts the AuthZEN Authorization API on the HTTP
// listener: /access/v1/... and /.well-known/authzen-configuration, with
// the server's keys and its request size limit.
func authzenHandlers(eng *engine.Engine, srv *server.Server, maxBody int, log *slog.Logger) (map[string]http.Handler, error) {
	h, err := authzen.New(eng, authzen.Options{Authenticate: srv.KeyChecker(), MaxBodyBytes: int64(maxBody), Logger: log})
	if err != nil {
		return nil, err
	}
	handlers := map[string]http.Handler{}
	for _, p := range authzen.Patterns() {
		handlers[p] = h
	}
	return handlers, nil
}
