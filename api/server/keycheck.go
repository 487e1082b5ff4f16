package server

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// KeyChecker returns a check of one bearer key against the server's keys,
// giving the name of its holder, for HTTP handlers that authenticate for
// themselves with their own error responses (the AuthZEN API answers 401
// with a message string, as its specification has it). It is nil when
// authentication is off.
func (s *Server) KeyChecker() func(key string) (string, error) {
	if !s.auth.enabled() {
		return nil
	}
	return func(key string) (string, error) {
		md := metadata.MD{"authorization": []string{"Bearer " + key}}
		return s.auth.authenticate(metadata.NewIncomingContext(context.Background(), md))
	}
}
