package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/store/pgstore"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// failoverRoundsEnv sets TestPostgresFailover's number of failovers
// (default 3).
const failoverRoundsEnv = "PEMBA_TEST_FAILOVER_ROUNDS"

// ackedWrite is a write the server acknowledged, with its zookie.
type ackedWrite struct {
	key    string
	zookie *pb.Zookie
}

// failoverLog collects what the load saw during TestPostgresFailover.
type failoverLog struct {
	mu         sync.Mutex
	changed    *sync.Cond // broadcast on every acknowledged write
	errs       []string
	acked      []ackedWrite
	ackTimes   []time.Time // when each of acked was acknowledged
	notWritten map[string]bool
	unknown    map[string]bool
	counts     map[string]int
	errDetails []string // the messages of COMMIT_OUTCOME_UNKNOWN
}

func (l *failoverLog) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

func (l *failoverLog) count(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[what]++
}

// waitAcks waits until n writes have been acknowledged in all, or the
// liveness guard (a minute) runs out; it reports whether they were.
func (l *failoverLog) waitAcks(n int) bool {
	timeout := time.AfterFunc(time.Minute, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.changed.Broadcast()
	})
	defer timeout.Stop()
	deadline := time.Now().Add(time.Minute)
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.acked) < n {
		if time.Now().After(deadline) {
			return false
		}
		l.changed.Wait()
	}
	return true
}

// TestPostgresFailover fails a synchronously replicated PostgreSQL
// primary over to its standby, repeatedly, under a gRPC server whose
// datastore URI names both (target_session_attrs=read-write), while
// clients write and read at the zookies of earlier writes. Per round:
// kill the primary (pg_ctl stop -m immediate), promote the standby
// (pg_ctl promote), let it commit without a synchronous standby until
// the old primary is rebuilt as its standby (pg_basebackup -R), then
// make that standby synchronous again. Demanded: no acknowledged write
// is lost; a write refused with UNAVAILABLE is absent; writes resume
// (the time they take is measured and logged, not asserted); a check at
// an acknowledged write's zookie either answers correctly or fails with
// UNAVAILABLE; the only write errors are UNAVAILABLE and
// COMMIT_OUTCOME_UNKNOWN. The figures go to docs/storage.md.
func TestPostgresFailover(t *testing.T) {
	bin := pgtest.Binaries(t)
	if testing.Short() {
		t.Skip("starts and fails over PostgreSQL clusters")
	}
	rounds := 3
	if s := os.Getenv(failoverRoundsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", failoverRoundsEnv, s)
		}
		rounds = n
	}
	const (
		perRound      = 150 // writes acknowledged before each failover
		afterFailover = 30  // and after it, before the old primary returns
	)
	ctx := context.Background()
	root := pgtest.ClusterRoot(t)
	a := pgtest.InitCluster(t, bin, root, "a", 5432)
	pgtest.Exec(t, a.URI("postgres"), "CREATE DATABASE pemba")
	b := pgtest.StandbyOf(t, a, "b", 5433)
	a.SetSynchronous(t, true)
	a.WaitSynchronous(t)
	uri := pgtest.MultiHostURI("pemba", a, b)
	if err := pgstore.Migrate(ctx, uri); err != nil {
		t.Fatal(err)
	}
	// Two servers on the database, as a cluster of Pemba servers would
	// be: while one resolves a commit whose answer was lost, the other
	// keeps writing (and using transaction ids).
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var clients []*client.Client
	for range 2 {
		st, err := pgstore.Open(ctx, uri, pgstore.Options{GCInterval: -1, MaxConns: 8, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		f := newFixtureOn(t, st, Config{Logger: quiet}) // closes the store
		c, err := client.New(f.addr, client.Options{Insecure: true, Retry: client.Retry{MaxAttempts: 1}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
	}
	c := clients[0]
	if _, err := c.Schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: faultSchema}); err != nil {
		t.Fatal(err)
	}

	log := &failoverLog{notWritten: map[string]bool{}, unknown: map[string]bool{}, counts: map[string]int{}}
	log.changed = sync.NewCond(&log.mu)
	stop := make(chan struct{})
	var workers sync.WaitGroup
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 30*time.Second) }
	// pause paces a worker after a failure (the database is down), so
	// that it does not spin on refused connections.
	pause := func() {
		select {
		case <-stop:
		case <-time.After(20 * time.Millisecond):
		}
	}
	writer := func(w int) {
		defer workers.Done()
		c := clients[w%len(clients)]
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("doc:w%d-%d#owner@user:u0", w, n)
			r, err := tuple.Parse(key)
			if err != nil {
				log.fail("%v", err)
				return
			}
			cctx, cancel := call()
			z, err := c.Write(cctx, client.Touch(r))
			cancel()
			switch {
			case err == nil:
				log.mu.Lock()
				log.acked = append(log.acked, ackedWrite{key, z})
				log.ackTimes = append(log.ackTimes, time.Now())
				log.counts["write ok"]++
				log.changed.Broadcast()
				log.mu.Unlock()
				continue
			case client.CommitOutcomeUnknown(err):
				log.mu.Lock()
				log.errDetails = append(log.errDetails, err.Error())
				log.unknown[key] = true
				log.counts["write COMMIT_OUTCOME_UNKNOWN"]++
				log.mu.Unlock()
			case status.Code(err) == codes.Unavailable && faultReason(err) == ReasonUnavailable:
				log.mu.Lock()
				log.notWritten[key] = true
				log.counts["write UNAVAILABLE"]++
				log.mu.Unlock()
			default:
				log.fail("write %s failed with %v (reason %q), want UNAVAILABLE or COMMIT_OUTCOME_UNKNOWN", key, err, faultReason(err))
			}
			pause()
		}
	}
	// reader checks an earlier acknowledged write at its own zookie,
	// exactly and at-least-as-fresh: the answer must be right, or the
	// call must fail with UNAVAILABLE.
	reader := func(seed uint64) {
		defer workers.Done()
		rng := rand.New(rand.NewPCG(seed, 1))
		c := clients[seed%uint64(len(clients))]
		for {
			select {
			case <-stop:
				return
			default:
			}
			log.mu.Lock()
			if len(log.acked) == 0 {
				log.changed.Wait()
				log.mu.Unlock()
				continue
			}
			w := log.acked[rng.IntN(len(log.acked))]
			log.mu.Unlock()
			r, _ := tuple.Parse(w.key)
			for _, mode := range []struct {
				name string
				cons *pb.Consistency
			}{{"exact", client.AtExactSnapshot(w.zookie)}, {"fresh", client.AtLeastAsFresh(w.zookie)}} {
				cctx, cancel := call()
				resp, err := c.Check(cctx, mode.cons, r.Resource.String(), "view", r.Subject.String(), nil)
				cancel()
				switch {
				case err == nil && resp.GetPermissionship() == pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION:
					log.count("check " + mode.name + " ok")
				case err == nil:
					log.fail("check %s at its own zookie (%s) = %v, want HAS_PERMISSION", w.key, mode.name, resp.GetPermissionship())
				case status.Code(err) == codes.Unavailable:
					log.count("check " + mode.name + " UNAVAILABLE")
					pause()
				default:
					log.fail("check %s at its own zookie (%s) failed with %v, want an answer or UNAVAILABLE", w.key, mode.name, err)
				}
			}
		}
	}
	for w := range 4 {
		workers.Add(1)
		go writer(w)
	}
	for i := range 2 {
		workers.Add(1)
		go reader(uint64(i))
	}
	stopAll := func() {
		close(stop)
		log.mu.Lock()
		log.changed.Broadcast()
		log.mu.Unlock()
		workers.Wait()
	}

	primary, standby := a, b
	var resumes []time.Duration
	for round := range rounds {
		log.mu.Lock()
		target := len(log.acked) + perRound
		log.mu.Unlock()
		if !log.waitAcks(target) {
			stopAll()
			t.Fatalf("round %d: writes did not reach %d acknowledged", round+1, target)
		}
		start := time.Now()
		if err := primary.Stop("immediate"); err != nil {
			stopAll()
			t.Fatal(err)
		}
		killed := time.Now()
		standby.Promote(t)
		promoted := time.Now()
		// Two clusters: the new primary commits alone until the old one
		// is back as its standby.
		standby.SetSynchronous(t, false)
		log.mu.Lock()
		target = len(log.acked) + afterFailover
		log.mu.Unlock()
		if !log.waitAcks(target) {
			stopAll()
			t.Fatalf("round %d: writes did not resume after the failover", round+1)
		}
		log.mu.Lock()
		i, _ := slices.BinarySearchFunc(log.ackTimes, killed, func(a, b time.Time) int { return a.Compare(b) })
		if i < len(log.ackTimes) {
			resumes = append(resumes, log.ackTimes[i].Sub(killed))
		}
		log.mu.Unlock()
		resumed := time.Now()
		primary.Rebuild(t, standby)
		standby.SetSynchronous(t, true)
		standby.WaitSynchronous(t)
		t.Logf("round %d: stop %v, promote %v, %d writes %v, rebuild and sync %v", round+1, killed.Sub(start).Round(time.Millisecond),
			promoted.Sub(killed).Round(time.Millisecond), afterFailover, resumed.Sub(promoted).Round(time.Millisecond), time.Since(resumed).Round(time.Millisecond))
		primary, standby = standby, primary
	}
	// One more batch, so that the last rebuilt standby is synchronous
	// for writes too before the load ends.
	log.mu.Lock()
	target := len(log.acked) + afterFailover
	log.mu.Unlock()
	if !log.waitAcks(target) {
		stopAll()
		t.Fatal("writes stopped after the last round")
	}
	stopAll()

	// Every acknowledged write is there, each at its own zookie too; no
	// write refused with UNAVAILABLE is; nothing unacknowledged appeared
	// but writes of unknown outcome.
	present := map[string]bool{}
	cctx, cancel := call()
	defer cancel()
	for r, err := range c.Read(cctx, client.FullyConsistent(), tuple.Filter{ResourceType: "doc", Relation: "owner"}) {
		if err != nil {
			t.Fatalf("final read: %v", err)
		}
		present[r.Key().String()] = true
	}
	lost := 0
	for _, w := range log.acked {
		if !present[w.key] {
			lost++
			log.fail("acknowledged write %s (zookie %s) is missing after the failovers", w.key, w.zookie.GetToken())
		}
	}
	for k := range log.notWritten {
		if present[k] {
			log.fail("write %s was refused with UNAVAILABLE but is present", k)
		}
	}
	acked := map[string]bool{}
	for _, w := range log.acked {
		acked[w.key] = true
	}
	unknownPresent := 0
	for k := range present {
		switch {
		case acked[k]:
		case log.unknown[k]:
			unknownPresent++
		default:
			log.fail("write %s is present but was never acknowledged", k)
		}
	}
	for _, w := range log.acked {
		r, _ := tuple.Parse(w.key)
		resp, err := c.Check(cctx, client.AtExactSnapshot(w.zookie), r.Resource.String(), "view", r.Subject.String(), nil)
		if err != nil || resp.GetPermissionship() != pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION {
			log.fail("after the failovers, check %s at its zookie = %v, %v; want HAS_PERMISSION", w.key, resp.GetPermissionship(), err)
		}
	}
	var times []string
	for _, d := range resumes {
		times = append(times, d.Round(time.Millisecond).String())
	}
	t.Logf("%d failovers: %d writes acknowledged, lost %d; %d refused with UNAVAILABLE, %d COMMIT_OUTCOME_UNKNOWN (%d of them committed); "+
		"first write acknowledged after the kill: %s; outcomes %v",
		rounds, len(log.acked), lost, len(log.notWritten), len(log.unknown), unknownPresent, strings.Join(times, ", "), log.counts)
	for _, e := range log.errDetails {
		t.Logf("COMMIT_OUTCOME_UNKNOWN: %s", e)
	}
	for _, e := range log.errs {
		t.Error(e)
	}
}
