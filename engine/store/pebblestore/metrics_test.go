package pebblestore

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// count gathers reg and counts the samples.
func count(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	n := 0
	for _, mf := range families {
		n += len(mf.GetMetric())
	}
	return n
}

// TestCollector: the collector describes what it collects, passes the
// registry's consistency checks, and emits nothing once the store is
// closed.
func TestCollector(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Collector()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if n, want := count(t, reg), len(c.(*metricsCollector).all()); n != want {
		t.Errorf("collected %d metrics, want %d", n, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := count(t, reg); n != 0 {
		t.Errorf("closed store: collected %d metrics, want 0", n)
	}
}
