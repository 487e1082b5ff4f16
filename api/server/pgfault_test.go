package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/store/pgstore"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// faultSchema: user u<j> can view doc d<i> exactly when i%groups ==
// j%groups (through group g<i%groups>), or when j == i (owner).
const faultSchema = `definition user {}

definition group {
  relation member: user
}

definition doc {
  relation owner: user
  relation viewer: group#member
  permission view = viewer + owner
}
`

const (
	faultDocs   = 40
	faultUsers  = 20
	faultGroups = 4
)

// faultData is the relationships of faultSchema's known answers.
func faultData() []string {
	var rels []string
	for i := range faultDocs {
		rels = append(rels, fmt.Sprintf("doc:d%d#viewer@group:g%d#member", i, i%faultGroups),
			fmt.Sprintf("doc:d%d#owner@user:u%d", i, i))
	}
	for j := range faultUsers {
		rels = append(rels, fmt.Sprintf("group:g%d#member@user:u%d", j%faultGroups, j))
	}
	return rels
}

// canView is the expected answer of check doc:d<i>#view@user:u<j>.
func canView(i, j int) bool { return i%faultGroups == j%faultGroups || i == j }

// faultReason returns the ErrorInfo reason of a status error.
func faultReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// faultLog collects what the load saw, for the assertions at the end.
type faultLog struct {
	mu         sync.Mutex
	errs       []string        // unexpected errors and wrong answers
	acked      map[string]bool // writes acknowledged
	notWritten map[string]bool // writes refused with UNAVAILABLE: nothing written
	unknown    map[string]bool // writes with COMMIT_OUTCOME_UNKNOWN
	counts     map[string]int  // outcome counts, for the log
}

func (l *faultLog) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

func (l *faultLog) count(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[what]++
}

func (l *faultLog) write(set map[string]bool, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	set[key] = true
}

// TestDatabaseRestartUnderLoad restarts the PostgreSQL cluster under a
// gRPC server while clients check and write. No answer may be wrong; a
// client without retries sees only UNAVAILABLE (and, for writes,
// COMMIT_OUTCOME_UNKNOWN); a retrying client completes every read; every
// acknowledged write is there afterwards and no write refused with
// UNAVAILABLE is.
func TestDatabaseRestartUnderLoad(t *testing.T) {
	server, restartCmd := pgtest.RestartableServer(t)
	if testing.Short() {
		t.Skip("restarts a database")
	}
	ctx := context.Background()
	uri, _ := pgtest.NewDatabaseOn(t, server)
	if err := pgstore.Migrate(ctx, uri); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := pgstore.Open(ctx, uri, pgstore.Options{GCInterval: -1, MaxConns: 8, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// The fixture closes the store.
	f := newFixtureOn(t, st, Config{Logger: quiet})
	newClient := func(retry client.Retry) *client.Client {
		c, err := client.New(f.addr, client.Options{Insecure: true, Retry: retry})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	raw := newClient(client.Retry{MaxAttempts: 1})
	// Enough tries to outlast a restart (the default backoff caps at 2 s).
	retrying := newClient(client.Retry{MaxAttempts: 30})

	if _, err := raw.Schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: faultSchema}); err != nil {
		t.Fatal(err)
	}
	var ups []client.Update
	for _, s := range faultData() {
		r, err := tuple.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, client.Touch(r))
	}
	if _, err := raw.Write(ctx, ups...); err != nil {
		t.Fatal(err)
	}

	log := &faultLog{acked: map[string]bool{}, notWritten: map[string]bool{}, unknown: map[string]bool{}, counts: map[string]int{}}
	const restarts = 3
	var (
		stop    = make(chan struct{}) // closed when the load should end
		warm    sync.WaitGroup        // every worker succeeded once
		settled sync.WaitGroup        // every worker succeeded after the last restart
		workers sync.WaitGroup
		after   = make(chan struct{}) // closed after the last restart
	)
	// worker runs op until stop, reporting its first success and its
	// first success after the restarts.
	worker := func(op func(n int) bool) {
		warm.Add(1)
		settled.Add(1)
		workers.Add(1)
		go func() {
			defer workers.Done()
			warmed, done := false, false
			for n := 0; ; n++ {
				select {
				case <-stop:
					if !warmed {
						warm.Done()
					}
					if !done {
						settled.Done()
					}
					return
				default:
				}
				restarted := false
				select {
				case <-after:
					restarted = true
				default:
				}
				if !op(n) {
					continue
				}
				if !warmed {
					warmed = true
					warm.Done()
				}
				if restarted && !done {
					done = true
					settled.Done()
				}
			}
		}()
	}
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Minute) }

	check := func(name string, c *client.Client, retries bool) func(int) bool {
		return func(n int) bool {
			i, j := (n*7+len(name))%faultDocs, (n*3)%faultUsers
			cctx, cancel := call()
			defer cancel()
			resp, err := c.Check(cctx, client.FullyConsistent(), fmt.Sprintf("doc:d%d", i), "view", fmt.Sprintf("user:u%d", j), nil)
			switch {
			case err == nil:
				want := pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION
				if canView(i, j) {
					want = pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION
				}
				if got := resp.GetPermissionship(); got != want {
					log.fail("%s: check doc:d%d#view@user:u%d = %v, want %v", name, i, j, got, want)
				}
				log.count(name + " ok")
				return true
			case retries:
				log.fail("%s: a retried check failed: %v", name, err)
			case status.Code(err) != codes.Unavailable:
				log.fail("%s: check failed with %v, want UNAVAILABLE", name, err)
			default:
				log.count(name + " unavailable")
			}
			return false
		}
	}
	// bulk checks several pairs in one call: a database failure must fail
	// the call (so that it is retried), never come back as item errors.
	bulk := func(name string, c *client.Client) func(int) bool {
		return func(n int) bool {
			req := &pb.CheckBulkPermissionsRequest{Consistency: client.FullyConsistent()}
			var pairs [][2]int
			for k := range 64 { // long enough to be cut by a restart midway
				i, j := (n*5+k)%faultDocs, (n+k*3)%faultUsers
				pairs = append(pairs, [2]int{i, j})
				req.Items = append(req.Items, &pb.CheckBulkPermissionsRequestItem{
					Resource:   &pb.ObjectReference{ObjectType: "doc", ObjectId: fmt.Sprintf("d%d", i)},
					Permission: "view",
					Subject:    &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: fmt.Sprintf("u%d", j)}},
				})
			}
			cctx, cancel := call()
			defer cancel()
			resp, err := c.Permissions.CheckBulkPermissions(cctx, req)
			if err != nil {
				log.fail("%s: a retried bulk check failed: %v", name, err)
				return false
			}
			for k, p := range resp.GetPairs() {
				want := pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION
				if canView(pairs[k][0], pairs[k][1]) {
					want = pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION
				}
				if e := p.GetError(); e != nil {
					log.fail("%s: item %d failed inside a successful call: %v", name, k, e)
					return false
				}
				if got := p.GetItem().GetPermissionship(); got != want {
					log.fail("%s: bulk doc:d%d#view@user:u%d = %v, want %v", name, pairs[k][0], pairs[k][1], got, want)
				}
			}
			log.count(name + " ok")
			return true
		}
	}
	// read lists a group's members through a server stream.
	read := func(name string, c *client.Client) func(int) bool {
		return func(n int) bool {
			g := n % faultGroups
			cctx, cancel := call()
			defer cancel()
			got := 0
			for r, err := range c.Read(cctx, client.FullyConsistent(), tuple.Filter{ResourceType: "group", ResourceID: fmt.Sprint("g", g)}) {
				if err != nil {
					log.fail("%s: a retried read failed after %d relationships: %v", name, got, err)
					return false
				}
				if j := strings.TrimPrefix(r.Subject.ID, "u"); r.Subject.Type != "user" || j == r.Subject.ID {
					log.fail("%s: read %s", name, r.Key())
				}
				got++
			}
			if want := faultUsers / faultGroups; got != want {
				log.fail("%s: read %d members of group:g%d, want %d", name, got, g, want)
			}
			log.count(name + " ok")
			return true
		}
	}
	write := func(name string, c *client.Client, retries bool) func(int) bool {
		return func(n int) bool {
			key := fmt.Sprintf("doc:%s-%d#owner@user:u0", name, n)
			r, err := tuple.Parse(key)
			if err != nil {
				log.fail("%v", err)
				return false
			}
			cctx, cancel := call()
			defer cancel()
			_, err = c.Write(cctx, client.Touch(r))
			switch {
			case err == nil:
				log.write(log.acked, key)
				log.count(name + " ok")
				return true
			case client.CommitOutcomeUnknown(err):
				log.write(log.unknown, key)
				log.count(name + " commit unknown")
			case !retries && status.Code(err) == codes.Unavailable && faultReason(err) == ReasonUnavailable:
				log.write(log.notWritten, key)
				log.count(name + " unavailable")
			default:
				log.fail("%s: write %s failed with %v (reason %q)", name, key, err, faultReason(err))
			}
			return false
		}
	}
	worker(check("raw-check-1", raw, false))
	worker(check("raw-check-2", raw, false))
	worker(check("retry-check-1", retrying, true))
	worker(check("retry-check-2", retrying, true))
	worker(read("retry-read", retrying))
	worker(bulk("retry-bulk", retrying))
	worker(write("raw-write", raw, false))
	worker(write("retry-write", retrying, true))

	warm.Wait()
	// The restarted server inherits the command's output: a file, not a
	// pipe, or Wait would wait for the server to exit.
	out, err := os.Create(filepath.Join(t.TempDir(), "restart.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for i := range restarts {
		cmd := exec.CommandContext(ctx, "sh", "-c", restartCmd)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Dir = os.TempDir() // the server's user may not be allowed into the clone
		if err := cmd.Run(); err != nil {
			close(stop)
			workers.Wait()
			text, _ := os.ReadFile(out.Name())
			t.Fatalf("restart %d: %v\n%s", i+1, err, text)
		}
	}
	close(after)
	// A liveness guard, not a timing assertion: a worker that never
	// recovers would otherwise hang the test.
	recovered := make(chan struct{})
	go func() { settled.Wait(); close(recovered) }()
	select {
	case <-recovered:
	case <-time.After(2 * time.Minute):
		log.fail("not every worker succeeded after the restarts")
	}
	close(stop)
	workers.Wait()

	// Every acknowledged write is there; none refused with UNAVAILABLE
	// is; nothing else appeared.
	present := map[string]bool{}
	cctx, cancel := call()
	defer cancel()
	for r, err := range retrying.Read(cctx, client.FullyConsistent(), tuple.Filter{ResourceType: "doc", Relation: "owner"}) {
		if err != nil {
			t.Fatalf("final read: %v", err)
		}
		if strings.Contains(r.Resource.ID, "-") {
			present[r.Key().String()] = true
		}
	}
	for k := range log.acked {
		if !present[k] {
			log.fail("acknowledged write %s is missing", k)
		}
	}
	for k := range log.notWritten {
		if present[k] {
			log.fail("write %s was refused with UNAVAILABLE but is present", k)
		}
	}
	for k := range present {
		if !log.acked[k] && !log.unknown[k] {
			log.fail("write %s is present but was never acknowledged", k)
		}
	}
	t.Logf("outcomes over %d restarts: %v", restarts, log.counts)
	for _, e := range log.errs {
		t.Error(e)
	}
}
