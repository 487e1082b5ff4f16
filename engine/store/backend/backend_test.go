package backend_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/backend"
	"github.com/pemba-authz/pemba/engine/store/storetest"
)

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, o := range []backend.Options{
		{Kind: "mysql"},
		{Kind: ""},
		{Kind: backend.Pebble},
		{Kind: backend.Postgres},
	} {
		st, err := backend.Open(t.Context(), o)
		if !errors.Is(err, backend.ErrUsage) {
			t.Errorf("Open(%+v) = %v, %v; want ErrUsage", o, st, err)
		}
	}
}

func TestOpenEachKind(t *testing.T) {
	for _, o := range []backend.Options{
		{Kind: backend.Memory},
		{Kind: backend.Pebble, Dir: t.TempDir()},
	} {
		st, err := backend.Open(t.Context(), o)
		if err != nil {
			t.Fatalf("Open(%+v): %v", o, err)
		}
		if st.Kind() != o.Kind {
			t.Errorf("Open(%+v) opened a %q store", o, st.Kind())
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditRetention: Options.AuditRetention reaches every backend's GC.
func TestAuditRetention(t *testing.T) {
	for _, kind := range []string{backend.Memory, backend.Pebble} {
		t.Run(kind, func(t *testing.T) {
			clock := storetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			o := backend.Options{Kind: kind, Now: clock.Now, AuditRetention: time.Hour}
			if kind == backend.Pebble {
				o.Dir = t.TempDir()
				o.Pebble.GCInterval = -1
			}
			st, err := backend.Open(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for _, s := range []string{"doc:1#viewer@user:a", "doc:2#viewer@user:a", "doc:3#viewer@user:a"} {
				storetest.MustTouch(t, st, storetest.MustParse(t, s)[0])
				clock.Advance(time.Hour)
			}
			// At 3h: entries of 0h and 1h are older than the hour kept;
			// 2h is not.
			stats, err := st.(store.GarbageCollector).GC(t.Context(), clock.Now())
			if err != nil || stats.AuditPruned != 2 {
				t.Errorf("GC = %+v, %v; want 2 audit entries pruned", stats, err)
			}
		})
	}
}
