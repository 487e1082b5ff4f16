package pebblestore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// crashDirEnv tells the test binary that it runs as the child of TestCrash.
const crashDirEnv = "PEMBA_PEBBLESTORE_CRASH_DIR"

// groupSize is the number of relationships each transaction writes in the
// crash test: a transaction is visible with all of them or none.
const groupSize = 5

// TestCrashChild is the child process of TestCrash: it commits groups
// until it is killed, printing "group revision" after each acknowledged
// commit.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrash")
	}
	s, err := Open(dir, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	for g := 0; ; g++ {
		meta := store.WriteMeta{Caller: "crash", RequestID: fmt.Sprintf("req-%d", g), Reason: fmt.Sprintf("group g%d", g)}
		rev, err := s.Update(ctx, meta, func(ctx context.Context, tx store.Tx) error {
			for m := range groupSize {
				r := tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "group", ID: fmt.Sprintf("g%d", g)},
					Relation: "member",
					Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", m)},
				}
				if err := tx.Touch(ctx, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			fmt.Println("update:", err)
			os.Exit(2)
		}
		// Unbuffered: the line is out before the next commit starts.
		fmt.Printf("%d %d\n", g, rev)
	}
}

// TestCrash kills a writing child with SIGKILL and checks that every
// acknowledged transaction survived, whole, and that the audit log holds
// exactly one entry per committed transaction, with its changes, and
// verifies: no write without its entry, no entry without its write.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	const acks = 100
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	lastGroup, lastRev := -1, store.Revision(0)
	for n := 0; n < acks && sc.Scan(); n++ {
		var g int
		var rev store.Revision
		if _, err := fmt.Sscanf(sc.Text(), "%d %d", &g, &rev); err != nil {
			cmd.Process.Kill()
			t.Fatalf("child said %q", sc.Text())
		}
		if g != lastGroup+1 || rev <= lastRev {
			t.Errorf("ack %q after group %d revision %d", sc.Text(), lastGroup, lastRev)
		}
		lastGroup, lastRev = g, rev
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if lastGroup < acks-1 {
		t.Fatalf("child acknowledged only %d groups", lastGroup+1)
	}

	s, err := Open(dir, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	head, _ := s.HeadRevision(context.Background())
	if head < lastRev {
		t.Fatalf("head %d after crash, last acknowledged %d", head, lastRev)
	}
	members := map[string]int{}
	for r, err := range mustReader(t, s, head).QueryRelationships(context.Background(), tuple.Filter{ResourceType: "group"}, store.QueryOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		members[r.Resource.ID]++
	}
	for g := 0; g <= lastGroup; g++ {
		if n := members[fmt.Sprintf("g%d", g)]; n != groupSize {
			t.Errorf("acknowledged group %d has %d members, want %d", g, n, groupSize)
		}
	}
	for id, n := range members {
		if n != groupSize || !strings.HasPrefix(id, "g") {
			t.Errorf("group %s has %d members: a partial transaction", id, n)
		}
	}
	// Unacknowledged but committed groups may exist; they are whole, and
	// there is one per revision.
	if len(members) != int(head) {
		t.Errorf("%d groups at head %d", len(members), head)
	}
	rep, err := store.VerifyAudit(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mismatch != nil || rep.Head != head || rep.Entries != int(head) {
		t.Fatalf("audit after the crash: %+v (mismatch %+v), want %d verified entries", rep, rep.Mismatch, head)
	}
	n := 0
	for e, err := range s.AuditEntries(context.Background(), store.AuditFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		g := fmt.Sprintf("g%d", e.Revision-1)
		if e.Reason != "group "+g || len(e.Changes) != groupSize {
			t.Errorf("audit entry %d: reason %q, %d changes; want the write of group %s", e.Revision, e.Reason, len(e.Changes), g)
		}
		for _, c := range e.Changes {
			if c.Relationship.Resource.ID != g || members[g] != groupSize {
				t.Errorf("audit entry %d lists %s, which is not a committed write of group %s", e.Revision, c.Relationship, g)
			}
		}
		n++
	}
	if n != int(head) {
		t.Errorf("%d audit entries at head %d", n, head)
	}
}

func mustReader(t testing.TB, s *Store, rev store.Revision) store.Reader {
	t.Helper()
	rd, err := s.Snapshot(context.Background(), rev)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

// crashImportEnv makes TestCrashChild run an import that stops midway.
const crashImportEnv = "PEMBA_PEBBLESTORE_CRASH_IMPORT"

// TestCrashImportChild is the child of TestCrashImport: it commits one
// group, then imports a stream that prints "mid" after enough
// relationships for several batches to have been committed, and then
// blocks until it is killed.
func TestCrashImportChild(t *testing.T) {
	dir := os.Getenv(crashImportEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashImport")
	}
	s, err := Open(dir, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	if _, err := s.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
		return tx.Touch(ctx, tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "group", ID: "before"},
			Relation: "member",
			Subject:  tuple.SubjectRef{Type: "user", ID: "u"},
		})
	}); err != nil {
		fmt.Println("update:", err)
		os.Exit(2)
	}
	const mid = 100_000 // > 4 MiB of batch: at least one batch committed
	stream := func(yield func(tuple.Relationship, error) bool) {
		for i := 0; ; i++ {
			if i == mid {
				// The worst case: the unsynced batches reached the disk.
				if err := s.db.LogData(nil, pebble.Sync); err != nil {
					fmt.Println("sync:", err)
					os.Exit(2)
				}
				fmt.Println("mid")
				select {} // wait for SIGKILL
			}
			r := tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%d", i)},
				Relation: "viewer",
				Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", i)},
			}
			if !yield(r, nil) {
				return
			}
		}
	}
	s.Import(ctx, store.WriteMeta{}, stream)
	fmt.Println("import returned")
	os.Exit(2)
}

// TestCrashImport kills a process in the middle of an import: after
// reopening, none of the import is visible or left behind, and the
// revision it had reserved is reused cleanly.
func TestCrashImport(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashImportChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashImportEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "mid" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, want \"mid\"", sc.Text())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// Partial import data is on disk, or this test proves nothing.
	db, err := pebble.Open(dir, &pebble.Options{Comparer: comparer, FormatMajorVersion: pebbleFormat, Logger: pebbleLogger{quietLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagForward}, UpperBound: []byte{tagForward + 1}})
	if err != nil {
		t.Fatal(err)
	}
	partial := 0
	for ok := it.First(); ok; ok = it.Next() {
		partial++
	}
	it.Close()
	it, err = db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagAudit}, UpperBound: []byte{tagAudit + 1}})
	if err != nil {
		t.Fatal(err)
	}
	partialAudit := 0
	for ok := it.First(); ok; ok = it.Next() {
		partialAudit++
	}
	it.Close()
	db.Close()
	if partial <= 1 {
		t.Fatalf("only %d forward entries after the crash: no partial import to roll back", partial)
	}
	if partialAudit <= 1 {
		t.Fatalf("only %d audit chunks after the crash: no partial audit entry to roll back", partialAudit)
	}

	s, err := Open(dir, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if head, _ := s.HeadRevision(context.Background()); head != 1 {
		t.Errorf("head after a crashed import = %d, want 1", head)
	}
	if n := rawKeys(t, s, tagForward) + rawKeys(t, s, tagReverse); n != 2 {
		t.Errorf("%d index entries after recovery, want 2 (the import was not rolled back)", n)
	}
	if n := rawKeys(t, s, tagChangelog); n != 1 {
		t.Errorf("%d changelog entries after recovery, want 1", n)
	}
	if n := rawKeys(t, s, tagAudit); n != 1 {
		t.Errorf("%d audit chunks after recovery, want 1 (the import's entry was not rolled back)", n)
	}
	rev, err := s.Update(context.Background(), store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
		return tx.Touch(ctx, tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "group", ID: "after"},
			Relation: "member",
			Subject:  tuple.SubjectRef{Type: "user", ID: "u"},
		})
	})
	if err != nil || rev != 2 {
		t.Fatalf("write after recovery = %d, %v", rev, err)
	}
	n := 0
	for r, err := range mustReader(t, s, rev).QueryRelationships(context.Background(), tuple.Filter{}, store.QueryOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Resource.Type != "group" {
			t.Fatalf("import data visible after recovery: %s", r)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d relationships at %d, want 2", n, rev)
	}
	if rep, err := store.VerifyAudit(context.Background(), s); err != nil || rep.Mismatch != nil || rep.Entries != 2 {
		t.Errorf("audit after recovery: %+v, %v; want 2 verified entries", rep, err)
	}
}
