package engine_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pemba-authz/pemba/engine"
)

// BenchmarkCheckTraced is BenchmarkCheckCPU with tracing on: "unsampled"
// is the SDK with a sampler that records nothing (the cost every
// unsampled request pays when tracing is configured), "sampled" records
// every span (into no exporter: the cost of the spans themselves, without
// exporting them).
func BenchmarkCheckTraced(b *testing.B) {
	for _, tc := range []struct {
		name    string
		sampler sdktrace.Sampler
	}{{"unsampled", sdktrace.NeverSample()}, {"sampled", sdktrace.AlwaysSample()}} {
		for _, cached := range []bool{true, false} {
			name := tc.name + "/warm"
			if !cached {
				name = tc.name + "/uncached"
			}
			b.Run(name, func(b *testing.B) {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(tc.sampler))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				benchCheckCPU(b, engine.Options{TracerProvider: tp}, cached)
			})
		}
	}
}
