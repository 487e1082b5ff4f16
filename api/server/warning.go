package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// WarningHeader is the response header (gRPC metadata key) that carries
// the engine's warnings for the caller, one value per warning, such as
// "relation document#admin is deprecated: use owner". Over HTTP/JSON the
// gateway returns it as the Pemba-Warning header (HTTPWarningHeader).
const WarningHeader = "pemba-warning"

// Warn adds msg to the response headers of the call whose context is
// ctx; outside a gRPC call it does nothing. It is the engine's
// Options.Warn for a server.
func Warn(ctx context.Context, msg string) {
	if grpc.ServerTransportStreamFromContext(ctx) == nil {
		return
	}
	// Fails only once the headers are sent, which the engine's warnings
	// precede; the engine has logged the warning either way.
	_ = grpc.SetHeader(ctx, metadata.Pairs(WarningHeader, msg))
}
