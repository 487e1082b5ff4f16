package server

import (
	"strings"
	"testing"
)

// TestStoreMetrics: every store reports its head revision; a store
// without a horizon or a collector of its own (memstore) adds nothing
// else.
func TestStoreMetrics(t *testing.T) {
	f := newFixture(t, Config{})
	f.writeSchema()
	f.write("doc:1#viewer@user:anne")
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
				got[key] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{"pemba_store_head_revision/memory": 2}
	if len(got) != len(want) || got["pemba_store_head_revision/memory"] != 2 {
		t.Errorf("store metrics = %v, want %v", got, want)
	}
}
