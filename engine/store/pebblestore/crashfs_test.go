package pebblestore

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// The crash-FS suite: a seeded workload of writes, deletes, expiring
// relationships, schema writes, bulk imports, GC (with audit retention)
// and Pebble flushes and compactions runs on Pebble's crash-simulating
// filesystem; at a seeded point (the mth filesystem write after the
// workload's kth step begins, so the crash lands inside that step or in
// Pebble's background work beside it) the filesystem is cloned as a power
// failure would leave it: what was synced, plus a seeded share of what was
// not (none, torn files, or everything). The clone is reopened and must
// hold every acknowledged write, at every readable revision exactly the
// model's state (forward and reverse index alike, schema included), the
// write in flight whole or not at all, nothing later, and a verified audit
// chain; it must then take writes and GC again.
//
// The seed names the workload and the crash point; Pebble's background
// goroutines make the exact filesystem interleaving vary between runs.

var (
	crashFSRounds = flag.Int("crashfs.rounds", 0, "rounds of TestCrashFS (0: 40, 6 under -race, or PEMBA_CRASHFS_ROUNDS)")
	crashFSSeed   = flag.Uint64("crashfs.seed", 0, "first seed of TestCrashFS (rounds use seed, seed+1, ...)")
)

// crashFSStats are the figures of a TestCrashFS run (docs/storage.md).
type crashFSStats struct {
	rounds, acked, inFlightKept, inFlightLost, lost int
	byStep                                          map[string]int
}

// TestCrashFS runs the crash-FS suite described above, one subtest per
// seed, and logs its figures.
func TestCrashFS(t *testing.T) {
	rounds := *crashFSRounds
	if rounds == 0 {
		def := 40
		if raceEnabled {
			def = 6
		}
		rounds = envInt(t, "PEMBA_CRASHFS_ROUNDS", def)
	}
	st := crashFSStats{byStep: map[string]int{}}
	for i := range rounds {
		seed := *crashFSSeed + uint64(i)
		if !t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { crashRound(t, seed, &st) }) {
			t.Logf("replay with: go test ./engine/store/pebblestore -run 'TestCrashFS/seed=%d$' -crashfs.seed=%d -crashfs.rounds=1", seed, seed)
			break
		}
		st.rounds++
	}
	t.Logf("crash-FS: %d rounds, %d writes acknowledged before the crash, lost: %d; in flight at the crash: %d kept, %d lost; crash inside: %v",
		st.rounds, st.acked, st.lost, st.inFlightKept, st.inFlightLost, st.byStep)
}

// crashPoint is an errorfs injector that injects no error: it counts
// write operations once armed and, at the target one, clones the
// filesystem as a crash would leave it.
type crashPoint struct {
	mem *vfs.MemFS
	cfg vfs.CrashCloneCfg

	mu     sync.Mutex
	armed  bool
	left   int
	clone  *vfs.MemFS
	step   string // the workload step running at the crash
	acked  store.Revision
	inFly  store.Revision
	status func() (string, store.Revision, store.Revision)
}

func (c *crashPoint) String() string { return "crashPoint" }

func (c *crashPoint) MaybeError(op errorfs.Op) error {
	if op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.armed || c.clone != nil {
		return nil
	}
	if c.left--; c.left > 0 {
		return nil
	}
	c.crashLocked()
	return nil
}

// crashed reports whether the clone was taken.
func (c *crashPoint) crashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clone != nil
}

// crash clones now, unless it already has.
func (c *crashPoint) crash() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clone == nil {
		c.crashLocked()
	}
}

func (c *crashPoint) crashLocked() {
	// The workload's progress is read before the clone: a write
	// acknowledged after this point may be in the clone or not, and is
	// counted as in flight.
	c.step, c.acked, c.inFly = c.status()
	c.clone = c.mem.CrashClone(c.cfg)
}

// crashModel is the state after each revision: live relationships (their
// String) and the schema text.
type crashModel struct {
	rels   []map[string]tuple.Relationship // by key, per revision
	schema []string
}

func (m *crashModel) next() (map[string]tuple.Relationship, *string) {
	last := len(m.rels) - 1
	s := m.schema[last]
	return maps.Clone(m.rels[last]), &s
}

// live lists the relationships of rev not expired at now, sorted.
func (m *crashModel) live(rev store.Revision, now time.Time) []string {
	var out []string
	for _, r := range m.rels[rev] {
		if r.Expiration.IsZero() || r.Expiration.After(now) {
			out = append(out, r.String())
		}
	}
	slices.Sort(out)
	return out
}

func crashRound(t *testing.T, seed uint64, st *crashFSStats) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var clockMu sync.Mutex
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock.Now() }
	advance := func(d time.Duration) { clockMu.Lock(); clock.Advance(d); clockMu.Unlock() }

	mem := vfs.NewCrashableMem()
	unsynced := []int{0, 0, 30, 70, 100}[rng.IntN(5)]
	cp := &crashPoint{mem: mem, cfg: vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rand.New(rand.NewPCG(seed, 1))}}
	opts := Options{
		FS: errorfs.Wrap(mem, cp), Now: now, GCWindow: time.Hour, GCInterval: -1, CacheSize: 1 << 20,
		Logger: quietLogger(), AuditRetention: 2 * time.Hour, importBatch: 2 << 10,
	}
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}

	model := &crashModel{rels: []map[string]tuple.Relationship{{}}, schema: []string{""}}
	var (
		step           atomic.Value
		acked, started atomic.Uint64
	)
	step.Store("open")
	cp.status = func() (string, store.Revision, store.Revision) {
		return step.Load().(string), store.Revision(acked.Load()), store.Revision(started.Load())
	}
	const steps = 40
	crashStep, crashWrite := rng.IntN(steps), 1+rng.IntN(40)

	rel := func() tuple.Relationship {
		r := tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%d", rng.IntN(12))},
			Relation: []string{"viewer", "editor"}[rng.IntN(2)],
			Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", rng.IntN(6))},
		}
		if rng.IntN(3) == 0 {
			r.Expiration = now().Add(time.Duration(1+rng.IntN(180)) * time.Minute).Truncate(time.Second)
		}
		return r
	}
	// write commits next (and schema) at the next revision.
	write := func(next map[string]tuple.Relationship, schema *string, fn func(ctx context.Context, tx store.Tx) error) {
		rev := store.Revision(len(model.rels))
		model.rels = append(model.rels, next)
		model.schema = append(model.schema, *schema)
		started.Store(uint64(rev))
		got, err := s.Update(ctx, store.WriteMeta{Caller: "crashfs", Reason: fmt.Sprint(rev)}, fn)
		if err != nil {
			t.Fatalf("revision %d: %v", rev, err)
		}
		if got != rev {
			t.Fatalf("committed revision %d, want %d", got, rev)
		}
		acked.Store(uint64(rev))
	}

	for i := 0; i < steps && !cp.crashed(); i++ {
		kind := []string{"write", "write", "write", "delete", "schema", "import", "gc", "gc", "flush", "compact"}[rng.IntN(10)]
		step.Store(kind)
		// A crash in the middle of an import comes from its stream, after
		// a first batch (two changelog chunks make two batches), synced
		// or not: few filesystem writes happen inside an import.
		streamCrash := i == crashStep && kind == "import" && rng.IntN(2) == 0
		if i == crashStep && !streamCrash {
			cp.mu.Lock()
			cp.armed, cp.left = true, crashWrite
			cp.mu.Unlock()
		}
		advance(time.Duration(1+rng.IntN(20)) * time.Minute)
		switch kind {
		case "write", "delete", "schema":
			next, schema := model.next()
			var touch []tuple.Relationship
			var del []tuple.Key
			for range 1 + rng.IntN(4) {
				r := rel()
				next[r.Key().String()] = r
				touch = append(touch, r)
			}
			if kind == "delete" {
				for _, k := range slices.Sorted(maps.Keys(next)) {
					if r := next[k]; len(del) < 30 && rng.IntN(3) == 0 {
						delete(next, k)
						del = append(del, r.Key())
					}
				}
			}
			if kind == "schema" {
				*schema = fmt.Sprintf("definition user {}\n\ndefinition doc {\n\trelation viewer: user\n\trelation editor: user\n} // %d\n", i)
			}
			text := *schema
			write(next, schema, func(ctx context.Context, tx store.Tx) error {
				for _, r := range touch {
					if err := tx.Touch(ctx, r); err != nil {
						return err
					}
				}
				for _, k := range del {
					if err := tx.Delete(ctx, k); err != nil {
						return err
					}
				}
				if kind == "schema" {
					return tx.WriteSchema(ctx, text)
				}
				return nil
			})
		case "import":
			next, schema := model.next()
			n := maxChunkChanges + 1 + rng.IntN(600) // two changelog chunks, so two batches
			var rels []tuple.Relationship
			for j := range n {
				r := tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "folder", ID: fmt.Sprintf("f%d-%d", i, j)},
					Relation: "viewer",
					Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", j%50)},
				}
				next[r.Key().String()] = r
				rels = append(rels, r)
			}
			rev := store.Revision(len(model.rels))
			model.rels = append(model.rels, next)
			model.schema = append(model.schema, *schema)
			started.Store(uint64(rev))
			crashAt, syncFirst := -1, rng.IntN(2) == 0
			if streamCrash {
				crashAt = maxChunkChanges + rng.IntN(n-maxChunkChanges)
			}
			got, imported, err := s.Import(ctx, store.WriteMeta{Caller: "crashfs"}, func(yield func(tuple.Relationship, error) bool) {
				for j, r := range rels {
					if j == crashAt {
						if syncFirst {
							// The worst case: the first batch reached the disk.
							if err := s.db.LogData(nil, pebble.Sync); err != nil {
								t.Errorf("sync: %v", err)
							}
						}
						cp.crash()
					}
					if !yield(r, nil) {
						return
					}
				}
			})
			if err != nil || got != rev || imported != n {
				t.Fatalf("import: revision %d, %d imported, %v; want revision %d, %d", got, imported, err, rev, n)
			}
			acked.Store(uint64(rev))
		case "gc":
			advance(time.Duration(rng.IntN(90)) * time.Minute)
			if _, err := s.GC(ctx, now()); err != nil {
				t.Fatalf("gc: %v", err)
			}
		case "flush":
			if err := s.db.Flush(); err != nil {
				t.Fatalf("flush: %v", err)
			}
		case "compact":
			if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, false); err != nil {
				t.Fatalf("compact: %v", err)
			}
		}
	}
	cp.crash() // the workload ended before the crash point
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	st.byStep[cp.step]++
	opts.FS = cp.clone
	r, err := Open("db", opts)
	if err != nil {
		t.Fatalf("reopen after a crash during %s (%d%% of unsynced data kept): %v", cp.step, unsynced, err)
	}
	defer r.Close()
	head, _ := r.HeadRevision(ctx)
	st.acked += int(cp.acked)
	switch {
	case head < cp.acked:
		st.lost += int(cp.acked - head)
		t.Fatalf("head %d after a crash during %s, but revision %d was acknowledged", head, cp.step, cp.acked)
	case head > max(cp.acked, cp.inFly):
		t.Fatalf("head %d after a crash during %s: revision %d was never started", head, cp.step, head)
	case cp.inFly > cp.acked && head == cp.inFly:
		st.inFlightKept++
	case cp.inFly > cp.acked:
		st.inFlightLost++
	}
	checkAgainstModel(t, r, model, head, now())

	// The store goes on: a write, GC, and the same checks.
	model.rels, model.schema = model.rels[:head+1], model.schema[:head+1]
	next, schema := model.next()
	after := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "after"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "u0"}}
	next[after.Key().String()] = after
	model.rels, model.schema = append(model.rels, next), append(model.schema, *schema)
	rev, err := r.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error { return tx.Touch(ctx, after) })
	if err != nil || rev != head+1 {
		t.Fatalf("write after recovery: revision %d, %v; want %d", rev, err, head+1)
	}
	advance(30 * time.Minute)
	if _, err := r.GC(ctx, now()); err != nil {
		t.Fatalf("gc after recovery: %v", err)
	}
	checkAgainstModel(t, r, model, rev, now())
}

// checkAgainstModel compares every readable revision of s up to head with
// the model: live relationships by the forward and the reverse index, the
// schema, and the audit chain.
func checkAgainstModel(t *testing.T, s *Store, m *crashModel, head store.Revision, now time.Time) {
	t.Helper()
	ctx := context.Background()
	for rev := s.Horizon(); rev <= head; rev++ {
		rd, err := s.Snapshot(ctx, rev)
		if err != nil {
			t.Fatalf("snapshot %d (horizon %d, head %d): %v", rev, s.Horizon(), head, err)
		}
		want := m.live(rev, now)
		var fwd, rev2 []string
		for r, err := range rd.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}) {
			if err != nil {
				t.Fatalf("revision %d: %v", rev, err)
			}
			if r.Expiration.IsZero() || r.Expiration.After(now) {
				fwd = append(fwd, r.String())
			}
		}
		for r, err := range rd.ReverseQueryRelationships(ctx, tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user"}}, store.QueryOptions{}) {
			if err != nil {
				t.Fatalf("revision %d: %v", rev, err)
			}
			if r.Expiration.IsZero() || r.Expiration.After(now) {
				rev2 = append(rev2, r.String())
			}
		}
		slices.Sort(fwd)
		slices.Sort(rev2)
		if !slices.Equal(fwd, want) {
			t.Fatalf("revision %d (horizon %d, head %d): forward index\n got %d: %v\nwant %d: %v", rev, s.Horizon(), head, len(fwd), fwd, len(want), want)
		}
		if !slices.Equal(rev2, want) {
			t.Fatalf("revision %d: reverse index\n got %d: %v\nwant %d: %v", rev, len(rev2), rev2, len(want), want)
		}
		text, _, err := rd.ReadSchema(ctx)
		if err != nil || text != m.schema[rev] {
			t.Fatalf("revision %d: schema %q, %v; want %q", rev, text, err, m.schema[rev])
		}
	}
	rep, err := store.VerifyAudit(ctx, s)
	if err != nil || rep.Mismatch != nil || rep.Head != head {
		t.Fatalf("audit at head %d: %+v (mismatch %+v), %v", head, rep, rep.Mismatch, err)
	}
}
