package pebblestore

import (
	"log/slog"
	"os"
	"strconv"
	"testing"
)

// quietLogger drops log output in tests.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// envInt reads a positive integer from the environment, or def.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
