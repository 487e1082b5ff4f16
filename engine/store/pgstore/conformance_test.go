package pgstore

import (
	"context"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/storetest"
)

func TestConformance(t *testing.T) {
	serverURI(t)
	storetest.Run(t, func(t testing.TB, cfg storetest.Config) store.Store {
		st, _ := openTest(t, Options{GCWindow: cfg.GCWindow, Now: cfg.Now, MaxBatchOps: cfg.MaxBatchOps, AuditRetention: cfg.AuditRetention})
		return st
	})
}

// TestAuditTamper edits audit rows with SQL, as someone with access to the
// database could.
func TestAuditTamper(t *testing.T) {
	serverURI(t)
	factory := func(t testing.TB, cfg storetest.Config) store.Store {
		st, _ := openTest(t, Options{Now: cfg.Now})
		return st
	}
	storetest.RunAuditTamper(t, factory, func(t testing.TB, st store.Store, rev store.Revision, edit func([]byte) []byte) {
		s := st.(*Store)
		ctx := context.Background()
		var enc []byte
		if err := s.pool.QueryRow(ctx, `SELECT entry FROM pemba_audit WHERE revision = $1`, int64(rev)).Scan(&enc); err != nil {
			t.Fatal(err)
		}
		if _, err := s.pool.Exec(ctx, `UPDATE pemba_audit SET entry = $1 WHERE revision = $2`, edit(enc), int64(rev)); err != nil {
			t.Fatal(err)
		}
	})
}
