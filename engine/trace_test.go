package engine_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// traceSchema nests a permission in another, on two object types, so
// that a check dispatches subproblems (and, in a cluster, sends the
// folder's to its owner).
const traceSchema = `
definition user {}

definition folder {
  relation viewer: user
  permission view = viewer
}

definition document {
  relation parent: folder
  relation viewer: user
  permission view = viewer + parent->view
}
`

// tracedNode is an engine recording spans into exp.
func tracedNode(t *testing.T, st *memstore.Store, exp *tracetest.InMemoryExporter, opts engine.Options) *engine.Engine {
	t.Helper()
	opts.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	opts.Concurrency = 1 // one order of spans
	e, err := engine.Open(t.Context(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// spanTree renders the spans as an indented tree, children sorted, with
// the attributes a person filters on and the status of failed spans.
func spanTree(spans tracetest.SpanStubs) string {
	children := map[trace.SpanID][]tracetest.SpanStub{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext.SpanID()] = true
	}
	var roots []tracetest.SpanStub
	for _, s := range spans {
		if p := s.Parent.SpanID(); s.Parent.IsValid() && ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func(list []tracetest.SpanStub, indent string)
	walk = func(list []tracetest.SpanStub, indent string) {
		lines := make([]string, len(list))
		for i, s := range list {
			lines[i] = spanLine(s)
		}
		order := make([]int, len(list))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(lines[a], lines[b]) })
		for _, i := range order {
			fmt.Fprintf(&b, "%s%s\n", indent, lines[i])
			walk(children[list[i].SpanContext.SpanID()], indent+"  ")
		}
	}
	walk(roots, "")
	return b.String()
}

// shown are the attributes spanTree prints.
var shown = []attribute.Key{"pemba.resource_type", "pemba.resource_id", "pemba.permission", "pemba.relation",
	"pemba.consistency", "pemba.depth", "pemba.cache_hit", "pemba.result", "pemba.rows", "pemba.results"}

func spanLine(s tracetest.SpanStub) string {
	parts := []string{s.Name}
	for _, k := range shown {
		for _, kv := range s.Attributes {
			if kv.Key == k {
				parts = append(parts, fmt.Sprintf("%s=%s", strings.TrimPrefix(string(k), "pemba."), kv.Value.String()))
			}
		}
	}
	if s.Status.Code == codes.Error {
		parts = append(parts, "ERROR")
	}
	return strings.Join(parts, " ")
}

// peerEngine is a cluster peer in process: the owner engine answering a
// dispatch as its API would.
type peerEngine struct {
	from, to *engine.Engine
}

func (p peerEngine) DispatchCheck(ctx context.Context, req *engine.DispatchRequest) (*engine.DispatchResponse, error) {
	return p.to.DispatchCheck(ctx, p.from.Fingerprint(), req)
}

// folderRouter sends every folder subproblem to peer.
type folderRouter struct{ peer *peerEngine }

func (r folderRouter) Route(typ, id, rel string) engine.Peer {
	if typ == "folder" {
		return r.peer
	}
	return nil
}

func TestTraceSpanTree(t *testing.T) {
	clk := newClock()
	st := memstore.New(memstore.Options{Now: clk.Now})
	t.Cleanup(func() { st.Close() })
	exp := tracetest.NewInMemoryExporter()
	peer := &peerEngine{}
	// a routes folders to b; b routes nothing.
	a := tracedNode(t, st, exp, engine.Options{Now: clk.Now, Router: folderRouter{peer}})
	b := tracedNode(t, st, exp, engine.Options{Now: clk.Now})
	peer.from, peer.to = a, b
	ctx := t.Context()
	if _, _, err := a.WriteSchema(ctx, "test", traceSchema); err != nil {
		t.Fatal(err)
	}
	var ups []engine.Update
	for _, s := range []string{"document:readme#parent@folder:docs", "folder:docs#viewer@user:tom"} {
		ups = append(ups, engine.Update{Op: engine.OpTouch, Relationship: mustParse(t, s)})
	}
	z, err := a.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups})
	if err != nil {
		t.Fatal(err)
	}
	check := func(perm string) error {
		_, err := a.Check(ctx, engine.CheckRequest{
			Consistency:  engine.AtExactSnapshot(z),
			CheckRequest: engine.CheckQuery{Resource: mustParse(t, "document:readme#viewer@user:tom").Resource, Permission: perm, Subject: mustParse(t, "document:readme#viewer@user:tom").Subject},
		})
		return err
	}

	tests := []struct {
		name, perm string
		wantErr    bool
		want       string
	}{{
		name: "dispatches",
		perm: "view",
		// The document's subproblems are evaluated on a; the folder's is
		// sent to b, whose spans are children of a's remote span.
		want: `pemba.Check resource_type=document resource_id=readme permission=view consistency=at_exact_snapshot depth=3 cache_hit=false result=HAS_PERMISSION
  pemba.datastore.ReadSchema
  pemba.dispatch resource_type=document resource_id=readme permission=view depth=1 cache_hit=false result=HAS_PERMISSION
    pemba.datastore.QueryRelationships resource_type=document relation=parent rows=1
    pemba.dispatch resource_type=document resource_id=readme permission=viewer depth=2 cache_hit=false result=NO_PERMISSION
      pemba.datastore.QueryRelationships resource_type=document relation=viewer rows=0
    pemba.dispatch resource_type=folder resource_id=docs permission=view depth=2 result=HAS_PERMISSION
      pemba.dispatch.remote resource_type=folder resource_id=docs permission=view depth=2 result=HAS_PERMISSION
        pemba.DispatchCheck resource_type=folder resource_id=docs permission=view depth=2 result=HAS_PERMISSION
          pemba.datastore.ReadSchema
          pemba.dispatch resource_type=folder resource_id=docs permission=view depth=2 cache_hit=false result=HAS_PERMISSION
            pemba.dispatch resource_type=folder resource_id=docs permission=viewer depth=3 cache_hit=false result=HAS_PERMISSION
              pemba.datastore.QueryRelationships resource_type=folder relation=viewer rows=1
`,
	}, {
		name: "cache hit",
		perm: "view",
		// The same check again: the root is answered by a's cache.
		want: `pemba.Check resource_type=document resource_id=readme permission=view consistency=at_exact_snapshot depth=0 cache_hit=true result=HAS_PERMISSION
  pemba.cache.hit resource_type=document resource_id=readme permission=view depth=1 cache_hit=true result=HAS_PERMISSION
`,
	}, {
		name:    "error",
		perm:    "edit",
		wantErr: true,
		want: `pemba.Check resource_type=document resource_id=readme permission=edit consistency=at_exact_snapshot ERROR
`,
	}}
	for _, tt := range tests {
		exp.Reset()
		err := check(tt.perm)
		if (err != nil) != tt.wantErr {
			t.Fatalf("%s: check: error %v, want error: %v", tt.name, err, tt.wantErr)
		}
		if got := spanTree(exp.GetSpans()); got != tt.want {
			t.Errorf("%s: span tree:\n%s\nwant:\n%s", tt.name, got, tt.want)
		}
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID() != exp.GetSpans()[0].SpanContext.TraceID() {
				t.Errorf("%s: span %s is on another trace", tt.name, s.Name)
			}
		}
	}
}

// TestTraceOffRecordsNothing checks that an unsampled request records no
// span below its own: the evaluator and the datastore start none.
func TestTraceOffRecordsNothing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.NeverSample()))
	f := newFixture(t, engine.Options{TracerProvider: tp, CacheBytes: -1})
	f.touch("group:eng#member@user:tom", "document:d#viewer@group:eng#member")
	if got, _ := f.check(engine.FullyConsistent(), "document:d#view@user:tom"); got != engine.HasPermission {
		t.Fatalf("check: %v", got)
	}
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("unsampled check recorded %d spans:\n%s", len(spans), spanTree(spans))
	}
}

// TestTraceDepthError checks the spans of a check that fails below the
// root: every span on the failing path carries the error.
func TestTraceDepthError(t *testing.T) {
	clk := newClock()
	st := memstore.New(memstore.Options{Now: clk.Now})
	t.Cleanup(func() { st.Close() })
	exp := tracetest.NewInMemoryExporter()
	e := tracedNode(t, st, exp, engine.Options{Now: clk.Now, MaxDepth: 2, CacheBytes: -1})
	ctx := t.Context()
	if _, _, err := e.WriteSchema(ctx, "test", traceSchema); err != nil {
		t.Fatal(err)
	}
	var ups []engine.Update
	for _, s := range []string{"document:readme#parent@folder:docs", "folder:docs#viewer@user:tom"} {
		ups = append(ups, engine.Update{Op: engine.OpTouch, Relationship: mustParse(t, s)})
	}
	if _, err := e.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups}); err != nil {
		t.Fatal(err)
	}
	exp.Reset()
	r := mustParse(t, "document:readme#view@user:tom")
	_, err := e.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
	if !errors.Is(err, engine.ErrMaxDepth) {
		t.Fatalf("check: %v, want ErrMaxDepth", err)
	}
	// The folder's view is at depth 2; its viewer, at 3, is past the
	// limit and never dispatched. (No cache: no cache_hit attribute.)
	want := `pemba.Check resource_type=document resource_id=readme permission=view consistency=fully_consistent ERROR
  pemba.datastore.ReadSchema
  pemba.dispatch resource_type=document resource_id=readme permission=view depth=1 ERROR
    pemba.datastore.QueryRelationships resource_type=document relation=parent rows=1
    pemba.dispatch resource_type=document resource_id=readme permission=viewer depth=2 result=NO_PERMISSION
      pemba.datastore.QueryRelationships resource_type=document relation=viewer rows=0
    pemba.dispatch resource_type=folder resource_id=docs permission=view depth=2 ERROR
`
	if got := spanTree(exp.GetSpans()); got != want {
		t.Errorf("span tree:\n%s\nwant:\n%s", got, want)
	}
}

// TestTraceLookup checks that a lookup's span covers the iteration of its
// results: the evaluator's and the datastore's spans are its descendants,
// and it counts the results.
func TestTraceLookup(t *testing.T) {
	clk := newClock()
	st := memstore.New(memstore.Options{Now: clk.Now})
	t.Cleanup(func() { st.Close() })
	exp := tracetest.NewInMemoryExporter()
	e := tracedNode(t, st, exp, engine.Options{Now: clk.Now, CacheBytes: -1})
	ctx := t.Context()
	if _, _, err := e.WriteSchema(ctx, "test", traceSchema); err != nil {
		t.Fatal(err)
	}
	var ups []engine.Update
	for _, s := range []string{"document:readme#parent@folder:docs", "folder:docs#viewer@user:tom", "document:notes#viewer@user:tom"} {
		ups = append(ups, engine.Update{Op: engine.OpTouch, Relationship: mustParse(t, s)})
	}
	if _, err := e.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups}); err != nil {
		t.Fatal(err)
	}
	exp.Reset()
	seq, _, err := e.LookupResources(ctx, engine.LookupResourcesRequest{Consistency: engine.FullyConsistent(),
		LookupResourcesRequest: engine.LookupResourcesQuery{ResourceType: "document", Permission: "view", Subject: mustParse(t, "document:x#viewer@user:tom").Subject}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	spans := exp.GetSpans()
	var root *tracetest.SpanStub
	for i, s := range spans {
		if !s.Parent.IsValid() {
			root = &spans[i]
		}
	}
	if root == nil || root.Name != engine.SpanLookupResources {
		t.Fatalf("no root span %s:\n%s", engine.SpanLookupResources, spanTree(spans))
	}
	if line := spanLine(*root); !strings.Contains(line, fmt.Sprintf("results=%d", n)) || n != 2 {
		t.Errorf("root span %q, want results=2 (%d results)", line, n)
	}
	for _, s := range spans {
		if s.SpanContext.TraceID() != root.SpanContext.TraceID() {
			t.Errorf("span %s is on another trace", s.Name)
		}
	}
	if len(spans) < 3 {
		t.Errorf("the lookup recorded no datastore or dispatch spans:\n%s", spanTree(spans))
	}
}
