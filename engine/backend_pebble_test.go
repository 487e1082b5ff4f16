package engine_test

import (
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
)

// pebbleBackend opens a Pebble store in a temporary directory for the
// domain test. Durability is relaxed: the test does not crash the machine.
func pebbleBackend() backend {
	return backend{"pebblestore", func(t *testing.T, now func() time.Time) store.Store {
		st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{Now: now, GCInterval: -1, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}}
}
