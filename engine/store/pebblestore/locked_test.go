package pebblestore

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// lockHolderEnv, when set, makes TestOpenLockedDirectory the other
// process: it opens the store in that directory, says "ready" and holds it
// until its standard input closes.
const lockHolderEnv = "PEMBA_TEST_LOCK_HOLDER_DIR"

// TestOpenLockedDirectory: a directory another process holds open fails
// with ErrLocked and a message that names the directory, not with the bare
// "resource temporarily unavailable" of the lock system call.
func TestOpenLockedDirectory(t *testing.T) {
	if dir := os.Getenv(lockHolderEnv); dir != "" {
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("ready\n")
		bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes it
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	dir := t.TempDir()
	holder := exec.Command(os.Args[0], "-test.run=^TestOpenLockedDirectory$")
	holder.Env = append(os.Environ(), lockHolderEnv+"="+dir)
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := holder.Wait(); err != nil {
			t.Errorf("lock holder: %v", err)
		}
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("lock holder said %q, %v; want ready", line, err)
	}

	s, err := Open(dir, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a directory another process holds succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %q does not wrap ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir+" is in use by another process") {
		t.Errorf("error %q does not say that %s is in use by another process", err, dir)
	}
}
