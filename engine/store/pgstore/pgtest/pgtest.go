// Package pgtest gives tests throwaway databases on a real PostgreSQL
// server: the one named by PEMBA_TEST_POSTGRES_URI, which .ci/run starts.
// Without it a test fails under CI=true and is skipped elsewhere, so the
// PostgreSQL tests never skip themselves in CI.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ServerEnv names the PostgreSQL server the tests create databases on.
const ServerEnv = "PEMBA_TEST_POSTGRES_URI"

// ServerURI returns the test server's URI. Without one the test fails in
// CI and is skipped elsewhere.
func ServerURI(t testing.TB) string {
	t.Helper()
	if uri := os.Getenv(ServerEnv); uri != "" {
		return uri
	}
	const how = ServerEnv + " is not set: run the tests with throwaway PostgreSQL clusters, started the way .ci/run starts them:\n" +
		"\tscripts/with-postgres.sh go test ./...\n" +
		"or export it (a superuser URI) to use a server of your own"
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	t.Skip(how)
	return ""
}

// Restart tests take down a server: they get their own cluster, named by
// these two variables (.ci/run sets both).
const (
	// RestartServerEnv is a superuser URI of a cluster that only the
	// restart tests use.
	RestartServerEnv = "PEMBA_TEST_POSTGRES_RESTART_URI"
	// RestartCmdEnv is a shell command that restarts that cluster and
	// waits until it accepts connections again.
	RestartCmdEnv = "PEMBA_TEST_POSTGRES_RESTART_CMD"
)

// RestartableServer returns the restartable cluster's URI and restart
// command. Without them the test fails in CI and is skipped elsewhere.
func RestartableServer(t testing.TB) (uri, restartCmd string) {
	t.Helper()
	uri, restartCmd = os.Getenv(RestartServerEnv), os.Getenv(RestartCmdEnv)
	if uri != "" && restartCmd != "" {
		return uri, restartCmd
	}
	const how = RestartServerEnv + " and " + RestartCmdEnv + " are not both set: run the tests with throwaway PostgreSQL clusters, started the way .ci/run starts them:\n" +
		"\tscripts/with-postgres.sh go test ./...\n" +
		"or export them: a superuser URI of a cluster nothing else uses, and a shell command that restarts it and waits until it accepts connections"
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	t.Skip(how)
	return "", ""
}

// NewDatabase creates an empty database with a random name on the test
// server, drops it when the test ends, and returns its URI and name.
func NewDatabase(t testing.TB) (uri, name string) {
	t.Helper()
	return NewDatabaseOn(t, ServerURI(t))
}

// NewDatabaseOn is NewDatabase on the server named by the superuser URI
// server.
func NewDatabaseOn(t testing.TB, server string) (uri, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer admin.Close(context.Background())
	var raw [6]byte
	_, _ = rand.Read(raw[:])
	name = "pemba_test_" + hex.EncodeToString(raw[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return WithDatabase(server, name), name
}

// WithDatabase returns uri with its database replaced by name. It accepts
// URLs and key=value strings.
func WithDatabase(uri, name string) string {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return uri + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}
