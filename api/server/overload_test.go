package server

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

const checkMethod = "/pemba.v1.PermissionsService/CheckPermission"

// hold keeps the calls of one method inside their handler (behind the
// server's admission) until released, and reports each one that enters.
type hold struct {
	method  string
	entered chan struct{}
	release chan struct{}
}

func newHold(method string) *hold {
	return &hold{method: method, entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (h *hold) options() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if info.FullMethod == h.method {
				h.entered <- struct{}{}
				<-h.release
			}
			return next(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if info.FullMethod == h.method {
				h.entered <- struct{}{}
				<-h.release
			}
			return next(srv, ss)
		}),
	}
}

// wantShed checks that err is a shed call: RESOURCE_EXHAUSTED, reason
// OVERLOADED, with a RetryInfo.
func wantShed(t *testing.T, err error) time.Duration {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("got %v, want RESOURCE_EXHAUSTED", err)
	}
	var reason string
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	if reason != ReasonOverloaded || retry == nil || retry.GetRetryDelay().AsDuration() < minRetryAfter {
		t.Fatalf("got reason %q and retry info %v in %v, want %s and a delay of at least %s", reason, retry, err, ReasonOverloaded, minRetryAfter)
	}
	return retry.GetRetryDelay().AsDuration()
}

// TestOverloadBurst fills a server limited to 2 running and 3 queued
// calls, then sends a burst: every call beyond them is shed at once, a
// call whose deadline the queue cannot meet is shed at once although the
// queue has room, the admitted calls all finish within their deadlines,
// and the server then answers as before, its heap no larger than before
// the burst by more than a bound (shed calls hold nothing). Calls are held
// inside the handler by a hook, released by closing a channel: no sleeps.
func TestOverloadBurst(t *testing.T) {
	const running, queued, burst = 2, 3, 200
	const heapBound = 16 << 20 // generous: a shed call holds nothing
	h := newHold(checkMethod)
	f := newFixture(t, Config{Overload: Overload{MaxConcurrent: running, MaxQueue: queued}, GRPCOptions: h.options()})
	f.writeSchema()
	f.write("doc:1#viewer@user:anne")
	lim := f.srv.overload.calls
	var est time.Duration
	queuedAt := make(chan int, burst)
	lim.mu.Lock()
	lim.estimate = func() time.Duration { return est } // read under lim.mu
	lim.onQueued = func(n int) { queuedAt <- n }
	lim.mu.Unlock()
	setEstimate := func(d time.Duration) {
		lim.mu.Lock()
		est = d
		lim.mu.Unlock()
	}
	req := &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "anne", "")}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // bounds the whole test
	defer cancel()

	// Admitted calls: two held inside the handler, then three queued.
	type result struct {
		err  error
		late bool // finished after its deadline
	}
	admitted := make(chan result, running+queued)
	call := func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		dl, _ := cctx.Deadline()
		_, err := f.perms.CheckPermission(cctx, req)
		admitted <- result{err, time.Now().After(dl)}
	}
	for range running {
		go call()
	}
	for range running {
		<-h.entered
	}
	// The queue is empty, but with calls taking an hour a 10 s deadline
	// cannot be met: shed at once, before the queue fills.
	setEstimate(time.Hour)
	short, scancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := f.perms.CheckPermission(short, req)
	scancel()
	if d := wantShed(t, err); d < time.Hour {
		t.Fatalf("retry after %s, want the expected wait (an hour)", d)
	}
	setEstimate(0)
	for i := range queued {
		go call()
		if n := <-queuedAt; n != i+1 {
			t.Fatalf("queue length %d, want %d", n, i+1)
		}
	}

	// The burst: the queue is full, so every call is shed at once (the
	// held calls are still held, so none of these could run).
	heapBefore := heapAfterGC()
	var wg sync.WaitGroup
	errs := make([]error, burst)
	for i := range burst {
		wg.Go(func() {
			_, errs[i] = f.perms.CheckPermission(ctx, req)
		})
	}
	wg.Wait()
	for _, err := range errs {
		wantShed(t, err)
	}
	if r, q := lim.state(); r != running || q != queued {
		t.Fatalf("during the burst: %d running, %d queued", r, q)
	}
	grew := int64(heapAfterGC()) - int64(heapBefore)
	t.Logf("heap growth over the burst: %d bytes", grew)
	if grew > heapBound {
		t.Fatalf("the heap grew by %d bytes over a burst of %d shed calls, more than %d", grew, burst, heapBound)
	}

	// Release: the held and the queued calls finish, within their
	// deadlines.
	close(h.release)
	for range running + queued {
		res := <-admitted
		if res.err != nil || res.late {
			t.Fatalf("an admitted call: %v (late: %v)", res.err, res.late)
		}
	}
	// Recovered: calls run again, nothing is left waiting, and the
	// limits were never exceeded.
	if _, err := f.perms.CheckPermission(ctx, req); err != nil {
		t.Fatalf("after the burst: %v", err)
	}
	lim.mu.Lock()
	peakR, peakQ := lim.peakRunning, lim.peakQueue
	lim.mu.Unlock()
	if r, q := lim.state(); r != 0 || q != 0 || peakR > running || peakQ > queued {
		t.Fatalf("after: %d running, %d queued; peaks %d and %d", r, q, peakR, peakQ)
	}
	if got := shedCount(t, f, "PermissionsService/CheckPermission", "queue_full"); got != burst {
		t.Fatalf("shed_total{why=queue_full} = %v, want %d", got, burst)
	}
	if got := shedCount(t, f, "PermissionsService/CheckPermission", "deadline"); got != 1 {
		t.Fatalf("shed_total{why=deadline} = %v, want 1", got)
	}
}

// heapAfterGC returns the live heap after a collection.
func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestOverloadStreams: with one stream slot, a second lookup (or export)
// is shed at once while the first runs; health checks and the limit on
// unary calls are unaffected.
func TestOverloadStreams(t *testing.T) {
	const lookup = "/pemba.v1.PermissionsService/LookupResources"
	h := newHold(lookup)
	f := newFixture(t, Config{Overload: Overload{MaxStreams: 1}, GRPCOptions: h.options()})
	f.writeSchema()
	f.write("doc:1#viewer@user:anne")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	lr := &pb.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "anne", "")}
	first, err := f.perms.LookupResources(ctx, lr)
	if err != nil {
		t.Fatal(err)
	}
	<-h.entered
	second, err := f.perms.LookupResources(ctx, lr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Recv(); err == nil {
		t.Fatal("a second lookup ran beside the first")
	} else {
		wantShed(t, err)
	}
	export, err := f.perms.ExportRelationships(ctx, &pb.ExportRelationshipsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.Recv(); err == nil {
		t.Fatal("an export ran beside the lookup")
	} else {
		wantShed(t, err)
	}
	// Unary calls are not streams.
	if _, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: "view", Subject: sub("user", "anne", "")}); err != nil {
		t.Fatal(err)
	}
	close(h.release)
	if r, err := first.Recv(); err != nil || r.GetResourceObjectId() != "1" {
		t.Fatalf("the first lookup: %v %v", r, err)
	}
	for {
		if _, err := first.Recv(); err != nil {
			break
		}
	}
	// The slot is free again.
	again, err := f.perms.LookupResources(ctx, lr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Recv(); err != nil {
		t.Fatalf("a lookup after the first ended: %v", err)
	}
	if got := shedCount(t, f, "PermissionsService/ExportRelationships", "streams"); got != 1 {
		t.Fatalf("shed_total for the export = %v", got)
	}
}

// TestLimiterFIFO: waiters get slots in arrival order, a waiter whose
// context ends leaves the queue (shed, "waited"), and a slot handed to a
// waiter that gave up at the same moment is passed on, not lost.
func TestLimiterFIFO(t *testing.T) {
	l := newLimiter(1, 10)
	ctx := t.Context()
	release, err := l.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	queuedAt := make(chan int, 10)
	l.onQueued = func(n int) { queuedAt <- n }
	order := make(chan int, 3)
	releases := make(chan func(), 3)
	gone, giveUp := context.WithCancel(ctx)
	for i := range 4 {
		c := ctx
		if i == 1 {
			c = gone // the second waiter gives up
		}
		go func() {
			r, err := l.acquire(c)
			if err != nil {
				var oe *OverloadError
				if !errors.As(err, &oe) || oe.why != "waited" {
					t.Errorf("waiter %d: %v", i, err)
				}
				order <- -1
				return
			}
			order <- i
			releases <- r
		}()
		<-queuedAt
	}
	giveUp()
	if got := <-order; got != -1 {
		t.Fatalf("first out: %d, want the one that gave up", got)
	}
	release()
	for _, want := range []int{0, 2, 3} {
		if got := <-order; got != want {
			t.Fatalf("slot went to %d, want %d", got, want)
		}
		r := <-releases
		r()
		r() // releasing twice is harmless
	}
	if r, q := l.state(); r != 0 || q != 0 {
		t.Fatalf("%d running, %d queued", r, q)
	}
	// A slot given as the waiter's context ends is passed on.
	release, _ = l.acquire(ctx)
	c2, cancel2 := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := l.acquire(c2); done <- err }()
	<-queuedAt
	l.mu.Lock()
	cancel2() // the waiter sees its context end while holding a given slot
	l.mu.Unlock()
	release()
	err = <-done
	if r, q := l.state(); (err == nil && r != 1) || (err != nil && (r != 0 || q != 0)) {
		t.Fatalf("after a racing give-up: err %v, %d running, %d queued", err, r, q)
	}
}

func TestUnlimitedMethods(t *testing.T) {
	for m, want := range map[string]bool{
		"/grpc.health.v1.Health/Check":                              true,
		"/grpc.health.v1.Health/Watch":                              true,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": true,
		"/pemba.v1.DispatchService/DispatchCheck":                   true,
		"/pemba.v1.WatchService/Watch":                              true,
		"/authzed.api.v1.WatchService/Watch":                        true,
		checkMethod:                                                 false,
		"/pemba.v1.PermissionsService/LookupResources":              false,
		"/pemba.v1.PermissionsService/ExportRelationships":          false,
	} {
		if got := unlimited(m); got != want {
			t.Errorf("unlimited(%s) = %v", m, got)
		}
	}
}

// shedCount reads pemba_grpc_shed_total{method, why} from the fixture's
// registry, as Prometheus would scrape it.
func shedCount(t *testing.T, f *fixture, method, why string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pemba_grpc_shed_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == method && labels["why"] == why {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
