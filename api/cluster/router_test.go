package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pemba-authz/pemba/api/cluster"
	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/engine/validation"
)

// node is one member of an in-process cluster: an engine with a router,
// served over gRPC on a loopback port.
type node struct {
	addr   string
	eng    *engine.Engine
	router *cluster.Router
	srv    *server.Server
}

// startCluster starts n engines over one shared store (as n processes on
// one PostgreSQL database would be), each routing to the others over
// real gRPC connections, and returns them with a single engine without
// routing over the same store, loaded with the enterprise example.
func startCluster(t testing.TB, n int) ([]*node, *engine.Engine, *validation.File, string) {
	t.Helper()
	ctx := context.Background()
	f, err := validation.Load("../../examples/enterprise/enterprise.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	single, err := engine.Open(ctx, st, engine.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := single.WriteSchema(ctx, "test", f.Schema); err != nil {
		t.Fatal(err)
	}
	zk, _, err := single.Import(ctx, "test", func(yield func(tuple.Relationship, error) bool) {
		for _, r := range f.Relationships {
			if !yield(r.Relationship, nil) {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var lis []net.Listener
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis = append(lis, l)
		addrs = append(addrs, l.Addr().String())
	}
	var nodes []*node
	for i := range n {
		r, err := cluster.New(cluster.Config{
			Self: addrs[i], Peers: addrs, Fingerprint: single.Fingerprint(),
			DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
			// Generous: the race detector and a loaded CI machine are
			// slow, and a timeout would only mean a local evaluation.
			Timeout: 10 * time.Second, DownFor: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.Open(ctx, st, engine.Options{Now: clock, Router: r})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(e, server.Config{Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(lis[i])
		nd := &node{addr: addrs[i], eng: e, router: r, srv: srv}
		t.Cleanup(func() { srv.Stop(); r.Close() })
		nodes = append(nodes, nd)
	}
	return nodes, single, f, zk
}

// checkAll runs every assertion of f on each node of on, at revision zk,
// and compares with single and with the file's expectation.
func checkAll(t *testing.T, on []*node, single *engine.Engine, f *validation.File, zk string) {
	t.Helper()
	ctx := context.Background()
	want := map[validation.AssertionKind]eval.Permissionship{
		validation.AssertTrue: eval.HasPermission, validation.AssertFalse: eval.NoPermission, validation.AssertCaveated: eval.ConditionalPermission,
	}
	for _, a := range f.Assertions {
		req := engine.CheckRequest{Consistency: engine.AtExactSnapshot(zk), CheckRequest: engine.CheckQuery{Resource: a.Resource, Permission: a.Permission, Subject: a.Subject}, Context: a.Context}
		ref, err := single.Check(ctx, req)
		if err != nil {
			t.Fatalf("%s: single node: %v", a.Text, err)
		}
		if ref.Permissionship != want[a.Kind] {
			t.Fatalf("%s: single node says %v, the file %v", a.Text, ref.Permissionship, a.Kind)
		}
		for _, nd := range on {
			got, err := nd.eng.Check(ctx, req)
			if err != nil || got.Permissionship != ref.Permissionship || strings.Join(got.MissingContext, ",") != strings.Join(ref.MissingContext, ",") {
				t.Errorf("%s on %s: %v %v (err %v), single node %v %v", a.Text, nd.addr, got.Permissionship, got.MissingContext, err, ref.Permissionship, ref.MissingContext)
			}
		}
	}
}

func outcome(nodes []*node, peer, what string) float64 {
	var sum float64
	for _, nd := range nodes {
		var m dto.Metric
		if err := nd.router.Collector().(*prometheus.CounterVec).WithLabelValues(peer, what).Write(&m); err != nil {
			panic(err)
		}
		sum += m.GetCounter().GetValue()
	}
	return sum
}

func TestClusterAgreesWithOneNodeAndSurvivesAPeer(t *testing.T) {
	nodes, single, f, zk := startCluster(t, 3)
	checkAll(t, nodes, single, f, zk)
	for _, nd := range nodes {
		if got := outcome(nodes, nd.addr, "ok"); got == 0 {
			t.Errorf("no subproblem was answered by %s", nd.addr)
		}
	}
	// Each node caches only what it owns: the caches together hold about
	// what one node would, not three times as much.
	var entries int64
	for _, nd := range nodes {
		entries += nd.eng.Stats().Cache.Entries
	}
	if entries == 0 {
		t.Error("no node cached anything")
	}

	// A peer goes away: its subproblems are evaluated by the others and
	// no check fails.
	dead := nodes[2]
	dead.srv.Stop()
	checkAll(t, nodes[:2], single, f, zk)
	if outcome(nodes[:2], dead.addr, "failed") == 0 {
		t.Errorf("no dispatch to the stopped node %s failed over", dead.addr)
	}
	if outcome(nodes[:2], dead.addr, "skipped") == 0 {
		t.Errorf("the stopped node %s was never skipped", dead.addr)
	}
}

// BenchmarkDispatch measures a warm check on a node that does not own the
// permission (one DispatchCheck round trip to the owner, answered from
// its cache) against the same check on the owner (answered from its own
// cache without a round trip).
func BenchmarkDispatch(b *testing.B) {
	nodes, _, _, zk := startCluster(b, 2)
	ctx := context.Background()
	req := engine.CheckRequest{Consistency: engine.AtExactSnapshot(zk), CheckRequest: engine.CheckQuery{
		Resource: tuple.ObjectRef{Type: "employee", ID: "li"}, Permission: "can_message",
		Subject: tuple.SubjectRef{Type: "employee", ID: "zhao"}}}
	owner := nodes[0].router.Owner(req.Resource.Type, req.Resource.ID, req.Permission)
	var local, remote *node
	for _, nd := range nodes {
		if nd.addr == owner {
			local = nd
		} else {
			remote = nd
		}
	}
	for _, c := range []struct {
		name string
		nd   *node
	}{{"on-owner", local}, {"via-peer", remote}} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := c.nd.eng.Check(ctx, req); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := c.nd.eng.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestClusterCachesDistinctSlices: checks sent to one node leave the
// answers cached across all three, each on its owner, so the cluster holds
// about what one node would (plain relations, read where needed, are the
// only overlap) instead of a copy per node.
func TestClusterCachesDistinctSlices(t *testing.T) {
	nodes, single, f, zk := startCluster(t, 3)
	ctx := context.Background()
	for _, a := range f.Assertions {
		req := engine.CheckRequest{Consistency: engine.AtExactSnapshot(zk), CheckRequest: engine.CheckQuery{Resource: a.Resource, Permission: a.Permission, Subject: a.Subject}, Context: a.Context}
		if _, err := single.Check(ctx, req); err != nil {
			t.Fatal(err)
		}
		if _, err := nodes[0].eng.Check(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	var sum int64
	for _, nd := range nodes {
		n := nd.eng.Stats().Cache.Entries
		if n == 0 {
			t.Errorf("node %s caches nothing: it owns no slice", nd.addr)
		}
		sum += n
	}
	one := single.Stats().Cache.Entries
	t.Logf("cache entries: cluster %d, one node %d", sum, one)
	if sum > one*5/4 {
		t.Errorf("the cluster caches %d entries for what one node caches in %d: slices overlap", sum, one)
	}
}

// TestClusterMaxDepth: a check whose path runs past the depth limit fails
// on every node with the error of a single node, naming the whole path
// though its subproblems were owned by several nodes, and no peer is taken
// for down because it answered with that error.
func TestClusterMaxDepth(t *testing.T) {
	nodes, single, _, _ := startCluster(t, 3)
	ctx := context.Background()
	// department:deep70#manage, …, deep0#manage, deep0#scoped_admin:
	// 72 relations.
	zk, _, err := single.Import(ctx, "test", func(yield func(tuple.Relationship, error) bool) {
		rels := []string{"department:deep0#scoped_admin@employee:boss"}
		for i := 1; i <= 70; i++ {
			rels = append(rels, fmt.Sprintf("department:deep%d#parent@department:deep%d", i, i-1))
		}
		for _, s := range rels {
			if !yield(tuple.Parse(s)) {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	req := engine.CheckRequest{Consistency: engine.AtExactSnapshot(zk), CheckRequest: engine.CheckQuery{Resource: tuple.ObjectRef{Type: "department", ID: "deep70"},
		Permission: "manage", Subject: tuple.SubjectRef{Type: "employee", ID: "boss"}}}
	_, err = single.Check(ctx, req)
	var want *eval.MaxDepthError
	if !errors.As(err, &want) {
		t.Fatalf("single node: err = %v, want a *MaxDepthError", err)
	}
	for _, nd := range nodes {
		_, err := nd.eng.Check(ctx, req)
		var got *eval.MaxDepthError
		if !errors.As(err, &got) || !slices.Equal(got.Path, want.Path) || got.Cycle != want.Cycle {
			t.Errorf("on %s: err = %v, want %v", nd.addr, err, want)
		}
	}
	for _, nd := range nodes {
		if n := outcome(nodes, nd.addr, "failed"); n != 0 {
			t.Errorf("%v dispatches to %s counted as failed", n, nd.addr)
		}
	}
}
