package bench

import (
	"context"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine"
)

// BenchmarkWatchPermissionsEnterprise is issue 21's watch benchmark: the
// enterprise workload (small scale, memory store, cache on) under its
// write mix (a new hire joins a department and the enterprise, and leaves
// with the next write), with one permission watch open per scope. Each
// iteration commits one write and reads the stream up to that write's
// checkpoint, so ns/op is the write plus its delivery (the inverse of the
// throughput of one subscription), and p50-µs/p99-µs the latency from the
// write's return to its checkpoint; events/op counts the changed results a
// write produced, and cpu-µs/op the process's CPU time per write (writer,
// watch and garbage collector together).
func BenchmarkWatchPermissionsEnterprise(b *testing.B) {
	scopes := []struct {
		name  string
		scope engine.PermissionScope
	}{
		// A hire or leaver changes can_message with every colleague.
		{"can_message", engine.PermissionScope{ResourceType: "employee", Permission: "can_message", SubjectType: "employee"}},
		// Department membership reaches customer records only through
		// managers and owning departments: most writes change nothing.
		{"crm_view", engine.PermissionScope{ResourceType: "crm_customer", Permission: "view", SubjectType: "employee"}},
	}
	for _, sc := range scopes {
		b.Run(sc.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w, err := workload.New("enterprise", workload.Small, 1)
			if err != nil {
				b.Fatal(err)
			}
			t, err := NewInProcess(ctx, InProcessOptions{Store: "memory"})
			if err != nil {
				b.Fatal(err)
			}
			defer t.Close()
			if _, err := t.Load(ctx, w.Schema(), w.Relationships()); err != nil {
				b.Fatal(err)
			}
			next, stop := iter.Pull2(t.e.WatchPermissions(ctx, engine.PermissionWatchRequest{Scope: sc.scope, Poll: time.Hour}))
			defer stop()
			// until reads up to the checkpoint at z and counts the events.
			until := func(z string) int {
				n := 0
				for {
					ev, err, ok := next()
					if !ok || err != nil {
						b.Fatalf("stream ended: %v", err)
					}
					if ev.Checkpoint && (z == "" || ev.Zookie == z) {
						return n
					}
					if !ev.Checkpoint {
						n++
					}
				}
			}
			until("") // the start
			src := w.Source(0)
			var lat []time.Duration
			events := 0
			u0, err := readUsage()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				req := src.Next(workload.OpWrite)
				wr := engine.WriteRequest{Caller: caller}
				for _, u := range req.Updates {
					op := engine.OpTouch
					if u.Delete {
						op = engine.OpDelete
					}
					wr.Updates = append(wr.Updates, engine.Update{Op: op, Relationship: u.Relationship})
				}
				z, err := t.e.WriteRelationships(ctx, wr)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				events += until(z)
				lat = append(lat, time.Since(start))
			}
			u1, err := readUsage()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((u1.user+u1.sys-u0.user-u0.sys).Microseconds())/float64(len(lat)), "cpu-µs/op")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
			b.ReportMetric(float64(events)/float64(len(lat)), "events/op")
		})
	}
}
