package engine

import (
	"context"
	"iter"
	"time"

	"go.opentelemetry.io/otel/attribute"
	// Span status codes, not gRPC codes (api/server/errors.go owns those).
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/token"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// This file is the engine's tracing: a span per Check, CheckBulk,
// Expand, LookupResources, LookupSubjects and cluster DispatchCheck, and a span per datastore query of a traced
// request. The engine uses only the OpenTelemetry trace API, with the
// TracerProvider given in Options (cmd/pemba configures the SDK and its
// exporter). With no TracerProvider, tracing is off and costs one nil
// test per call.

// TracerName is the instrumentation name of the engine's spans.
const TracerName = "github.com/pemba-authz/pemba/engine"

// Span names of the engine.
const (
	SpanCheck           = "pemba.Check"
	SpanCheckBulk       = "pemba.CheckBulk"
	SpanDispatchCheck   = "pemba.DispatchCheck"
	SpanExpand          = "pemba.Expand"
	SpanLookupResources = "pemba.LookupResources"
	SpanLookupSubjects  = "pemba.LookupSubjects"
	// SpanQuery, SpanReverseQuery and SpanReadSchema are datastore reads.
	SpanQuery        = "pemba.datastore.QueryRelationships"
	SpanReverseQuery = "pemba.datastore.ReverseQueryRelationships"
	SpanReadSchema   = "pemba.datastore.ReadSchema"
)

// Span attribute keys of the engine, beside eval's (eval.AttrPermission
// and the others).
const (
	AttrConsistency = attribute.Key("pemba.consistency")
	AttrItems       = attribute.Key("pemba.items")
	AttrDatastore   = attribute.Key("pemba.datastore")
	AttrRelation    = attribute.Key("pemba.relation")
	AttrRows        = attribute.Key("pemba.rows")
	AttrResults     = attribute.Key("pemba.results")
)

// tracing reports whether the engine records spans below ctx: tracing is
// on and ctx's span (the RPC's, or none) is sampled.
func (e *Engine) tracing(ctx context.Context) bool {
	return e.tracer != nil && trace.SpanFromContext(ctx).IsRecording()
}

// The engine's spans get their attributes after they start, when they
// record: an unsampled request then pays for no attribute. (A sampler
// therefore cannot decide on them.)

// endSpan records err (if any) on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
}

// Check answers one permission check.
func (e *Engine) Check(ctx context.Context, req CheckRequest) (CheckResponse, error) {
	if e.tracer == nil {
		return e.check(ctx, req)
	}
	ctx, span := e.tracer.Start(ctx, SpanCheck)
	if span.IsRecording() {
		span.SetAttributes(
			eval.AttrResourceType.String(req.Resource.Type),
			eval.AttrResourceID.String(req.Resource.ID),
			eval.AttrPermission.String(req.Permission),
			eval.AttrSubjectType.String(req.Subject.Type),
			AttrConsistency.String(req.Consistency.Mode.String()),
		)
	}
	resp, err := e.check(ctx, req)
	if err == nil && span.IsRecording() {
		span.SetAttributes(
			eval.AttrResult.String(resp.Permissionship.String()),
			eval.AttrDispatches.Int(resp.Dispatches),
			eval.AttrDepth.Int(resp.Depth),
			// A root answered by the cache is one dispatch at depth 0
			// (eval.CheckResult).
			eval.AttrCacheHit.Bool(resp.Dispatches == 1 && resp.Depth == 0),
		)
		if rev, zerr := token.DecodeZookie(e.fingerprint, resp.Zookie); zerr == nil {
			span.SetAttributes(eval.AttrRevision.Int64(int64(rev)))
		}
	}
	endSpan(span, err)
	return resp, err
}

// CheckBulk answers every item at one revision (see checkBulk).
func (e *Engine) CheckBulk(ctx context.Context, req BulkCheckRequest) (BulkCheckResponse, error) {
	if e.tracer == nil {
		return e.checkBulk(ctx, req)
	}
	ctx, span := e.tracer.Start(ctx, SpanCheckBulk)
	if span.IsRecording() {
		span.SetAttributes(AttrConsistency.String(req.Consistency.Mode.String()), AttrItems.Int(len(req.Items)))
		if len(req.Items) > 0 {
			// The first item's, to filter on: bulk checks usually ask
			// one permission of many resources.
			span.SetAttributes(
				eval.AttrResourceType.String(req.Items[0].Resource.Type),
				eval.AttrPermission.String(req.Items[0].Permission))
		}
	}
	resp, err := e.checkBulk(ctx, req)
	endSpan(span, err)
	return resp, err
}

// DispatchCheck answers a subproblem another node of the cluster sent to
// this one (see dispatchCheck). Its span is a child of the sender's
// dispatch span when the caller propagated the trace context (the API
// layer extracts it).
func (e *Engine) DispatchCheck(ctx context.Context, fp token.Fingerprint, req *eval.DispatchRequest) (*eval.DispatchResponse, error) {
	if e.tracer == nil {
		return e.dispatchCheck(ctx, fp, req)
	}
	ctx, span := e.tracer.Start(ctx, SpanDispatchCheck)
	if span.IsRecording() {
		span.SetAttributes(
			eval.AttrResourceType.String(req.Resource.Type),
			eval.AttrResourceID.String(req.Resource.ID),
			eval.AttrPermission.String(req.Relation),
			eval.AttrSubjectType.String(req.Subject.Type),
			eval.AttrDepth.Int(len(req.Path)+1),
			eval.AttrRevision.Int64(int64(req.Revision)),
		)
	}
	resp, err := e.dispatchCheck(ctx, fp, req)
	if err == nil && span.IsRecording() {
		span.SetAttributes(eval.AttrResult.String(resp.Permissionship.String()), eval.AttrDispatches.Int(resp.Dispatches))
	}
	endSpan(span, err)
	return resp, err
}

// Expand returns the subject tree of Resource#Permission: the path that
// explains an answer.
func (e *Engine) Expand(ctx context.Context, req ExpandRequest) (*eval.Tree, string, error) {
	if e.tracer == nil {
		return e.expand(ctx, req)
	}
	ctx, span := e.tracer.Start(ctx, SpanExpand)
	if span.IsRecording() {
		span.SetAttributes(
			eval.AttrResourceType.String(req.Resource.Type),
			eval.AttrResourceID.String(req.Resource.ID),
			eval.AttrPermission.String(req.Permission),
			AttrConsistency.String(req.Consistency.Mode.String()),
		)
	}
	tree, zookie, err := e.expand(ctx, req)
	endSpan(span, err)
	return tree, zookie, err
}

// LookupResources resolves the revision, then returns the zookie and a
// sequence of results at that revision, in ascending resource ID order.
// Limit 0 yields every result: a default cap would cut the answer without
// the caller knowing, so Limits.MaxLookupLimit bounds only a Limit the
// caller gives (a page size; resume with the Cursor of the last result).
// Traced, its span ends when the iteration of the results does.
func (e *Engine) LookupResources(ctx context.Context, req LookupResourcesRequest) (iter.Seq2[ResourceResult, error], string, error) {
	if e.tracer == nil {
		return e.lookupResources(ctx, req)
	}
	ctx, span := e.tracer.Start(ctx, SpanLookupResources)
	if span.IsRecording() {
		span.SetAttributes(
			eval.AttrResourceType.String(req.ResourceType),
			eval.AttrPermission.String(req.Permission),
			eval.AttrSubjectType.String(req.Subject.Type),
			AttrConsistency.String(req.Consistency.Mode.String()),
		)
	}
	seq, zookie, err := e.lookupResources(ctx, req)
	if err != nil {
		endSpan(span, err)
		return nil, "", err
	}
	return traceResults(span, seq), zookie, nil
}

// LookupSubjects resolves the revision, then returns the zookie and a
// sequence of results at that revision, in ascending subject ID order
// ("*" first). A resumed page starts after the cursor's subject in the
// evaluator, which confirms only the subjects the page needs (see
// eval.Evaluator.LookupSubjects). Traced, its span ends when the
// iteration of the results does.
func (e *Engine) LookupSubjects(ctx context.Context, req LookupSubjectsRequest) (iter.Seq2[SubjectResult, error], string, error) {
	if e.tracer == nil {
		return e.lookupSubjects(ctx, req)
	}
	ctx, span := e.tracer.Start(ctx, SpanLookupSubjects)
	if span.IsRecording() {
		span.SetAttributes(
			eval.AttrResourceType.String(req.Resource.Type),
			eval.AttrResourceID.String(req.Resource.ID),
			eval.AttrPermission.String(req.Permission),
			eval.AttrSubjectType.String(req.SubjectType),
			AttrConsistency.String(req.Consistency.Mode.String()),
		)
	}
	seq, zookie, err := e.lookupSubjects(ctx, req)
	if err != nil {
		endSpan(span, err)
		return nil, "", err
	}
	return traceResults(span, seq), zookie, nil
}

// traceResults passes on seq's results, counting them on span, and ends
// span when the iteration does.
func traceResults[T any](span trace.Span, seq iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		n := 0
		var err error
		defer func() {
			span.SetAttributes(AttrResults.Int(n))
			endSpan(span, err)
		}()
		for v, e := range seq {
			if e != nil {
				err = e
			} else {
				n++
			}
			if !yield(v, e) {
				return
			}
		}
	}
}

// tracedReader records a span per datastore query of a traced request. The
// engine wraps a snapshot in it only when the request is traced, so an
// untraced request reads the store directly. It wraps the engine's
// hiddenReader, whose read powers (point reads, batch queries,
// statistics) it keeps, so that a traced check is planned and read as an
// untraced one is: the statistics pass through, the reads in spans.
type tracedReader struct {
	hiddenReader
	tracer trace.Tracer
	kind   string
}

// traceReader returns r, wrapped to record its queries when ctx is traced.
func (e *Engine) traceReader(ctx context.Context, r hiddenReader) store.Reader {
	if !e.tracing(ctx) {
		return r
	}
	return tracedReader{hiddenReader: r, tracer: e.tracer, kind: e.st.Kind()}
}

var (
	_ store.PointReader = tracedReader{}
	_ store.BatchReader = tracedReader{}
	_ store.StatsReader = tracedReader{}
)

// ReadRelationship is the reader's point read, in a SpanQuery span.
func (t tracedReader) ReadRelationship(ctx context.Context, k tuple.Key, now time.Time) (tuple.Relationship, bool, error) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return t.hiddenReader.ReadRelationship(ctx, k, now)
	}
	ctx, span := t.start(ctx, SpanQuery, eval.AttrResourceType.String(k.Resource.Type), AttrRelation.String(k.Relation))
	r, ok, err := t.hiddenReader.ReadRelationship(ctx, k, now)
	span.SetAttributes(AttrRows.Int(btoi(ok)))
	endSpan(span, err)
	return r, ok, err
}

// AppendRelationships is the reader's batch query, in a SpanQuery span.
func (t tracedReader) AppendRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.Filter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return t.hiddenReader.AppendRelationships(ctx, dst, f, opts)
	}
	ctx, span := t.start(ctx, SpanQuery, eval.AttrResourceType.String(f.ResourceType), AttrRelation.String(f.Relation))
	n := len(dst)
	dst, err := t.hiddenReader.AppendRelationships(ctx, dst, f, opts)
	span.SetAttributes(AttrRows.Int(len(dst) - n))
	endSpan(span, err)
	return dst, err
}

// AppendReverseRelationships is the reader's batch reverse query, in a
// SpanReverseQuery span.
func (t tracedReader) AppendReverseRelationships(ctx context.Context, dst []tuple.Relationship, f tuple.ReverseFilter, opts store.QueryOptions) ([]tuple.Relationship, error) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return t.hiddenReader.AppendReverseRelationships(ctx, dst, f, opts)
	}
	ctx, span := t.start(ctx, SpanReverseQuery, eval.AttrResourceType.String(f.ResourceType), AttrRelation.String(f.Relation),
		eval.AttrSubjectType.String(f.Subject.Type))
	n := len(dst)
	dst, err := t.hiddenReader.AppendReverseRelationships(ctx, dst, f, opts)
	span.SetAttributes(AttrRows.Int(len(dst) - n))
	endSpan(span, err)
	return dst, err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (t tracedReader) start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	attrs = append(attrs, AttrDatastore.String(t.kind), eval.AttrRevision.Int64(int64(t.Revision())))
	return t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// QueryRelationships is the reader's, in a span that ends with the
// iteration.
func (t tracedReader) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return t.hiddenReader.QueryRelationships(ctx, f, opts)
	}
	return func(yield func(tuple.Relationship, error) bool) {
		ctx, span := t.start(ctx, SpanQuery,
			eval.AttrResourceType.String(f.ResourceType), AttrRelation.String(f.Relation))
		traceRows(span, t.hiddenReader.QueryRelationships(ctx, f, opts), yield)
	}
}

// ReverseQueryRelationships is the reader's, in a span that ends with the
// iteration.
func (t tracedReader) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return t.hiddenReader.ReverseQueryRelationships(ctx, f, opts)
	}
	return func(yield func(tuple.Relationship, error) bool) {
		ctx, span := t.start(ctx, SpanReverseQuery,
			eval.AttrResourceType.String(f.ResourceType), AttrRelation.String(f.Relation),
			eval.AttrSubjectType.String(f.Subject.Type))
		traceRows(span, t.hiddenReader.ReverseQueryRelationships(ctx, f, opts), yield)
	}
}

// traceRows passes seq's rows to yield, counting them on span, and ends
// span when the iteration does.
func traceRows(span trace.Span, seq iter.Seq2[tuple.Relationship, error], yield func(tuple.Relationship, error) bool) {
	rows := 0
	var err error
	for r, e := range seq {
		if e != nil {
			err = e
		} else {
			rows++
		}
		if !yield(r, e) {
			break
		}
	}
	span.SetAttributes(AttrRows.Int(rows))
	endSpan(span, err)
}

// ReadSchema is the reader's, in a span.
func (t tracedReader) ReadSchema(ctx context.Context) (string, store.Revision, error) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return t.hiddenReader.ReadSchema(ctx)
	}
	ctx, span := t.start(ctx, SpanReadSchema)
	text, written, err := t.hiddenReader.ReadSchema(ctx)
	endSpan(span, err)
	return text, written, err
}
