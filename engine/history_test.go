package engine_test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
	"github.com/pemba-authz/pemba/engine/token"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// The history checker records concurrent histories of writes and of
// checks and reads at every consistency mode against an engine on Pebble,
// across crashes (the crash-simulating filesystem cloned while operations
// run, keeping a seeded share of unsynced data) and clean restarts, and
// checks them for linearizability with porcupine against a model of the
// store: a sequence of revisions, each a set of relationships. On top of
// "every answer is the state of one revision that existed during the
// call", the model holds each mode to its promise (docs/consistency.md):
//
//   - fully_consistent answers at the newest revision at some instant of
//     the call;
//   - at_least_as_fresh answers at or after the zookie's revision: it
//     never misses the write the zookie came from, or any before it;
//   - at_exact_snapshot answers at exactly the zookie's revision;
//   - minimize_latency (and at_least_as_fresh) never answer older than the
//     quantum allows: every write acknowledged a quantum or more (on the
//     injected clock) before the call is visible.
//
// A write in flight at a crash has an unknown outcome: the model lets it
// take effect (whole) before the crash or never. Reads in flight at a crash
// are dropped, and zookies they returned are not reused.

var (
	historyRounds = flag.Int("history.rounds", 0, "rounds (crash or restart) of TestHistory (0: 10, or 500 with PEMBA_HISTORY_LONG=1)")
	historySeed   = flag.Uint64("history.seed", 1, "seed of TestHistory")
)

// The relationships of the history: doc:1#viewer@user:uK for K < histUsers;
// a state is a bit mask of those present.
const (
	histUsers   = 4
	histQuantum = 50 * time.Millisecond
	histSchema  = "definition user {}\n\ndefinition doc {\n\trelation viewer: user\n\tpermission view = viewer\n}\n"
)

type histKind uint8

const (
	histWrite histKind = iota
	histCheck          // Check of doc:1#view@user:uK
	histRead           // ReadRelationships of every doc relationship
)

// histInput is one call.
type histInput struct {
	kind   histKind
	user   int  // the relationship written or checked
	del    bool // a write deletes instead of touching
	mode   engine.Mode
	zookie uint64 // revision of the zookie given (at_least_as_fresh, at_exact_snapshot)
	now    int64  // injected clock when the call began, ns
}

// histOutput is its answer.
type histOutput struct {
	unknown bool   // a write in flight at a crash
	rev     uint64 // a write's revision; the revision a read answered at
	allowed bool   // a check's answer
	bits    uint8  // a read's relationships
	ack     int64  // injected clock when a write returned, ns
}

// histState is the model's state: the newest revision, linked to the older
// ones. States are immutable and shared between branches.
type histState struct {
	prev *histState
	rev  uint64
	bits uint8 // relationships at rev
	ack  int64 // when the write of rev was acknowledged (MaxInt64: unknown)
	hash uint64
}

func (s *histState) next(bits uint8, ack int64) *histState {
	h := s.hash*1099511628211 ^ uint64(bits)<<1 ^ uint64(ack)
	return &histState{prev: s, rev: s.rev + 1, bits: bits, ack: ack, hash: h}
}

// at returns the state at rev (rev <= s.rev).
func (s *histState) at(rev uint64) *histState {
	for s.rev > rev {
		s = s.prev
	}
	return s
}

// freshest is the newest revision acknowledged at or before t.
func (s *histState) freshest(t int64) uint64 {
	for ; s.prev != nil; s = s.prev {
		if s.ack <= t {
			return s.rev
		}
	}
	return s.rev
}

func histEqual(a, b *histState) bool {
	for a != b {
		if a == nil || b == nil || a.rev != b.rev || a.bits != b.bits || a.ack != b.ack || a.hash != b.hash {
			return false
		}
		a, b = a.prev, b.prev
	}
	return true
}

// histInit is the state after the schema write: revision head, no
// relationships.
func histInit(head uint64) *histState {
	s := &histState{ack: math.MinInt64}
	for s.rev < head {
		s = s.next(0, math.MinInt64)
	}
	return s
}

// histModel is the model of the store for porcupine, with quantum as the
// staleness bound of minimize_latency.
func histModel(init *histState, quantum time.Duration) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []interface{} { return []interface{}{init} },
		Step: func(state, input, output interface{}) []interface{} {
			s, in, out := state.(*histState), input.(histInput), output.(histOutput)
			if in.kind == histWrite {
				bits := s.bits | 1<<in.user
				if in.del {
					bits = s.bits &^ (1 << in.user)
				}
				if out.unknown {
					return []interface{}{s, s.next(bits, math.MaxInt64)}
				}
				if out.rev != s.rev+1 {
					return nil
				}
				return []interface{}{s.next(bits, out.ack)}
			}
			if out.rev > s.rev {
				return nil // from the future
			}
			switch in.mode {
			case engine.ModeFullyConsistent:
				if out.rev != s.rev {
					return nil
				}
			case engine.ModeAtExactSnapshot:
				if out.rev != in.zookie {
					return nil
				}
			case engine.ModeAtLeastAsFresh, engine.ModeMinimizeLatency:
				if in.mode == engine.ModeAtLeastAsFresh && out.rev < in.zookie {
					return nil
				}
				if out.rev < s.freshest(in.now-int64(quantum)) {
					return nil // staler than the quantum allows
				}
			}
			at := s.at(out.rev)
			switch in.kind {
			case histCheck:
				if out.allowed != (at.bits&(1<<in.user) != 0) {
					return nil
				}
			case histRead:
				if out.bits != at.bits {
					return nil
				}
			}
			return []interface{}{s}
		},
		Equal: func(a, b interface{}) bool { return histEqual(a.(*histState), b.(*histState)) },
		DescribeOperation: func(input, output interface{}) string {
			in, out := input.(histInput), output.(histOutput)
			switch {
			case in.kind == histWrite && out.unknown:
				return fmt.Sprintf("write u%d del=%v -> unknown", in.user, in.del)
			case in.kind == histWrite:
				return fmt.Sprintf("write u%d del=%v -> rev %d ack %d", in.user, in.del, out.rev, out.ack)
			case in.kind == histCheck:
				return fmt.Sprintf("check u%d %s z=%d now=%d -> %v at %d", in.user, in.mode, in.zookie, in.now, out.allowed, out.rev)
			}
			return fmt.Sprintf("read %s z=%d now=%d -> %04b at %d", in.mode, in.zookie, in.now, out.bits, out.rev)
		},
	}
	return nm.ToModel()
}

// TestHistoryCheckerCatches feeds the model hand-made histories, each
// with one wrong answer, so that TestHistory cannot pass vacuously; and
// their correct twins, so that it does not fail spuriously.
func TestHistoryCheckerCatches(t *testing.T) {
	q := int64(histQuantum)
	w := func(call, ret int64, user int, rev uint64, ack int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 0, Call: call, Return: ret, Input: histInput{kind: histWrite, user: user}, Output: histOutput{rev: rev, ack: ack}}
	}
	unknown := func(call, ret int64, user int) porcupine.Operation {
		return porcupine.Operation{ClientId: 0, Call: call, Return: ret, Input: histInput{kind: histWrite, user: user}, Output: histOutput{unknown: true}}
	}
	c := func(call, ret int64, mode engine.Mode, z uint64, now int64, allowed bool, rev uint64) porcupine.Operation {
		return porcupine.Operation{ClientId: 1, Call: call, Return: ret, Input: histInput{kind: histCheck, mode: mode, zookie: z, now: now}, Output: histOutput{allowed: allowed, rev: rev}}
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"at_least_as_fresh sees the write", []porcupine.Operation{w(1, 2, 0, 2, 10), c(3, 4, engine.ModeAtLeastAsFresh, 2, 20, true, 2)}, true},
		{"at_least_as_fresh misses the write", []porcupine.Operation{w(1, 2, 0, 2, 10), c(3, 4, engine.ModeAtLeastAsFresh, 2, 20, false, 1)}, false},
		{"at_least_as_fresh answers at its revision wrongly", []porcupine.Operation{w(1, 2, 0, 2, 10), c(3, 4, engine.ModeAtLeastAsFresh, 2, 20, false, 2)}, false},
		{"at_exact_snapshot is exact", []porcupine.Operation{w(1, 2, 0, 2, 10), c(3, 4, engine.ModeAtExactSnapshot, 1, 20, false, 1)}, true},
		{"at_exact_snapshot answers newer", []porcupine.Operation{w(1, 2, 0, 2, 10), c(3, 4, engine.ModeAtExactSnapshot, 1, 20, true, 2)}, false},
		{"minimize_latency stale within the quantum", []porcupine.Operation{w(1, 2, 0, 2, 10), c(3, 4, engine.ModeMinimizeLatency, 0, 10+q-1, false, 1)}, true},
		{"minimize_latency stale beyond the quantum", []porcupine.Operation{w(1, 2, 0, 2, 10), c(3, 4, engine.ModeMinimizeLatency, 0, 10+q, false, 1)}, false},
		{"fully_consistent stale", []porcupine.Operation{w(1, 2, 0, 2, 10), c(3, 4, engine.ModeFullyConsistent, 0, 20, false, 1)}, false},
		{"fully_consistent concurrent with the write", []porcupine.Operation{w(1, 4, 0, 2, 10), c(2, 3, engine.ModeFullyConsistent, 0, 5, false, 1)}, true},
		{"an answer from the future", []porcupine.Operation{c(1, 2, engine.ModeMinimizeLatency, 0, 5, true, 2), w(3, 4, 0, 2, 10)}, false},
		{"an acknowledged write lost", []porcupine.Operation{w(1, 2, 0, 2, 10), w(3, 4, 1, 2, 20)}, false},
		{"an unknown write kept", []porcupine.Operation{unknown(1, 2, 0), w(3, 4, 1, 3, 20), c(5, 6, engine.ModeFullyConsistent, 0, 30, true, 3)}, true},
		{"an unknown write lost", []porcupine.Operation{unknown(1, 2, 0), w(3, 4, 1, 2, 20), c(5, 6, engine.ModeFullyConsistent, 0, 30, false, 2)}, true},
		{"an unknown write after the crash", []porcupine.Operation{unknown(1, 2, 0), c(3, 4, engine.ModeFullyConsistent, 0, 30, false, 1), c(5, 6, engine.ModeFullyConsistent, 0, 30, true, 2)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := porcupine.CheckOperationsTimeout(histModel(histInit(1), histQuantum), tc.ops, time.Minute)
			if want := map[bool]porcupine.CheckResult{true: porcupine.Ok, false: porcupine.Illegal}[tc.ok]; res != want {
				t.Errorf("checker says %s, want %s", res, want)
			}
		})
	}
}

// histClock is the injected clock: clients advance it, the engine and the
// store read it.
type histClock struct{ ns atomic.Int64 }

func (c *histClock) now() time.Time                { return time.Unix(0, c.ns.Load()) }
func (c *histClock) advance(d time.Duration) int64 { return c.ns.Add(int64(d)) }

// historyRun is the shared state of a TestHistory run.
type historyRun struct {
	clock histClock
	stamp atomic.Int64 // porcupine's logical time

	// mu orders operations' ends against crashes: an operation ends
	// under the read lock, a crash happens under the write lock.
	mu         sync.RWMutex
	epoch      int
	crashStamp int64

	opsMu sync.Mutex // under mu's read lock
	ops   []porcupine.Operation
	stats histStats
	seen  uint64 // newest revision acknowledged or answered at

	e  *engine.Engine
	fp token.Fingerprint
}

type histStats struct {
	rounds, crashes, restarts, writes, unknown, checks, reads, dropped int
	byMode                                                             [4]int
}

// count counts a recorded operation.
func (s *histStats) count(in histInput) {
	switch in.kind {
	case histWrite:
		s.writes++
	case histCheck:
		s.checks++
		s.byMode[in.mode]++
	case histRead:
		s.reads++
		s.byMode[in.mode]++
	}
}

// TestHistory records and checks a history as the comment at the top of
// this file describes: rounds of four concurrent clients, each round ended
// by a crash or a clean restart, checked as one history by porcupine.
func TestHistory(t *testing.T) {
	rounds := *historyRounds
	long := os.Getenv("PEMBA_HISTORY_LONG") == "1"
	if rounds == 0 {
		rounds = 10
		if long {
			rounds = 500
		}
	}
	seed := *historySeed
	rng := rand.New(rand.NewPCG(seed, 7))
	ctx := context.Background()
	run := &historyRun{}
	run.clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())

	mem := vfs.NewCrashableMem()
	var fs vfs.FS = mem
	open := func() *pebblestore.Store {
		st, err := pebblestore.Open("db", pebblestore.Options{FS: fs, Now: run.clock.now, GCInterval: -1, CacheSize: 1 << 20})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		e, err := engine.Open(ctx, st, engine.Options{Now: run.clock.now, Quantum: histQuantum})
		if err != nil {
			t.Fatal(err)
		}
		run.e, run.fp = e, e.Fingerprint()
		return st
	}
	st := open()
	z, _, err := run.e.WriteSchema(ctx, "history", histSchema)
	if err != nil {
		t.Fatal(err)
	}
	head := mustRev(t, run.fp, z)

	const clients = 4
	zookies := make([][]string, clients) // each client's zookies, newest last
	for c := range zookies {
		zookies[c] = []string{z}
	}
	for round := range rounds {
		perClient := 20 + rng.IntN(30)
		crashAt := int64(rng.IntN(clients * perClient))
		crash := rng.IntN(3) != 0
		var done atomic.Int64
		var stop atomic.Bool
		var wg sync.WaitGroup
		var cloned *vfs.MemFS
		unsynced := []int{0, 50, 100}[rng.IntN(3)]
		cloneRNG := rand.New(rand.NewPCG(seed, uint64(round)))
		epoch := run.epoch
		for c := range clients {
			crng := rand.New(rand.NewPCG(seed, uint64(round*clients+c+1000)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perClient && !stop.Load(); i++ {
					run.op(t, crng, c, &zookies[c], epoch)
					if crash && done.Add(1) == crashAt+1 {
						run.mu.Lock()
						cloned = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: cloneRNG})
						run.crashStamp = run.stamp.Add(1)
						run.epoch++
						run.mu.Unlock()
						stop.Store(true)
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if cloned != nil {
			mem, fs = cloned, cloned
			run.stats.crashes++
		} else {
			run.stats.restarts++
		}
		st = open()
		run.stats.rounds++
		// Every revision a caller saw survives (the checker would find
		// out too; this says it plainly).
		if h, err := run.e.Head(ctx); err != nil || uint64(h) < run.seen {
			t.Fatalf("round %d (%s, %d%% of unsynced data kept): head %d after reopening, %v; revision %d was acknowledged or answered at",
				round, map[bool]string{true: "crash", false: "restart"}[cloned != nil], unsynced, h, err, run.seen)
		}
	}
	st.Close()

	run.mu.Lock()
	ops := run.ops
	run.mu.Unlock()
	res, _ := porcupine.CheckOperationsVerbose(histModel(histInit(head), histQuantum), ops, 10*time.Minute)
	switch res {
	case porcupine.Illegal:
		t.Fatalf("history of %d operations is not linearizable against the model (seed %d)", len(ops), seed)
	case porcupine.Unknown:
		t.Fatalf("the checker timed out on %d operations", len(ops))
	}
	stats := run.stats
	t.Logf("history: %d rounds (%d crashes, %d clean restarts), %d operations checked: %d writes acknowledged, %d writes of unknown outcome at a crash, %d checks, %d reads (by mode %v), %d dropped in flight at a crash; linearizable: lost 0",
		stats.rounds, stats.crashes, stats.restarts, len(ops), stats.writes, stats.unknown, stats.checks, stats.reads, stats.byMode, stats.dropped)
}

func mustRev(t testing.TB, fp token.Fingerprint, z string) uint64 {
	t.Helper()
	rev, err := token.DecodeZookie(fp, z)
	if err != nil {
		t.Fatalf("zookie %q: %v", z, err)
	}
	return rev
}

// op runs one random operation of client c and records it.
//
// epoch is the crash count when the round began: an operation that ends
// after a crash, or begins after one on the store the crash left behind,
// does not count as acknowledged.
func (r *historyRun) op(t *testing.T, rng *rand.Rand, c int, zookies *[]string, epoch int) {
	ctx := context.Background()
	r.mu.RLock()
	e, fp := r.e, r.fp
	r.mu.RUnlock()
	now := r.clock.advance(time.Duration(rng.IntN(10)) * time.Millisecond)
	in := histInput{user: rng.IntN(histUsers), now: now}
	call := r.stamp.Add(1)
	var out histOutput
	var z string
	var err error
	switch p := rng.IntN(10); {
	case p < 4:
		in.kind, in.del = histWrite, rng.IntN(3) == 0
		op := engine.OpTouch
		if in.del {
			op = engine.OpDelete
		}
		rel := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", in.user)}}
		z, err = e.WriteRelationships(ctx, engine.WriteRequest{Caller: "history", Updates: []engine.Update{{Op: op, Relationship: rel}}})
	default:
		in.kind = histCheck
		if p >= 8 {
			in.kind = histRead
		}
		in.mode = engine.Mode(rng.IntN(4))
		cons := engine.Consistency{Mode: in.mode}
		if in.mode == engine.ModeAtLeastAsFresh || in.mode == engine.ModeAtExactSnapshot {
			zs := *zookies
			cons.Zookie = zs[len(zs)-1-rng.IntN(min(len(zs), 4))]
			in.zookie = mustRev(t, fp, cons.Zookie)
		}
		if in.kind == histCheck {
			var resp engine.CheckResponse
			resp, err = e.Check(ctx, engine.CheckRequest{Consistency: cons, CheckRequest: engine.CheckQuery{
				Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", in.user)},
			}})
			out.allowed, z = resp.Permissionship == engine.HasPermission, resp.Zookie
		} else {
			var page engine.ReadPage
			page, err = e.ReadRelationships(ctx, cons, tuple.Filter{ResourceType: "doc"}, 100, "")
			for _, rel := range page.Relationships {
				var u int
				fmt.Sscanf(rel.Subject.ID, "u%d", &u)
				out.bits |= 1 << u
			}
			z = page.Zookie
		}
	}
	if err != nil {
		t.Errorf("client %d: %+v: %v", c, in, err)
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	ret := r.stamp.Add(1)
	out.ack = r.clock.ns.Load()
	r.opsMu.Lock()
	defer r.opsMu.Unlock()
	if r.epoch != epoch {
		// In flight at a crash: a write's outcome is unknown (it took
		// effect before the crash or never); a read, or a write begun
		// after the crash (on the store the crash left behind), is
		// dropped; no zookie of theirs is used again.
		if in.kind == histWrite && call < r.crashStamp {
			r.ops = append(r.ops, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: histOutput{unknown: true}, Return: r.crashStamp})
			r.stats.unknown++
		} else {
			r.stats.dropped++
		}
		return
	}
	out.rev = mustRev(t, fp, z)
	r.seen = max(r.seen, out.rev)
	r.ops = append(r.ops, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
	*zookies = append(*zookies, z)
	if len(*zookies) > 8 {
		*zookies = (*zookies)[1:]
	}
	r.stats.count(in)
}
