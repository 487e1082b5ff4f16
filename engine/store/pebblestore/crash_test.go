package pebblestore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

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
		rev, err := s.Update(ctx, store.WriteMeta{Caller: "crash"}, func(ctx context.Context, tx store.Tx) error {
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
// acknowledged transaction survived, whole.
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
}

func mustReader(t testing.TB, s *Store, rev store.Revision) store.Reader {
	t.Helper()
	rd, err := s.Snapshot(context.Background(), rev)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}
