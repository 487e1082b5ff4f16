package pgstore

import (
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/storetest"
)

func TestConformance(t *testing.T) {
	serverURI(t)
	storetest.Run(t, func(t testing.TB, cfg storetest.Config) store.Store {
		st, _ := openTest(t, Options{GCWindow: cfg.GCWindow, Now: cfg.Now, MaxBatchOps: cfg.MaxBatchOps})
		return st
	})
}
