package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	gw "github.com/pemba-authz/pemba/api/gateway"
)

// The HTTP/JSON API is grpc-gateway's translation (package api/gateway)
// of the HTTP rules in api/proto/pemba/v1/http.yaml into calls on this
// server's own gRPC services,
// made over an in-memory connection (not RegisterXHandlerServer, which
// cannot stream). Every HTTP call is therefore a gRPC call: the same
// interceptors authenticate it (the gateway forwards "Authorization" as
// metadata), bound it, convert its errors and count it in the gRPC
// metrics; the API cannot drift from the protos.

// gateway is the HTTP/JSON API of one Run and its loopback connection.
type gateway struct {
	handler http.Handler
	conn    *grpc.ClientConn
	lis     *bufconn.Listener
}

// loopbackBuffer is the in-memory connection's buffer in bytes.
const loopbackBuffer = 1 << 20

// gatewayStreamWindow is the gateway's HTTP/2 window per stream: what the
// gateway's side of the loopback connection buffers of a stream its HTTP
// client does not read (the default, BDP estimation, may grow it to 16
// MiB). Past it the server's Send blocks, as for a gRPC client that does
// not read (streamguard.go). The connection's window is only credit: the
// transport returns it as data arrives, whoever reads.
const (
	gatewayStreamWindow = 1 << 20
	gatewayConnWindow   = 16 << 20
)

// newGateway serves the gRPC server on an in-memory listener and returns
// the gateway calling it; ctx bounds the gateway's registrations.
func (s *Server) newGateway(ctx context.Context) (*gateway, error) {
	lis := bufconn.Listen(loopbackBuffer)
	go func() { _ = s.grpc.Serve(lis) }() // ends with Stop or GracefulStop
	creds := insecure.NewCredentials()
	if s.tls != nil {
		// The gRPC server speaks TLS on every listener. This connection
		// never leaves the process, so there is no one to verify the
		// certificate against.
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient("passthrough:///pemba-loopback", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxSendMsgBytes)),
		grpc.WithInitialWindowSize(gatewayStreamWindow),
		grpc.WithInitialConnWindowSize(gatewayConnWindow),
	}, s.tracing.DialOptions()...)...)
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("server: gateway connection: %w", err)
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
			// An unknown field is a mistake to report (400 naming the
			// field), not to ignore: a misspelt optional field would
			// silently change the question.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithIncomingHeaderMatcher(forwardHeader),
		// Of the header metadata, only the engine's warnings are meant
		// for HTTP callers (as Pemba-Warning); the gateway would echo the
		// gRPC content type as a header.
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithErrorHandler(gatewayError),
		runtime.WithRoutingErrorHandler(gatewayRoutingError),
		runtime.WithStreamErrorHandler(gatewayStreamError),
	)
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		gw.RegisterPermissionsServiceHandler,
		gw.RegisterSchemaServiceHandler,
		gw.RegisterWatchServiceHandler,
		gw.RegisterAuditServiceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			conn.Close()
			lis.Close()
			return nil, fmt.Errorf("server: gateway: %w", err)
		}
	}
	return &gateway{handler: mux, conn: conn, lis: lis}, nil
}

func (g *gateway) close() {
	g.conn.Close()
	g.lis.Close()
}

// forwardHeader forwards the request id besides what the gateway forwards
// by default (Authorization, Grpc-Metadata-*, the permanent HTTP headers
// prefixed "grpcgateway-").
func forwardHeader(key string) (string, bool) {
	if key == RequestIDHeader {
		return "x-request-id", true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// gatewayError answers a failed unary call with the gateway's own error
// body (the status as JSON: code, message and the details the server
// attached, ErrorInfo's reason among them) and httpStatusOf's HTTP status.
func gatewayError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	var he *runtime.HTTPStatusError
	if rec := recorderOf(ctx); rec != nil && !errors.As(err, &he) {
		if rec.bodyOver > 0 {
			// The gateway reports a body it could not read as
			// INVALID_ARGUMENT; it was too long.
			err = withReason(status.New(codes.ResourceExhausted, fmt.Sprintf(
				"a request message's JSON is over the limit of %d bytes", rec.bodyOver)), ReasonLimitExceeded).Err()
		}
		rec.st = status.Convert(err)
	}
	if d, ok := retryAfter(status.Convert(err)); ok {
		// A shed call: HTTP's own way to say when to come back.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// gatewayRoutingError answers a request that matches no route. A known
// path asked with another method than POST gets 405 (the gateway's own
// handler answers 501, as for an unimplemented method).
func gatewayRoutingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
		gatewayError(ctx, mux, m, w, r, &runtime.HTTPStatusError{
			HTTPStatus: httpStatus,
			Err:        status.Errorf(codes.Unimplemented, "%s %s: the HTTP/JSON API takes POST only", r.Method, r.URL.Path),
		})
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}

// gatewayStreamError is gatewayError for streams: the status of an error
// before the first message sets the HTTP status; a later one only
// becomes the stream's last line, {"error": status}.
func gatewayStreamError(ctx context.Context, err error) *status.Status {
	st := status.Convert(err)
	if rec := recorderOf(ctx); rec != nil {
		rec.st = st
	}
	return st
}

// httpStatusOf maps a status to an HTTP status: grpc-gateway's mapping
// (runtime.HTTPStatusFromCode), except where Pemba's reason says more.
// RESOURCE_EXHAUSTED means "slow down" (429) only for a caller over its
// key's own limits, a call shed under overload or refused by the memory
// budget; otherwise it is a
// request over a limit (413) or a path deeper than the depth limit (422).
// A write's failed precondition is HTTP's own 412.
func httpStatusOf(st *status.Status) int {
	switch st.Code() {
	case codes.ResourceExhausted:
		switch statusReason(st) {
		case ReasonMaxDepth:
			return http.StatusUnprocessableEntity
		case ReasonKeyLimit, ReasonOverloaded, ReasonMemoryBudget:
			return http.StatusTooManyRequests
		}
		return http.StatusRequestEntityTooLarge
	case codes.FailedPrecondition:
		if statusReason(st) == ReasonPreconditionFailed {
			return http.StatusPreconditionFailed
		}
	}
	return runtime.HTTPStatusFromCode(st.Code())
}

// statusReason returns the ErrorInfo reason of a status, or "".
func statusReason(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}

// writeHTTPError answers with st (and reason in its ErrorInfo) as the
// gateway would.
func (s *Server) writeHTTPError(w http.ResponseWriter, st *status.Status, reason string) {
	st = withReason(st, reason)
	body, err := protojson.Marshal(st.Proto())
	if err != nil {
		s.log.Error("marshal an HTTP error", "err", err)
		body = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	code := httpStatusOf(st)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pemba"`)
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// retryAfter returns the delay of a status's RetryInfo, if it has one.
func retryAfter(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// HTTPWarningHeader is the HTTP response header that carries the engine's
// warnings (WarningHeader) to HTTP/JSON callers, one per warning.
const HTTPWarningHeader = "Pemba-Warning"

// outgoingHeader maps the gRPC header metadata that HTTP callers see.
func outgoingHeader(key string) (string, bool) {
	if key == WarningHeader {
		return HTTPWarningHeader, true
	}
	return "", false
}
