package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// diskFault injects errno into the filesystem operations that match,
// while it is on.
type diskFault struct {
	on    atomic.Bool
	errno syscall.Errno
	match func(op errorfs.Op) bool
	hits  atomic.Int64
	// hit, when set, is closed at the tenth injected error.
	hit chan struct{}
}

func (f *diskFault) MaybeError(op errorfs.Op) error {
	if !f.on.Load() || !f.match(op) {
		return nil
	}
	if f.hits.Add(1) == 10 && f.hit != nil {
		close(f.hit)
	}
	return &os.PathError{Op: fmt.Sprint(op.Kind), Path: op.Path, Err: f.errno}
}

func (f *diskFault) String() string { return "diskFault(" + f.errno.Error() + ")" }

// walOp matches the write-ahead log's operations of the given kinds.
func walOp(kinds ...errorfs.OpKind) func(op errorfs.Op) bool {
	return func(op errorfs.Op) bool {
		if !strings.HasSuffix(op.Path, ".log") {
			return false
		}
		for _, k := range kinds {
			if op.Kind == k {
				return true
			}
		}
		return false
	}
}

// TestDiskFaults fills the disk (ENOSPC) or fails it (EIO) under the
// write-ahead log while writes run: the failing write and every later one
// return an error that maps to UNAVAILABLE (nothing written) or
// COMMIT_OUTCOME_UNKNOWN (applied, not known durable), never a panic and
// never a success; reads at published revisions go on; and once the fault
// is gone the reopened store holds every acknowledged write, the unknown
// one whole or not at all, a verified audit chain, and takes new writes.
func TestDiskFaults(t *testing.T) {
	cases := []struct {
		name  string
		errno syscall.Errno
		match func(errorfs.Op) bool
	}{
		{"ENOSPC on log write", syscall.ENOSPC, walOp(errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFilePreallocate)},
		{"EIO on log sync", syscall.EIO, walOp(errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo)},
		{"ENOSPC on every log operation", syscall.ENOSPC, func(op errorfs.Op) bool {
			return strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			mem := vfs.NewCrashableMem()
			fault := &diskFault{errno: tc.errno, match: tc.match}
			clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			opts := Options{FS: errorfs.Wrap(mem, fault), Now: clock.Now, GCInterval: -1, CacheSize: 1 << 20, Logger: quietLogger()}
			s, err := Open("db", opts)
			if err != nil {
				t.Fatal(err)
			}
			var acked []string
			write := func(i int) (store.Revision, error) {
				return s.Update(ctx, store.WriteMeta{Caller: "faults"}, func(ctx context.Context, tx store.Tx) error {
					for m := range 3 {
						if err := tx.Touch(ctx, mustRel(t, fmt.Sprintf("group:g%d#member@user:u%d", i, m))); err != nil {
							return err
						}
					}
					return nil
				})
			}
			for i := range 20 {
				if _, err := write(i); err != nil {
					t.Fatal(err)
				}
				acked = append(acked, fmt.Sprintf("g%d", i))
			}
			head, _ := s.HeadRevision(ctx)
			if err := s.Failure(); err != nil {
				t.Fatalf("Failure before the fault: %v", err)
			}

			fault.on.Store(true)
			_, err = write(20)
			if err == nil {
				t.Fatalf("a write under %s succeeded", tc.errno)
			}
			if !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrCommitUnknown) {
				t.Fatalf("write under %s: %v, want store.ErrUnavailable or store.ErrCommitUnknown", tc.errno, err)
			}
			if !strings.Contains(err.Error(), tc.errno.Error()) {
				t.Errorf("write error %q does not name the cause %q", err, tc.errno.Error())
			}
			t.Logf("write under %s: %v", tc.errno, err)
			if fault.hits.Load() == 0 {
				t.Fatal("no fault injected")
			}
			// Health probes see it (engine.Ping).
			if err := s.Failure(); !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), tc.errno.Error()) {
				t.Errorf("Failure after the fault: %v, want store.ErrUnavailable naming %q", err, tc.errno.Error())
			}
			// Later writes fail fast and promise nothing was written.
			fault.on.Store(false)
			if _, err := write(21); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("write after the failure: %v, want store.ErrUnavailable", err)
			}
			if _, _, err := s.Import(ctx, store.WriteMeta{}, genRels(10)); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("import after the failure: %v, want store.ErrUnavailable", err)
			}
			if _, err := s.GC(ctx, clock.Now().Add(48*time.Hour)); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("GC after the failure: %v, want store.ErrUnavailable", err)
			}
			// Reads at published revisions go on.
			if h, _ := s.HeadRevision(ctx); h != head {
				t.Errorf("head %d after the failure, want %d", h, head)
			}
			if n := len(mustAll(t, s, head)); n != 3*len(acked) {
				t.Errorf("%d relationships readable after the failure, want %d", n, 3*len(acked))
			}

			// The machine restarts with what was synced; the disk has room.
			crashed := mem.CrashClone(vfs.CrashCloneCfg{})
			s.Close() // may fail; the failed Pebble instance is abandoned
			r, err := Open("db", Options{FS: crashed, Now: clock.Now, GCInterval: -1, CacheSize: 1 << 20, Logger: quietLogger()})
			if err != nil {
				t.Fatalf("reopen after the fault: %v", err)
			}
			defer r.Close()
			h, _ := r.HeadRevision(ctx)
			if h != head && h != head+1 {
				t.Fatalf("head %d after reopening, want %d (or %d with the unknown write)", h, head, head+1)
			}
			groups := map[string]int{}
			for _, rel := range mustAll(t, r, h) {
				groups[strings.TrimPrefix(strings.SplitN(rel, "#", 2)[0], "group:")]++
			}
			for _, g := range acked {
				if groups[g] != 3 {
					t.Errorf("acknowledged group %s has %d members after reopening, want 3", g, groups[g])
				}
			}
			if n, ok := groups["g20"]; ok && (n != 3 || h != head+1) {
				t.Errorf("the unknown write is there with %d members at head %d: not whole", n, h)
			}
			if len(groups) != int(h) {
				t.Errorf("%d groups at head %d", len(groups), h)
			}
			if rep, err := store.VerifyAudit(ctx, r); err != nil || rep.Mismatch != nil || rep.Entries != int(h) {
				t.Errorf("audit after reopening: %+v, %v; want %d verified entries", rep, err, h)
			}
			rev, err := r.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
				return tx.Touch(ctx, tuple.Relationship{Resource: tuple.ObjectRef{Type: "group", ID: "after"}, Relation: "member", Subject: tuple.SubjectRef{Type: "user", ID: "u"}})
			})
			if err != nil || rev != h+1 {
				t.Errorf("write after reopening: revision %d, %v; want %d", rev, err, h+1)
			}
		})
	}
}

// TestDiskFullTables fills the disk under Pebble's table files while a
// flush runs: Pebble retries the flush (a background error, not a fatal
// one), writes go on through the write-ahead log and are acknowledged and
// readable, the store does not fail, and once there is room the flush
// finishes and the reopened store holds everything.
func TestDiskFullTables(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	fault := &diskFault{errno: syscall.ENOSPC, hit: make(chan struct{}), match: func(op errorfs.Op) bool {
		return strings.HasSuffix(op.Path, ".sst") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite
	}}
	opts := Options{FS: errorfs.Wrap(mem, fault), GCInterval: -1, CacheSize: 1 << 20, Logger: quietLogger()}
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		touch(t, s, fmt.Sprintf("group:g%d#member@user:u", i))
	}
	fault.on.Store(true)
	flushed := make(chan error, 1)
	go func() { flushed <- s.db.Flush() }()
	<-fault.hit // the flush has failed ten times and is being retried
	rev := touch(t, s, "group:during#member@user:u")
	if err := s.Failure(); err != nil {
		t.Fatalf("the store failed on a table write: %v", err)
	}
	if got := len(mustAll(t, s, rev)); got != 21 {
		t.Fatalf("%d relationships at %d during the fault, want 21", got, rev)
	}
	fault.on.Store(false)
	if err := <-flushed; err != nil {
		t.Fatalf("flush once the disk has room: %v", err)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts.FS = crashed
	r, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if h, _ := r.HeadRevision(ctx); h != rev {
		t.Fatalf("head %d after reopening, want %d", h, rev)
	}
	if got := len(mustAll(t, r, rev)); got != 21 {
		t.Fatalf("%d relationships after reopening, want 21", got)
	}
}
