package memstore_test

import (
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/storetest"
)

func newStore(t testing.TB, cfg storetest.Config) store.Store {
	st := memstore.New(memstore.Options{GCWindow: cfg.GCWindow, Now: cfg.Now, MaxBatchOps: cfg.MaxBatchOps})
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newStore)
}
