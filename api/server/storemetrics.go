package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pemba-authz/pemba/engine"
)

// storeScrapeTimeout bounds the store calls of one scrape, so a stuck
// store delays /metrics, not blocks it.
const storeScrapeTimeout = 2 * time.Second

// storeCollector exports what every store can tell: its head revision
// and, for stores that report it, the GC horizon and GC counts. Values
// are read from the engine at scrape time.
type storeCollector struct {
	e                                                         *engine.Engine
	up, head, horizon, gcRuns, gcFailed, gcRemoved, gcExpired *prometheus.Desc
}

func newStoreCollector(e *engine.Engine) *storeCollector {
	labels := prometheus.Labels{"store": e.StoreKind()}
	return &storeCollector{
		e:         e,
		up:        prometheus.NewDesc("pemba_store_up", "1 when the store answered this scrape (it read its head revision), else 0.", nil, labels),
		head:      prometheus.NewDesc("pemba_store_head_revision", "Newest committed revision of the store.", nil, labels),
		horizon:   prometheus.NewDesc("pemba_store_gc_horizon_revision", "Oldest revision still readable (advanced by GC runs).", nil, labels),
		gcRuns:    prometheus.NewDesc("pemba_store_gc_runs_total", "GC runs since the store was opened.", nil, labels),
		gcFailed:  prometheus.NewDesc("pemba_store_gc_failures_total", "GC runs that failed.", nil, labels),
		gcRemoved: prometheus.NewDesc("pemba_store_gc_removed_total", "Relationship versions and changelog entries removed by GC.", nil, labels),
		gcExpired: prometheus.NewDesc("pemba_store_gc_expired_removed_total", "Expired relationships removed by GC (also in pemba_store_gc_removed_total).", nil, labels),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.head
	ch <- c.horizon
	ch <- c.gcRuns
	ch <- c.gcFailed
	ch <- c.gcRemoved
	ch <- c.gcExpired
}

// Collect implements prometheus.Collector. A store that fails to answer
// is left out of the scrape rather than failing it.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), storeScrapeTimeout)
	defer cancel()
	up := 0.0
	if rev, err := c.e.Head(ctx); err == nil {
		up = 1
		ch <- prometheus.MustNewConstMetric(c.head, prometheus.GaugeValue, float64(rev))
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	gc := c.e.GCStatus()
	if gc.HasHorizon {
		ch <- prometheus.MustNewConstMetric(c.horizon, prometheus.GaugeValue, float64(gc.Horizon))
	}
	if gc.HasTotals {
		t := gc.Totals
		ch <- prometheus.MustNewConstMetric(c.gcRuns, prometheus.CounterValue, float64(t.Runs))
		ch <- prometheus.MustNewConstMetric(c.gcFailed, prometheus.CounterValue, float64(t.Failures))
		ch <- prometheus.MustNewConstMetric(c.gcRemoved, prometheus.CounterValue, float64(t.Removed))
		ch <- prometheus.MustNewConstMetric(c.gcExpired, prometheus.CounterValue, float64(t.Expired))
	}
}

// registerStoreMetrics registers the collectors of e's store on reg: the
// one above, and the backend's own when it exports one (Pebble's
// compactions, caches, disk usage).
func registerStoreMetrics(reg prometheus.Registerer, e *engine.Engine) error {
	if err := reg.Register(newStoreCollector(e)); err != nil {
		return err
	}
	if src, ok := e.StoreCollector(); ok {
		if c, ok := src.(prometheus.Collector); ok {
			return reg.Register(c)
		}
	}
	return nil
}
