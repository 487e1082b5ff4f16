package engine_test

import (
	"context"
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// benchWorld is a diffFixture over a larger universe: 2,000 documents in
// 500 folders, 1,000 groups, 500 users, preloaded with 10,000
// relationships. (Groups and folders nest at random, so fewer of them
// make a dense graph whose every evaluation is far costlier than real
// data's.)
//
// The result cache is off: a diff evaluates each candidate once per side,
// so the cache would only flatter the baseline's later iterations, which
// repeat the first's evaluations exactly.
func benchWorld(b *testing.B) *diffFixture {
	f := newDiffFixtureWith(b, 42, engine.Options{CacheBytes: -1})
	w := f.world
	w.users = nil
	for i := range 500 {
		w.users = append(w.users, fmt.Sprintf("u%d", i))
	}
	w.groups, w.docs, w.dirs = 1000, 2000, 500
	for range 10 {
		f.batch(1000)
	}
	return f
}

// batch writes n random touches (and deletions of earlier ones) in one
// transaction and returns its zookie.
func (f *diffFixture) batch(n int) string {
	f.t.Helper()
	seen := map[tuple.Key]bool{}
	var ups []engine.Update
	for len(ups) < n {
		op, s := engine.OpTouch, ""
		if len(f.live) > 0 && f.world.rng.IntN(4) == 0 {
			op, s = engine.OpDelete, f.live[f.world.rng.IntN(len(f.live))]
		} else {
			s = f.world.rel(f.clk.Now())
			f.live = append(f.live, s)
		}
		r := mustParse(f.t, s)
		if !seen[r.Key()] {
			seen[r.Key()] = true
			ups = append(ups, engine.Update{Op: op, Relationship: r})
		}
	}
	z, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Caller: "bench", Updates: ups})
	if err != nil {
		f.t.Fatal(err)
	}
	return z
}

// BenchmarkDiffPermissions1000Changes diffs doc#view over 1,000
// relationship changes (one transaction) on the bench world; the
// baseline evaluates every document at both zookies instead.
func BenchmarkDiffPermissions1000Changes(b *testing.B) {
	f := benchWorld(b)
	from := f.head()
	to := f.batch(1000)
	scope := engine.PermissionScope{ResourceType: "doc", Permission: "view", SubjectType: "user"}
	b.Run("diff", func(b *testing.B) {
		var changes, cands int
		cpu, n := processCPU(b), 0
		for b.Loop() {
			n++
			d, err := f.eng.DiffPermissions(f.ctx, engine.DiffRequest{From: from, To: to, Scope: scope})
			if err != nil {
				b.Fatal(err)
			}
			changes = 0
			for _, err := range d.Changes {
				if err != nil {
					b.Fatal(err)
				}
				changes++
			}
			cands = d.Candidates
		}
		b.ReportMetric(float64(processCPU(b)-cpu)/1e6/float64(n), "cpu-ms/op")
		b.ReportMetric(float64(changes), "changes")
		b.ReportMetric(float64(cands), "candidates")
	})
	b.Run("evaluate-all-twice", func(b *testing.B) {
		cpu, n := processCPU(b), 0
		defer func() { b.ReportMetric(float64(processCPU(b)-cpu)/1e6/float64(n), "cpu-ms/op") }()
		for b.Loop() {
			n++
			for _, z := range []string{from, to} {
				for i := range f.world.docs {
					seq, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{Consistency: engine.AtExactSnapshot(z),
						LookupSubjectsRequest: engine.LookupSubjectsQuery{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%d", i)}, Permission: "view", SubjectType: "user"}})
					if err != nil {
						b.Fatal(err)
					}
					for _, err := range seq {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		}
	})
}

// BenchmarkWatchPermissions measures a permission watch under a write
// mix of 10 random changes per transaction on the bench world: each
// iteration commits one write and reads the stream up to its checkpoint,
// so ns/op is the write plus the latency until its events are delivered.
func BenchmarkWatchPermissions(b *testing.B) {
	f := benchWorld(b)
	start := f.head()
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	next, stop := iter.Pull2(f.eng.WatchPermissions(ctx, engine.PermissionWatchRequest{
		Scope: engine.PermissionScope{ResourceType: "doc", Permission: "view", SubjectType: "user"}, After: start, Poll: time.Hour}))
	defer stop()
	until := func(z string) int {
		n := 0
		for {
			ev, err, ok := next()
			if !ok || err != nil {
				b.Fatalf("stream ended: %v", err)
			}
			if ev.Checkpoint && ev.Zookie == z {
				return n
			}
			if !ev.Checkpoint {
				n++
			}
		}
	}
	until(start)
	events, n := 0, 0
	cpu := processCPU(b)
	for b.Loop() {
		events += until(f.batch(10))
		n++
	}
	b.ReportMetric(float64(processCPU(b)-cpu)/1e3/float64(n), "cpu-µs/op")
	b.ReportMetric(float64(events)/float64(n), "events/op")
}
