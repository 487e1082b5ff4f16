package pebblestore

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector over Pebble's own metrics
// (compactions, flushes, read amplification, block cache, memtables, disk
// usage). Values are read at
// scrape time. The server discovers it by type assertion, so that only
// this package imports Pebble.
func (s *Store) Collector() prometheus.Collector {
	return &metricsCollector{s: s, d: newCollectorDescs()}
}

// collectorDescs are the descriptions of every metric the collector emits.
type collectorDescs struct {
	compactions, compactDebt, compactInProgress, flushes, readAmp *prometheus.Desc
	cacheHits, cacheMisses, cacheBytes, cacheCount                *prometheus.Desc
	memtableBytes, memtables, diskBytes, sstables                 *prometheus.Desc
}

func newCollectorDescs() collectorDescs {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("pemba_pebble_"+name, help, nil, nil)
	}
	return collectorDescs{
		compactions:       d("compactions_total", "Compactions Pebble has run since the store opened."),
		compactDebt:       d("compaction_debt_bytes", "Bytes Pebble estimates it must compact to reach a stable LSM shape."),
		compactInProgress: d("compactions_in_progress", "Compactions running now."),
		flushes:           d("flushes_total", "Memtable flushes since the store opened."),
		readAmp:           d("read_amplification", "Sublevels and levels a point read may consult (L0 sublevels + non-empty levels)."),
		cacheHits:         d("block_cache_hits_total", "Block cache hits."),
		cacheMisses:       d("block_cache_misses_total", "Block cache misses."),
		cacheBytes:        d("block_cache_bytes", "Bytes held by the block cache."),
		cacheCount:        d("block_cache_blocks", "Blocks held by the block cache."),
		memtableBytes:     d("memtable_bytes", "Bytes allocated by memtables (live and being flushed)."),
		memtables:         d("memtables", "Memtables (live and being flushed)."),
		diskBytes:         d("disk_usage_bytes", "Disk space used by the store (sstables, WAL, manifests, obsolete files not yet deleted)."),
		sstables:          d("sstables", "Live sstables over all levels."),
	}
}

type metricsCollector struct {
	s *Store
	d collectorDescs
}

func (c *metricsCollector) all() []*prometheus.Desc {
	d := c.d
	return []*prometheus.Desc{d.compactions, d.compactDebt, d.compactInProgress, d.flushes, d.readAmp,
		d.cacheHits, d.cacheMisses, d.cacheBytes, d.cacheCount,
		d.memtableBytes, d.memtables, d.diskBytes, d.sstables}
}

// Describe implements prometheus.Collector.
func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.all() {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A closed store emits nothing.
func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	if err := c.s.acquire(); err != nil {
		return
	}
	defer c.s.release()
	m := c.s.db.Metrics()
	var tables int64
	for _, l := range m.Levels {
		tables += l.TablesCount
	}
	d := c.d
	emit := func(desc *prometheus.Desc, t prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, t, v)
	}
	emit(d.compactions, prometheus.CounterValue, float64(m.Compact.Count))
	emit(d.compactDebt, prometheus.GaugeValue, float64(m.Compact.EstimatedDebt))
	emit(d.compactInProgress, prometheus.GaugeValue, float64(m.Compact.NumInProgress))
	emit(d.flushes, prometheus.CounterValue, float64(m.Flush.Count))
	emit(d.readAmp, prometheus.GaugeValue, float64(m.ReadAmp()))
	emit(d.cacheHits, prometheus.CounterValue, float64(m.BlockCache.Hits))
	emit(d.cacheMisses, prometheus.CounterValue, float64(m.BlockCache.Misses))
	emit(d.cacheBytes, prometheus.GaugeValue, float64(m.BlockCache.Size))
	emit(d.cacheCount, prometheus.GaugeValue, float64(m.BlockCache.Count))
	emit(d.memtableBytes, prometheus.GaugeValue, float64(m.MemTable.Size))
	emit(d.memtables, prometheus.GaugeValue, float64(m.MemTable.Count))
	emit(d.diskBytes, prometheus.GaugeValue, float64(m.DiskSpaceUsage()))
	emit(d.sstables, prometheus.GaugeValue, float64(tables))
}
