package pebblestore

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB, cfg storetest.Config) store.Store {
		st, err := Open("", Options{
			GCWindow:       cfg.GCWindow,
			GCInterval:     -1,
			Now:            cfg.Now,
			MaxBatchOps:    cfg.MaxBatchOps,
			AuditRetention: cfg.AuditRetention,
			FS:             vfs.NewMem(),
			CacheSize:      1 << 20,
			Logger:         quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// TestAuditTamper edits audit entries in the Pebble database directly, as
// someone with the data directory could.
func TestAuditTamper(t *testing.T) {
	factory := func(t testing.TB, cfg storetest.Config) store.Store {
		st, err := Open("", Options{GCInterval: -1, Now: cfg.Now, FS: vfs.NewMem(), CacheSize: 1 << 20, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	storetest.RunAuditTamper(t, factory, func(t testing.TB, st store.Store, rev store.Revision, edit func([]byte) []byte) {
		if err := st.(*Store).TamperAudit(rev, edit); err != nil {
			t.Fatal(err)
		}
	})
}
