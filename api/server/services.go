package server

import (
	"context"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/engine"
)

// This file lets other API packages (api/authzed: SpiceDB's
// authzed.api.v1) serve on the same listener as pemba.v1, behind the same
// interceptors: keys, TLS, limits, metrics, logging and the one error
// table of errors.go.

// RegisterService registers a further gRPC service, before Serve, behind
// the server's interceptors, and reports it SERVING to health checks.
// Its requests that do not decode fail with INVALID_ARGUMENT, as
// pemba.v1's do. With it, *Server is a grpc.ServiceRegistrar.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(decodeErrors(desc, s.eng.HoldMemory), impl)
	s.health.SetServingStatus(desc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

// Status converts err (non-nil) into the status the interceptors would
// return for it, for errors that travel inside a response (the items of a
// bulk check). method names the call in the log.
func (s *Server) Status(method string, err error) *status.Status {
	return statusOf(context.Background(), s.log, method, err)
}

// CallerOf returns the name of the key that authenticated the call of
// ctx, or AnonymousCaller.
func CallerOf(ctx context.Context) string { return callerOf(ctx) }

// WithAuditNote returns ctx annotated for the audit log of a write made
// under it: the call's request id (a new one, sent back in the response
// header x-request-id, when the call has no acceptable one) and reason,
// as the pemba.v1 writes record them.
func WithAuditNote(ctx context.Context, reason string) context.Context {
	return withAuditNote(ctx, reason)
}

// ObserveCheck counts one answered check in the check metrics (outcome,
// dispatches, depth), whichever API asked it.
func (s *Server) ObserveCheck(r engine.CheckResult) {
	s.metrics.checked(permissionshipToProto(r.Permissionship), r.Dispatches, r.Depth)
}
