//go:build unix

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestServeReloadKeysOnSIGHUP: serve with a YAML keys file, rewrite the
// file, send SIGHUP: the new key works, the old one is refused; a file
// that does not parse is logged and leaves the keys in force.
func TestServeReloadKeysOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys.yaml")
	const oldSecret, newSecret = "old-secret-0123456789abcdef", "new-secret-0123456789abcdef"
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(keysFile, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("keys:\n  - name: old\n    secret: " + oldSecret + "\n    scopes: [admin]\n")
	addrs, log := startServeLog(t, "-datastore", "memory", "-keys-file", keysFile, "-access-log")
	sc := pb.NewSchemaServiceClient(dial(t, addrs.grpc))
	call := func(secret string) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
		_, err := sc.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: "definition user {}"})
		return err
	}
	if err := call(oldSecret); err != nil {
		t.Fatalf("the old key before the reload: %v", err)
	}
	if f := log.waitFor(t, "call"); f["caller"] != "old" {
		t.Errorf("access log caller = %q, want old (%v)", f["caller"], f)
	}
	if err := call(newSecret); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the new key before the reload: %v", err)
	}

	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// The new key may check but not write the schema.
	write("keys:\n  - name: new\n    secret: " + newSecret + "\n    scopes: [check, read_schema]\n")
	hup()
	if f := log.waitFor(t, "keys reloaded"); f["keys"] != "1" {
		t.Errorf("reload logged %v", f)
	}
	if err := call(oldSecret); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the old key after the reload: %v", err)
	}
	err := call(newSecret)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "write_schema") {
		t.Errorf("the new key writing the schema: %v; want PERMISSION_DENIED naming write_schema", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+newSecret)
	if _, err := sc.ReadSchema(ctx, &pb.ReadSchemaRequest{}); err != nil {
		t.Errorf("the new key reading the schema: %v", err)
	}

	// A broken file: logged, and the new key stays in force.
	write("keys:\n  - name: broken\n    secret: " + oldSecret + "\n    scopes: [no_such_scope]\n")
	hup()
	f := log.waitFor(t, "SIGHUP: keys not reloaded; the previous keys stay in force")
	if !strings.Contains(f["err"], "no_such_scope") || strings.Contains(f["err"], oldSecret) {
		t.Errorf("the error logged: %q; want it to name the scope and not the secret", f["err"])
	}
	if _, err := sc.ReadSchema(ctx, &pb.ReadSchemaRequest{}); err != nil {
		t.Errorf("the new key after a refused reload: %v", err)
	}
}
