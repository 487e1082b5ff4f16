package server

import (
	"context"

	"google.golang.org/grpc/codes"
)

// HTTPAuthorizer returns the check of one bearer key or identity token
// for HTTP handlers that authenticate for themselves with their own error
// responses (the AuthZEN API answers 401 with a message string, as its
// specification has it): it authenticates the key, requires scope,
// admits the request under the caller's limits and returns the context
// the request continues with, carrying the caller (PrincipalOf), and a
// function to call when the request ends. Errors wrap
// ErrUnauthenticated, ErrPermissionDenied or ErrKeyLimit. It is nil when
// authentication is off.
func (s *Server) HTTPAuthorizer(scope Scope) func(ctx context.Context, key string) (context.Context, func(), error) {
	if !s.auth.Load().enabled() {
		return nil
	}
	return func(ctx context.Context, key string) (context.Context, func(), error) {
		p, err := s.auth.Load().authenticateHeader(ctx, []string{"Bearer " + key})
		if err != nil {
			return nil, nil, err
		}
		adm := &admission{p: p}
		if !p.Scopes.Has(scope) {
			err := &ScopeError{Caller: p.Name, Method: "HTTP API", Missing: scope}
			s.metrics.callerDone(p, codeOf(err))
			return nil, nil, err
		}
		if adm.held, err = p.limiter.acquire(p.Name); err != nil {
			s.metrics.callerDone(p, codeOf(err))
			return nil, nil, err
		}
		// Admitted requests are counted by their own API (AuthZEN has
		// its own HTTP metrics); refusals here.
		return withPrincipal(ctx, p), func() {
			if adm.held {
				p.limiter.release()
			}
		}, nil
	}
}

// KeyChecker returns a check of one bearer key against the server's keys
// that gives the name of its holder and requires ScopeCheck; nil when
// authentication is off. HTTPAuthorizer also applies the caller's limits
// and passes its tenant on.
func (s *Server) KeyChecker() func(key string) (string, error) {
	auth := s.HTTPAuthorizer(ScopeCheck)
	if auth == nil {
		return nil
	}
	return func(key string) (string, error) {
		ctx, done, err := auth(context.Background(), key)
		if err != nil {
			return "", err
		}
		done()
		return PrincipalOf(ctx).Name, nil
	}
}

// codeOf is the status code of err.
func codeOf(err error) codes.Code {
	code, _, _ := classify(err)
	return code
}
