package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// testSchema exercises every kind of allowed subject the engine validates.
const testSchema = `
use expiration

caveat ip_allowed(ip string, allowed list<string>) {
  ip in allowed
}

caveat over(limit int, n int) {
  n > limit
}

definition user {}

definition group {
  relation member: user | group#member
}

definition document {
  relation viewer: user | user:* | group#member | user with ip_allowed | user with expiration
  relation conditional: user with ip_allowed
  relation banned: user
  permission view = viewer - banned
}
`

// clock is an injected clock that moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t   testing.TB
	ctx context.Context
	st  *memstore.Store
	eng *engine.Engine
	clk *clock
}

// newFixture returns an engine over a fresh memstore with testSchema
// written; opts.Now is replaced by the fixture's clock.
func newFixture(t testing.TB, opts engine.Options) *fixture {
	t.Helper()
	clk := newClock()
	st := memstore.New(memstore.Options{Now: clk.Now, GCWindow: time.Minute})
	t.Cleanup(func() { st.Close() })
	opts.Now = clk.Now
	eng, err := engine.Open(t.Context(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	f := &fixture{t: t, ctx: t.Context(), st: st, eng: eng, clk: clk}
	if _, _, err := eng.WriteSchema(f.ctx, "test", testSchema); err != nil {
		t.Fatal(err)
	}
	return f
}

func mustParse(t testing.TB, s string) tuple.Relationship {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// touch writes relationships and returns the zookie.
func (f *fixture) touch(rels ...string) string {
	f.t.Helper()
	return f.write(store.OpTouch, rels...)
}

func (f *fixture) remove(rels ...string) string {
	f.t.Helper()
	return f.write(store.OpDelete, rels...)
}

func (f *fixture) write(op store.Op, rels ...string) string {
	f.t.Helper()
	ups := make([]engine.Update, len(rels))
	for i, s := range rels {
		ups[i] = engine.Update{Op: op, Relationship: mustParse(f.t, s)}
	}
	z, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Caller: "test", Updates: ups})
	if err != nil {
		f.t.Fatalf("write of %d relationships: %v", len(rels), err)
	}
	return z
}

// check runs a check of "resource#permission@subject" and returns the
// answer and the zookie.
func (f *fixture) check(c engine.Consistency, q string) (eval.Permissionship, string) {
	f.t.Helper()
	r := mustParse(f.t, q)
	resp, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: c, CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
	if err != nil {
		f.t.Fatalf("check %s: %v", q, err)
	}
	return resp.Permissionship, resp.Zookie
}

// withoutInvariants drops the invariants of a schema ("use invariants" and
// each one-line "invariant" declaration), for tests that write data (a
// proof's relationships, a scope's sample) that does not keep them.
func withoutInvariants(text string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if t := strings.TrimSpace(line); t == "use invariants" || strings.HasPrefix(t, "invariant ") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}
