package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nodeProject is the Node program that drives pemba serve through
// @authzed/authzed-node; its package-lock.json pins every package.
var nodeProject = filepath.Join("testdata", "authzed-node")

// TestAuthzedNode runs testdata/authzed-node/test.mjs, written against
// the authzed Node client library as a SpiceDB user's program would be,
// against `pemba serve` with a key: schema write and read, relationship
// writes, checks at every consistency mode and with caveat context,
// lookups, a delete, and a watch resumed from a ZedToken. Outside CI it
// skips where node or npm is not installed; under CI=true it never skips
// (.ci/run installs them and the packages).
func TestAuthzedNode(t *testing.T) {
	node, npm := tool(t, "node"), tool(t, "npm")
	installNodeModules(t, npm)

	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	const secret = "node-client-secret-0123456789"
	if err := os.WriteFile(keys, []byte("node "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startServe(t, "-datastore", "memory", "-keys-file", keys)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "test.mjs", addr, secret)
	cmd.Dir = nodeProject
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run node: %v", err)
	}
	// Every step must report, in order, then PASS: a script that stops
	// early or skips a step fails here even if it exits 0.
	want := []string{"ok wrong key", "ok write schema", "ok read schema", "ok write relationships",
		"ok check", "ok lookup resources", "ok lookup subjects", "ok delete", "ok watch", "PASS"}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("node test.mjs: %v; output:\n%s\nwant the lines %q", err, out, want)
	}
}

// tool returns the path of a program the test needs; without it the test
// skips, except under CI=true, where it fails.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (.ci/run installs it): %v", name, err)
		}
		t.Skipf("%s is not installed", name)
	}
	return path
}

// installNodeModules runs `npm ci` in the Node project unless its
// node_modules was installed from the current package-lock.json (npm
// records the install in node_modules/.package-lock.json).
func installNodeModules(t *testing.T, npm string) {
	t.Helper()
	lock, err := os.Stat(filepath.Join(nodeProject, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	installed, err := os.Stat(filepath.Join(nodeProject, "node_modules", ".package-lock.json"))
	if err == nil && !installed.ModTime().Before(lock.ModTime()) {
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = nodeProject
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", nodeProject, err, out)
	}
}
