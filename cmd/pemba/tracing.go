package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Values of serve's -otel-traces flag.
const (
	tracesOff      = "off"
	tracesOTLPGRPC = "otlp-grpc"
	tracesOTLPHTTP = "otlp-http"
)

// validTraces says whether v is a value of -otel-traces.
func validTraces(v string) bool {
	switch v {
	case tracesOff, tracesOTLPGRPC, tracesOTLPHTTP:
		return true
	}
	return false
}

// newTracerProvider configures the OpenTelemetry SDK for serve: an OTLP
// exporter of the kind given (otlp-grpc or otlp-http) behind a batch span
// processor. Everything else comes from the standard OTEL_* environment
// variables, read by the SDK itself: the endpoint, headers, TLS and
// timeout (OTEL_EXPORTER_OTLP_* and OTEL_EXPORTER_OTLP_TRACES_*), the
// sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG; default: parent
// based, always on), the batching (OTEL_BSP_*) and the resource
// (OTEL_SERVICE_NAME, default "pemba", and OTEL_RESOURCE_ATTRIBUTES).
// OTEL_SDK_DISABLED=true turns tracing off whatever the flag says (nil
// provider). Shut the provider down on exit to flush the last spans.
func newTracerProvider(ctx context.Context, kind, version string) (*sdktrace.TracerProvider, error) {
	if kind == tracesOff || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch kind {
	case tracesOTLPGRPC:
		exp, err = otlptracegrpc.New(ctx)
	case tracesOTLPHTTP:
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("-otel-traces %q: want off, otlp-grpc or otlp-http", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("-otel-traces %s: exporter: %w", kind, err)
	}
	// Later options win: the environment overrides the defaults.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "pemba"), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("-otel-traces: resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// shutdownTracing flushes the spans not yet exported, waiting at most
// tracingFlushTimeout.
func shutdownTracing(tp *sdktrace.TracerProvider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		log.Warn("tracing: flushing the last spans", "err", err)
	}
}

// tracingFlushTimeout bounds the flush of the last spans on exit.
const tracingFlushTimeout = 5 * time.Second
