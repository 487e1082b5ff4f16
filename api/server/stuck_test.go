package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// stuckBound is the documented bound (docs/operations.md) on what five
// lookups whose client never reads add to the live heap of the server,
// whatever their number of results: their streams hold flow-controlled
// buffers, not their answers.
const stuckBound = 64 << 20

// countingTimer counts the Sends of guarded streams (each arms the stall
// timer once) and never fires.
type countingTimer struct{ sends *atomic.Int64 }

func (c countingTimer) C() <-chan time.Time { return nil }
func (c countingTimer) Reset(time.Duration) { c.sends.Add(1) }
func (countingTimer) Stop()                 {}

// owned yields doc:dNNNNNNN#owner@user:tom for n documents.
func owned(n int) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for i := range n {
			r := tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%07d", i)}, Relation: "owner",
				Subject: tuple.SubjectRef{Type: "user", ID: "tom"},
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() int64 {
	runtime.GC()
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// vmRSS returns the process's resident set from /proc (0 elsewhere).
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestStuckLookups: five lookups of n results each (three LookupSubjects
// over one document's n owners, two LookupResources over the n documents
// one user owns) on a real gRPC connection whose client never calls Recv.
// While they are stuck, probe checks and health checks on the same
// connection keep answering, and the server's live heap stays within
// stuckBound of what it was before they started; afterwards each stream,
// read at last, delivers all n results. On memstore and on Pebble (whose
// scans are iterators held open while the streams are stuck). n is 20,000
// in CI; set
// PEMBA_STUCK_LOOKUPS=1000000 for the figure (docs/operations.md).
//
// The client is in the same process, so its buffers count in the heap
// measured: it takes a fixed 64 KiB window per stream (smallWindow), a
// share small and known. The samples are taken whenever the probes have
// run, without waiting for the streams to block: the bound holds at any
// moment, blocked or not.
func TestStuckLookups(t *testing.T) {
	n := stuckN()
	cfg := Config{Overload: Overload{StreamStallTimeout: time.Hour}}
	t.Run("memstore", func(t *testing.T) {
		stuckLookups(t, newFixture(t, cfg, smallWindow...), n, directStuck)
	})
	t.Run("pebble", func(t *testing.T) {
		st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		stuckLookups(t, newFixtureOn(t, st, cfg, smallWindow...), n, directStuck)
	})
}

// TestStuckShapedLookups is TestStuckLookups through the shapes that
// stream through an intermediate set (engine/eval/streamplan.go): three
// LookupResources of doc#view = parent->view, whose n documents lie in a
// folder the user views through a parent folder and a group, and two of
// doc#audit = parent->view & parent->auditor, an intersection whose every
// candidate is decided by Check as the stream is read. Same bound, same
// probes, same n (PEMBA_STUCK_LOOKUPS).
func TestStuckShapedLookups(t *testing.T) {
	n := stuckN()
	cfg := Config{Overload: Overload{StreamStallTimeout: time.Hour}}
	t.Run("memstore", func(t *testing.T) {
		stuckLookups(t, newFixture(t, cfg, smallWindow...), n, shapedStuck)
	})
	t.Run("pebble", func(t *testing.T) {
		st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		stuckLookups(t, newFixtureOn(t, st, cfg, smallWindow...), n, shapedStuck)
	})
}

// TestStuckShapedSubjectLookups is TestStuckLookups through LookupSubjects
// of shapes that stream through the forward walk's intermediate nodes
// (engine/eval/streamsubjects.go): three of doc#view = parent->view,
// whose n users are members of a group viewing the document's parent's
// parent folder, and two of doc#audit, an intersection whose every
// candidate is decided by Check as the stream is read. Same bound, same
// probes, same n (PEMBA_STUCK_LOOKUPS).
func TestStuckShapedSubjectLookups(t *testing.T) {
	n := stuckN()
	cfg := Config{Overload: Overload{StreamStallTimeout: time.Hour}}
	t.Run("memstore", func(t *testing.T) {
		stuckLookups(t, newFixture(t, cfg, smallWindow...), n, shapedSubjectsStuck)
	})
	t.Run("pebble", func(t *testing.T) {
		st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		stuckLookups(t, newFixtureOn(t, st, cfg, smallWindow...), n, shapedSubjectsStuck)
	})
}

// stuckN is the results of each stuck lookup: 20,000 in CI, or
// PEMBA_STUCK_LOOKUPS.
func stuckN() int {
	if v, err := strconv.Atoi(os.Getenv("PEMBA_STUCK_LOOKUPS")); err == nil && v > 0 {
		return v
	}
	return 20_000
}

// stuckWorkload is what a stuck-lookups test loads, and asks: load writes
// the schema and the relationships (n results per lookup), open starts
// lookup i of five, and probe is a check that must keep answering yes.
type stuckWorkload struct {
	load  func(t *testing.T, f *fixture, n int)
	open  func(ctx context.Context, f *fixture, i int) (func() (int, error), error)
	probe *pb.CheckPermissionRequest
}

// directStuck: three LookupSubjects over one document's n owners, two
// LookupResources over the n documents one user owns (a direct relation).
var directStuck = stuckWorkload{
	load: func(t *testing.T, f *fixture, n int) {
		f.writeSchema()
		for _, rels := range []iter.Seq2[tuple.Relationship, error]{owners("big", n), owned(n)} {
			if _, _, err := f.eng.Import(context.Background(), "test", rels); err != nil {
				t.Fatal(err)
			}
		}
	},
	open: func(ctx context.Context, f *fixture, i int) (func() (int, error), error) {
		if i < 3 {
			s, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "big"}, Permission: "edit", SubjectObjectType: "user"})
			return func() (int, error) { return count(s.Recv) }, err
		}
		s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{ResourceObjectType: "doc", Permission: "edit", Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "tom"}}})
		return func() (int, error) { return count(s.Recv) }, err
	},
	probe: &pb.CheckPermissionRequest{
		Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "big"}, Permission: "edit",
		Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "u0000007"}},
	},
}

// shapedSchema has an arrow over a recursive arrow and a subject set, and
// an intersection of two arrows.
const shapedSchema = `definition user {}

definition group {
  relation member: user | group#member
}

definition folder {
  relation parent: folder
  relation viewer: user | group#member
  relation auditor: user
  permission view = viewer + parent->view
}

definition doc {
  relation parent: folder
  permission view = parent->view
  permission audit = parent->view & parent->auditor
}
`

// shapedStuck: n documents in folder:f, in folder:top, viewed by
// group:eng, of which tom is a member; tom audits folder:f.
var shapedStuck = stuckWorkload{
	load: func(t *testing.T, f *fixture, n int) {
		f.writeSchemaText(t, shapedSchema)
		f.write("group:eng#member@user:tom", "folder:top#viewer@group:eng#member", "folder:f#parent@folder:top", "folder:f#auditor@user:tom")
		docs := func(yield func(tuple.Relationship, error) bool) {
			for i := range n {
				r := tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%07d", i)}, Relation: "parent",
					Subject: tuple.SubjectRef{Type: "folder", ID: "f"},
				}
				if !yield(r, nil) {
					return
				}
			}
		}
		if _, _, err := f.eng.Import(context.Background(), "test", docs); err != nil {
			t.Fatal(err)
		}
	},
	open: func(ctx context.Context, f *fixture, i int) (func() (int, error), error) {
		perm := "view"
		if i >= 3 {
			perm = "audit"
		}
		s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{ResourceObjectType: "doc", Permission: perm, Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "tom"}}})
		return func() (int, error) { return count(s.Recv) }, err
	},
	probe: &pb.CheckPermissionRequest{
		Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "d0000007"}, Permission: "audit",
		Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "tom"}},
	},
}

// shapedSubjectsStuck: n users in group:eng, which views folder:top, the
// parent of folder:f, the parent of doc:d; every user audits folder:f.
var shapedSubjectsStuck = stuckWorkload{
	load: func(t *testing.T, f *fixture, n int) {
		f.writeSchemaText(t, shapedSchema)
		f.write("folder:top#viewer@group:eng#member", "folder:f#parent@folder:top", "doc:d#parent@folder:f")
		users := func(yield func(tuple.Relationship, error) bool) {
			for i := range n {
				u := tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%07d", i)}
				if !yield(tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: "eng"}, Relation: "member", Subject: u}, nil) ||
					!yield(tuple.Relationship{Resource: tuple.ObjectRef{Type: "folder", ID: "f"}, Relation: "auditor", Subject: u}, nil) {
					return
				}
			}
		}
		if _, _, err := f.eng.Import(context.Background(), "test", users); err != nil {
			t.Fatal(err)
		}
	},
	open: func(ctx context.Context, f *fixture, i int) (func() (int, error), error) {
		perm := "view"
		if i >= 3 {
			perm = "audit"
		}
		s, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "d"}, Permission: perm, SubjectObjectType: "user"})
		return func() (int, error) { return count(s.Recv) }, err
	},
	probe: &pb.CheckPermissionRequest{
		Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "d"}, Permission: "audit",
		Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "u0000007"}},
	},
}

func stuckLookups(t *testing.T, f *fixture, n int, w stuckWorkload) {
	var sends atomic.Int64
	f.srv.guards.newTimer = func(time.Duration) stallTimer { return countingTimer{&sends} }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	w.load(t, f, n)
	t.Logf("loaded in %s", time.Since(start).Round(time.Millisecond))
	idleHeap, idleRSS := liveHeap(), vmRSS()

	var drains []func() (int, error)
	for i := range 5 {
		d, err := w.open(ctx, f, i)
		if err != nil {
			t.Fatal(err)
		}
		drains = append(drains, d)
	}
	health := healthpb.NewHealthClient(f.conn)
	var peakHeap, peakRSS int64
	for round := range 20 {
		for range 10 {
			pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
			resp, err := f.perms.CheckPermission(pctx, w.probe)
			if err != nil || resp.GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
				t.Fatalf("probe check in round %d: %v, %v", round, resp.GetPermissionship(), err)
			}
			if _, err := health.Check(pctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatalf("health check in round %d: %v", round, err)
			}
			pcancel()
		}
		peakHeap, peakRSS = max(peakHeap, liveHeap()), max(peakRSS, vmRSS())
	}
	sent := sends.Load()
	added := peakHeap - idleHeap
	t.Logf("5 stuck lookups of %d results: live heap %d MiB idle, peak %+.1f MiB (%.0f KiB per stream); RSS %d MiB idle, peak %+.1f MiB; %d of %d results sent before the streams were read",
		n, idleHeap>>20, float64(added)/(1<<20), float64(added)/5/1024, idleRSS>>20, float64(peakRSS-idleRSS)/(1<<20), sent, 5*n)
	if added > stuckBound {
		t.Errorf("five stuck lookups added %d MiB of live heap, more than the documented %d MiB", added>>20, stuckBound>>20)
	}
	if sent >= int64(5*n) {
		t.Errorf("all %d results were sent to a client that did not read: flow control did not hold the streams", sent)
	}
	for i, d := range drains {
		got, err := d()
		if err != nil || got != n {
			t.Errorf("stream %d, read at last: %d results, %v; want %d", i, got, err, n)
		}
	}
}

// count reads a stream to its end and returns how many messages it had.
func count[T any](recv func() (T, error)) (int, error) {
	n := 0
	for {
		if _, err := recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

// BenchmarkLookupStream reads a LookupSubjects of 20,000 results over a
// real gRPC connection, with and without the stall cut-off (whose Sends
// go through a goroutine of the stream). One op is one result.
func BenchmarkLookupStream(b *testing.B) {
	const n = 20_000
	for _, stall := range []time.Duration{0, time.Minute} {
		b.Run(fmt.Sprintf("stall=%s", stall), func(b *testing.B) {
			f := newFixture(b, Config{Overload: Overload{StreamStallTimeout: stall}})
			f.writeSchema()
			if _, _, err := f.eng.Import(context.Background(), "test", owners("big", n)); err != nil {
				b.Fatal(err)
			}
			req := &pb.LookupSubjectsRequest{Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "big"}, Permission: "edit", SubjectObjectType: "user"}
			b.ResetTimer()
			for done := 0; done < b.N; {
				s, err := f.perms.LookupSubjects(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				got, err := count(s.Recv)
				if err != nil || got != n {
					b.Fatalf("%d results, %v", got, err)
				}
				done += n
			}
		})
	}
}
