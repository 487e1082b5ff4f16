package pgstore

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pemba-authz/pemba/engine/store"
)

// scrapeTimeout bounds the queries of one scrape (the replicas' heads),
// so a stuck server delays /metrics instead of blocking it.
const scrapeTimeout = 2 * time.Second

// Collector returns a Prometheus collector over the PostgreSQL store: the
// connection pools (the primary's and each read replica's) and each
// replica's lag behind the primary in revisions, read at scrape time.
// Replicas are labelled by their position in Options.ReadReplicas, never
// by URI (which may hold a password). The server discovers it by type
// assertion, so that only this package imports pgx.
func (s *Store) Collector() prometheus.Collector {
	pool := []string{"pool"}
	rep := []string{"replica"}
	return &collector{
		s:           s,
		acquired:    prometheus.NewDesc("pemba_postgres_pool_acquired_connections", "Connections of the pool in use now.", pool, nil),
		idle:        prometheus.NewDesc("pemba_postgres_pool_idle_connections", "Idle connections of the pool.", pool, nil),
		max:         prometheus.NewDesc("pemba_postgres_pool_max_connections", "The pool's size limit.", pool, nil),
		emptyWaits:  prometheus.NewDesc("pemba_postgres_pool_empty_acquires_total", "Acquires that waited because every connection was in use.", pool, nil),
		waitSeconds: prometheus.NewDesc("pemba_postgres_pool_empty_acquire_wait_seconds_total", "Time spent waiting for a connection when every one was in use.", pool, nil),
		replicaUp:   prometheus.NewDesc("pemba_postgres_replica_up", "1 when the read replica answered this scrape, else 0.", rep, nil),
		replicaLag:  prometheus.NewDesc("pemba_postgres_replica_lag_revisions", "Revisions the read replica has not replayed yet (the primary's head minus the replica's).", rep, nil),
	}
}

type collector struct {
	s                                                                   *Store
	acquired, idle, max, emptyWaits, waitSeconds, replicaUp, replicaLag *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.max, c.emptyWaits, c.waitSeconds, c.replicaUp, c.replicaLag} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. When the primary does not
// answer, the replicas' lag is left out (their up gauge still reports).
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.pool(ch, "primary", c.s.pool)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var head int64
	headErr := c.s.pool.QueryRow(ctx, selectHead).Scan(&head)
	for i, r := range c.s.replicas {
		name := strconv.Itoa(i)
		c.pool(ch, "replica"+name, r.pool)
		var rh int64
		up := 0.0
		if err := r.pool.QueryRow(ctx, selectHead).Scan(&rh); err == nil {
			up = 1
			advance(&r.head, store.Revision(rh))
			if headErr == nil {
				ch <- prometheus.MustNewConstMetric(c.replicaLag, prometheus.GaugeValue, float64(max(head-rh, 0)), name)
			}
		}
		ch <- prometheus.MustNewConstMetric(c.replicaUp, prometheus.GaugeValue, up, name)
	}
}

func (c *collector) pool(ch chan<- prometheus.Metric, name string, p *pgxpool.Pool) {
	st := p.Stat()
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(st.AcquiredConns()), name)
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(st.IdleConns()), name)
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.MaxConns()), name)
	ch <- prometheus.MustNewConstMetric(c.emptyWaits, prometheus.CounterValue, float64(st.EmptyAcquireCount()), name)
	ch <- prometheus.MustNewConstMetric(c.waitSeconds, prometheus.CounterValue, st.EmptyAcquireWaitTime().Seconds(), name)
}
