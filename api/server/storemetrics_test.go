package server

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// TestStoreMetrics: every store reports its head revision, and one that
// counts its GC runs (memstore does) reports them; a store without a
// horizon or a collector of its own adds nothing else.
func TestStoreMetrics(t *testing.T) {
	st := memstore.New(memstore.Options{})
	f := newFixtureOn(t, st, Config{})
	f.writeSchema()
	f.write("doc:1#viewer@user:anne")
	if _, err := st.GC(context.Background(), time.Now()); err != nil {
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
		"pemba_store_head_revision/memory":     2,
		"pemba_store_gc_runs_total/memory":     1,
		"pemba_store_gc_failures_total/memory": 0,
		"pemba_store_gc_removed_total/memory":  0,
	}
	if !maps.Equal(got, want) {
		t.Errorf("store metrics = %v, want %v", got, want)
	}
}
