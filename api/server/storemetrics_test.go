package server

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/store/storetest"
)

// TestStoreMetrics: every store reports its head revision, and one that
// counts its GC runs (memstore does) reports them; a store without a
// horizon or a collector of its own adds nothing else.
func TestStoreMetrics(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	st := memstore.New(memstore.Options{Now: func() time.Time { return t0 }})
	f := newFixtureOn(t, st, Config{})
	f.writeSchema()
	f.write("doc:1#viewer@user:anne")
	// A grant that expired an hour before it was written, straight into
	// the store: GC a window later removes it.
	expired := storetest.MustParse(t, "doc:2#viewer@user:anne")[0]
	expired.Expiration = t0.Add(-time.Hour)
	storetest.MustTouch(t, st, expired)
	if _, err := st.GC(context.Background(), t0.Add(memstore.DefaultGCWindow)); err != nil {
		t.Fatal(err)
	}
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			if strings.HasPrefix(mf.GetName(), "pemba_store_") || strings.HasPrefix(mf.GetName(), "pemba_pebble_") {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += "/" + l.GetValue()
				}
				got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"pemba_store_up/memory":                       1,
		"pemba_store_head_revision/memory":            3,
		"pemba_store_gc_runs_total/memory":            1,
		"pemba_store_gc_failures_total/memory":        0,
		"pemba_store_gc_removed_total/memory":         4, // change sets 1 to 3 and the expired grant
		"pemba_store_gc_expired_removed_total/memory": 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("store metrics = %v, want %v", got, want)
	}
}
