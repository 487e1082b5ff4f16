package eval

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	// Span status codes, not gRPC codes (api/server/errors.go owns those).
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pemba-authz/pemba/schema"
)

// This file is the evaluator's tracing: a span per subproblem evaluated
// (traceLayer), per cluster dispatch (remoteLayer) and per cache hit
// (traceCacheHit). It uses only the OpenTelemetry trace API; the caller
// chooses the SDK and exporter (Options.Tracer).
//
// Tracing costs nothing when it is off: without Options.Tracer the chain
// has no trace layer and the other sites test one nil field. With a
// tracer, a span is started only below a recording span (the caller's:
// the engine's, which the sampler decided), so an unsampled request costs
// one IsRecording call per subproblem.

// Span attribute keys, shared with the engine's spans so that one filter
// (pemba.permission = "view") finds the request and its subproblems.
const (
	AttrResourceType = attribute.Key("pemba.resource_type")
	AttrResourceID   = attribute.Key("pemba.resource_id")
	AttrPermission   = attribute.Key("pemba.permission")
	AttrSubjectType  = attribute.Key("pemba.subject_type")
	AttrDepth        = attribute.Key("pemba.depth")
	AttrCacheHit     = attribute.Key("pemba.cache_hit")
	AttrResult       = attribute.Key("pemba.result")
	AttrRevision     = attribute.Key("pemba.revision")
	AttrRemote       = attribute.Key("pemba.remote")
	AttrDispatches   = attribute.Key("pemba.dispatches")
)

// Span names.
const (
	SpanDispatch = "pemba.dispatch"
	SpanRemote   = "pemba.dispatch.remote"
	SpanCacheHit = "pemba.cache.hit"
)

// recording reports whether ctx carries a span that records, below which
// the evaluator's spans go.
func recording(ctx context.Context) bool {
	return trace.SpanFromContext(ctx).IsRecording()
}

// traceLayer starts a span for every subproblem that reaches it. It sits
// below the memo layer, so a subproblem shared within a request is one
// span, and above the remote and cache layers, whose spans and attributes
// land inside it.
type traceLayer struct {
	tracer trace.Tracer
	next   dispatcher
}

func (l traceLayer) dispatch(ctx context.Context, rq *request, f *frame, sp subproblem) (result, error) {
	if !recording(ctx) {
		return l.next.dispatch(ctx, rq, f, sp)
	}
	ctx, span := l.tracer.Start(ctx, SpanDispatch, trace.WithAttributes(
		AttrResourceType.String(f.rel.Definition.Name),
		AttrResourceID.String(f.id),
		AttrPermission.String(f.rel.Name),
		AttrSubjectType.String(sp.sub.Type),
		AttrDepth.Int(int(f.depth)),
		AttrRevision.Int64(int64(rq.rev)),
	))
	res, err := l.next.dispatch(ctx, rq, f, sp)
	endSpan(span, res.perm, err)
	return res, err
}

// endSpan records the outcome of an evaluation on span and ends it.
func endSpan(span trace.Span, perm Permissionship, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
	} else {
		span.SetAttributes(AttrResult.String(perm.String()))
	}
	span.End()
}

// traceMiss marks ctx's span, a subproblem's, as not answered by the
// cache.
func traceMiss(ctx context.Context, tracer trace.Tracer) {
	if tracer == nil {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(AttrCacheHit.Bool(false))
	}
}

// traceCacheHit records a cache hit for sp as a span of its own below
// ctx's, and marks ctx's span (the subproblem's) as answered by the cache.
func traceCacheHit(ctx context.Context, tracer trace.Tracer, rel *schema.Relation, id string, depth int32, perm Permissionship) {
	if tracer == nil || !recording(ctx) {
		return
	}
	trace.SpanFromContext(ctx).SetAttributes(AttrCacheHit.Bool(true))
	_, span := tracer.Start(ctx, SpanCacheHit, trace.WithAttributes(
		AttrResourceType.String(rel.Definition.Name),
		AttrPermission.String(rel.Name),
		AttrResourceID.String(id),
		AttrDepth.Int(int(depth)),
		AttrCacheHit.Bool(true),
		AttrResult.String(perm.String()),
	))
	span.End()
}
