package eval

import (
	"context"
	"sync"
	"testing"
	"time"
)

// mapCache is an answerCache double: a map by key, recording the lookups.
type mapCache struct {
	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
	probes  int
	gets    int
}

func newMapCache() *mapCache { return &mapCache{entries: map[cacheKey]cacheEntry{}} }

func (m *mapCache) get(k cacheKey) (cacheEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	ent, ok := m.entries[k]
	return ent, ok
}

func (m *mapCache) probe(k cacheKey) (cacheEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.probes++
	ent, ok := m.entries[k]
	return ent, ok
}

func (m *mapCache) set(k cacheKey, ent cacheEntry, _ int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[k] = ent
}

// entry returns the stored entry of the check "resource#permission@subject"
// for evaluator e at revision rev, without a caveat context.
func (m *mapCache) entry(t *testing.T, e *Evaluator, rev uint64, check string) (cacheEntry, bool) {
	t.Helper()
	req := parseCheck(t, check)
	rel, err := e.root(req)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, ent := range m.entries {
		if uint64(k.rev) == rev && k.schema == e.schemaID && k.sp == (subproblem{rel: rel.Index, id: req.Resource.ID, sub: req.Subject}) {
			return ent, true
		}
	}
	return cacheEntry{}, false
}

// TestCacheLayer drives the dispatch chain's cache layer through a double:
// what it stores, what it serves at the root of Check and CheckBulk (before
// the chain evaluates anything), and which entries it refuses.
func TestCacheLayer(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
	relation member: user | group#member
}
definition doc {
	relation viewer: user | group#member
	permission view = viewer
}`)
	rd := load(t, mustParse(t,
		"group:a#member@user:anne",
		"doc:1#viewer@group:a#member",
	))
	rev := uint64(rd.Revision())
	p := Params{Reader: rd, Now: testNow}
	ctx := context.Background()

	t.Run("stores exact answers", func(t *testing.T) {
		mc := newMapCache()
		e := newEvaluator(s, Options{}, mc)
		res, err := e.Check(ctx, p, parseCheck(t, "doc:1#view@user:anne"))
		if err != nil || res.Permissionship != HasPermission {
			t.Fatalf("Check = %v, %v", res, err)
		}
		ent, ok := mc.entry(t, e, rev, "doc:1#view@user:anne")
		if !ok || ent.perm != HasPermission || !ent.computed.Equal(testNow) {
			t.Fatalf("root entry = %+v, %v; want a yes computed at testNow", ent, ok)
		}
		if mc.gets == 0 {
			t.Error("the chain never looked below the root")
		}
	})

	t.Run("never stores an answer that assumed a node of a cycle", func(t *testing.T) {
		fs := mustCompile(t, `
definition user {}
definition folder {
	relation parent: folder
	relation viewer: user
	relation banned: user
	permission view = (viewer + parent->view) - banned
}`)
		frd := load(t, mustParse(t, "folder:a#parent@folder:b", "folder:b#parent@folder:a"))
		mc := newMapCache()
		e := newEvaluator(fs, Options{Concurrency: 1}, mc)
		// folder:b#view is evaluated below folder:a#view, which it
		// reaches again: its "no" holds only on that path.
		res, err := e.Check(ctx, Params{Reader: frd, Now: testNow}, parseCheck(t, "folder:a#view@user:bob"))
		if err != nil || res.Permissionship != NoPermission {
			t.Fatalf("Check = %v, %v", res, err)
		}
		frev := uint64(frd.Revision())
		if _, ok := mc.entry(t, e, frev, "folder:b#view@user:bob"); ok {
			t.Error("the cut answer of folder:b#view was cached")
		}
		if _, ok := mc.entry(t, e, frev, "folder:a#view@user:bob"); !ok {
			t.Error("the exact root answer was not cached")
		}
	})

	// A planted entry contradicts the data: an answer that follows it
	// came from the cache.
	const check = "doc:1#view@user:bob"
	for _, tt := range []struct {
		name     string
		computed time.Time
		expires  time.Time
		h        int32
		served   bool
	}{
		{"valid", testNow.Add(-time.Hour), time.Time{}, 1, true},
		{"valid until later", testNow.Add(-time.Hour), testNow.Add(time.Second), 1, true},
		{"computed after now", testNow.Add(time.Second), time.Time{}, 1, false},
		{"expired at now", testNow.Add(-time.Hour), testNow, 1, false},
		{"height beyond the depth limit", testNow.Add(-time.Hour), time.Time{}, DefaultMaxDepth + 1, false},
	} {
		t.Run("root entry "+tt.name, func(t *testing.T) {
			mc := newMapCache()
			e := newEvaluator(s, Options{}, mc)
			req := parseCheck(t, check)
			rel, err := e.root(req)
			if err != nil {
				t.Fatal(err)
			}
			k := cacheKey{rev: rd.Revision(), schema: e.schemaID, sp: subproblem{rel: rel.Index, id: req.Resource.ID, sub: req.Subject}}
			mc.entries[k] = cacheEntry{perm: HasPermission, computed: tt.computed, expires: tt.expires, h: tt.h}
			want := CheckResult{Permissionship: NoPermission}
			if tt.served {
				want = CheckResult{Permissionship: HasPermission, Dispatches: 1}
			}
			res, err := e.Check(ctx, p, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Permissionship != want.Permissionship || (tt.served && (res.Dispatches != 1 || res.Depth != 0)) {
				t.Errorf("Check = %+v, want %+v", res, want)
			}
			if tt.served && (mc.probes != 1 || mc.gets != 0) {
				t.Errorf("a served root took %d probes and went down the chain (%d lookups below it), want 1 probe and none", mc.probes, mc.gets)
			}
			// The same through a request (CheckBulk), and with a caveat
			// context the relation does not depend on (same key).
			pc := p
			pc.Context = map[string]any{"unused": 1}
			for _, pp := range []Params{p, pc} {
				br := e.CheckBulk(ctx, pp, []CheckRequest{req})[0]
				if br.Err != nil || br.Permissionship != want.Permissionship {
					t.Errorf("CheckBulk (context %v) = %+v, want %v", pp.Context, br, want.Permissionship)
				}
			}
		})
	}
}
