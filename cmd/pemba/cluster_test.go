package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/pgstore"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
	"github.com/pemba-authz/pemba/engine/validation"
)

// clusterNode is one `pemba serve` process of the cluster test.
type clusterNode struct {
	addr, metrics string
	cmd           *exec.Cmd
	client        *client.Client
}

// freeAddrs returns n loopback addresses that were free a moment ago:
// the nodes must know each other's addresses before any of them starts.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// startNode runs the pemba binary bin as a cluster node until the test
// ends (or kill is called) and waits until it serves.
func startNode(t *testing.T, bin string, args ...string) *clusterNode {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	var stderr bytes.Buffer
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	nd := &clusterNode{cmd: cmd}
	// The log goes to stderr: read the addresses from it, keeping a copy.
	br := bufio.NewReader(io.TeeReader(errPipe, &stderr))
	nd.addr, nd.metrics, err = readAddrs(br)
	if err != nil {
		t.Fatalf("node %q: %v; stderr:\n%s", args, err, stderr.String())
	}
	nd.metrics = "http://" + nd.metrics + "/metrics"
	go io.Copy(io.Discard, br)
	c, err := client.New(nd.addr, client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	nd.client = c
	return nd
}

// dispatched sums pemba_cluster_dispatches_total{outcome=...} of a node's
// metrics page.
func dispatched(t *testing.T, metricsURL, outcome string) float64 {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	re := regexp.MustCompile(`(?m)^pemba_cluster_dispatches_total\{[^}]*outcome="` + outcome + `"[^}]*\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// TestClusterOfThreeNodes starts three `pemba serve` processes on one
// PostgreSQL database, each with the others as dispatch peers. Their
// answers to the enterprise example's assertions agree with the file and
// with a single engine on the same database, subproblems really travel
// between nodes, and a node killed (SIGKILL) under load fails no check
// sent to the others.
func TestClusterOfThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three servers")
	}
	uri, _ := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"datastore", "migrate", "--datastore-uri", uri}, &stdout, &stderr); code != 0 {
		t.Fatalf("migrate: exit %d, stderr %q", code, stderr.String())
	}
	bin := filepath.Join(t.TempDir(), "pemba")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addrs := freeAddrs(t, 3)
	var nodes []*clusterNode
	for _, a := range addrs {
		nodes = append(nodes, startNode(t, bin, "-listen", a, "-datastore", "postgres", "-datastore-uri", uri,
			"-dispatch-peers", strings.Join(addrs, ","), "-metrics-listen", "127.0.0.1:0",
			// A loaded CI machine can be slow; a timeout would only mean
			// a local evaluation, not a wrong answer.
			"-dispatch-timeout", "10s"))
	}

	f, err := validation.Load("../../examples/enterprise/enterprise.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewSchemaServiceClient(dial(t, nodes[0].addr)).WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: f.Schema}); err != nil {
		t.Fatal(err)
	}
	var ups []client.Update
	for _, r := range f.Relationships {
		ups = append(ups, client.Touch(r.Relationship))
	}
	zk, err := nodes[1].client.Write(ctx, ups...)
	if err != nil {
		t.Fatal(err)
	}

	// The single-node reference: an engine of this process on the same
	// database, without routing.
	st, err := pgstore.Open(ctx, uri, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	single, err := engine.Open(ctx, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]pb.Permissionship, len(f.Assertions))
	for i, a := range f.Assertions {
		res, err := single.Check(ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(zk.GetToken()), CheckRequest: engine.CheckQuery{Resource: a.Resource, Permission: a.Permission, Subject: a.Subject}, Context: a.Context})
		if err != nil {
			t.Fatalf("%s: single engine: %v", a.Text, err)
		}
		want[i] = pb.Permissionship(res.Permissionship + 1) // eval's order, shifted past UNSPECIFIED
		if exp := map[validation.AssertionKind]pb.Permissionship{
			validation.AssertTrue:     pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION,
			validation.AssertFalse:    pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION,
			validation.AssertCaveated: pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION,
		}[a.Kind]; want[i] != exp {
			t.Fatalf("%s: single engine says %v, the file %v", a.Text, want[i], exp)
		}
	}
	check := func(nd *clusterNode, i int) error {
		a := f.Assertions[i]
		res, err := nd.client.Check(ctx, client.AtExactSnapshot(zk), a.Resource.String(), a.Permission, a.Subject.String(), a.Context)
		if err != nil {
			return fmt.Errorf("%s on %s: %w", a.Text, nd.addr, err)
		}
		if res.GetPermissionship() != want[i] {
			return fmt.Errorf("%s on %s: %v, single node %v", a.Text, nd.addr, res.GetPermissionship(), want[i])
		}
		return nil
	}
	for _, nd := range nodes {
		for i := range f.Assertions {
			if err := check(nd, i); err != nil {
				t.Error(err)
			}
		}
	}
	var ok float64
	for _, nd := range nodes {
		ok += dispatched(t, nd.metrics, "ok")
	}
	if ok == 0 {
		t.Fatal("no subproblem was dispatched between the nodes")
	}

	// Kill node 2 under load: clients of nodes 0 and 1 keep checking, and
	// none of their checks fails or differs, before or after the kill.
	const before, after = 300, 600
	var done atomic.Int64
	var stopAt atomic.Int64
	stopAt.Store(1 << 62) // set once the node is dead
	halfway := make(chan struct{})
	var once sync.Once
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; done.Load() < stopAt.Load(); i += 4 {
				if err := check(nodes[i%2], i%len(f.Assertions)); err != nil {
					errs <- err
					once.Do(func() { close(halfway) })
					return
				}
				if done.Add(1) >= before {
					once.Do(func() { close(halfway) })
				}
			}
		}()
	}
	<-halfway
	if err := nodes[2].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	nodes[2].cmd.Wait()
	stopAt.Store(done.Load() + after)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var failover float64
	for _, nd := range nodes[:2] {
		failover += dispatched(t, nd.metrics, "failed") + dispatched(t, nd.metrics, "skipped")
	}
	if failover == 0 {
		t.Error("no subproblem owned by the killed node was evaluated elsewhere")
	}
}
