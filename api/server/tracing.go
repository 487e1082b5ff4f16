package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// This file is the server's OpenTelemetry tracing: a span per gRPC call
// (every service on the server: pemba.v1, authzed.api.v1, cluster
// dispatch, health), a span per HTTP request on the HTTP listener (the
// gateway's call into gRPC is its child), W3C trace context taken from
// callers, and trace ids in the log. The engine records its own spans
// below the call's (engine.Options.TracerProvider); the command
// configures the SDK and exporter (cmd/pemba).

// Tracing configures tracing of a server. The zero value is off.
type Tracing struct {
	// TracerProvider records the spans; nil turns tracing off.
	TracerProvider trace.TracerProvider
	// Propagator reads the trace context of incoming calls (and writes it
	// on the gateway's calls into gRPC); nil means DefaultPropagator.
	Propagator propagation.TextMapPropagator
}

// DefaultPropagator is W3C Trace Context with W3C Baggage: the
// traceparent, tracestate and baggage headers (or gRPC metadata).
func DefaultPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

func (t Tracing) on() bool { return t.TracerProvider != nil }

func (t Tracing) propagator() propagation.TextMapPropagator {
	if t.Propagator != nil {
		return t.Propagator
	}
	return DefaultPropagator()
}

// serverOptions are the gRPC server options of t: a stats handler that
// starts a span per call, a child of the caller's when it sent one.
// Health checks are not traced: probes every few seconds would bury the
// calls worth looking at.
func (t Tracing) serverOptions() []grpc.ServerOption {
	if !t.on() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.TracerProvider), otelgrpc.WithPropagators(t.propagator()),
		otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool { return !strings.HasPrefix(info.FullMethodName, healthPrefix) })))}
}

// healthPrefix is the method prefix of the gRPC health service.
const healthPrefix = "/grpc.health.v1.Health/"

// DialOptions are the gRPC client options of t: a span per call, its
// context sent to the server. Peers of a cluster use them, so that the
// peer's spans join the sender's trace.
func (t Tracing) DialOptions() []grpc.DialOption {
	if !t.on() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.TracerProvider), otelgrpc.WithPropagators(t.propagator())))}
}

// httpHandler wraps h to start a span per HTTP request, a child of the
// caller's when it sent a traceparent header.
func (t Tracing) httpHandler(h http.Handler) http.Handler {
	if !t.on() {
		return h
	}
	return otelhttp.NewHandler(h, "pemba.http",
		otelhttp.WithTracerProvider(t.TracerProvider), otelhttp.WithPropagators(t.propagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
}

// LogHandler wraps h to add the trace_id and span_id of the record's
// context, when it carries a span, to every record: the access log and
// error lines of a traced call then name the trace to look up.
func LogHandler(h slog.Handler) slog.Handler { return traceLogHandler{h} }

type traceLogHandler struct{ slog.Handler }

func (h traceLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceLogHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceLogHandler) WithGroup(name string) slog.Handler {
	return traceLogHandler{h.Handler.WithGroup(name)}
}
