// Package histogram records latency distributions in log-linear buckets, in
// the manner of HDR histograms: every power of two is split into 128 equal
// sub-buckets, so a recorded value is known to within 1/128 (0.8%) of itself
// from 1 ns to the largest int64, in a fixed 59 KiB array.
//
// A Histogram is not safe for concurrent use. The intended pattern is one
// Histogram per worker goroutine, recorded into without locks on the hot
// path, and merged with Merge once the workers are done.
package histogram

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	// subBits is log2 of the sub-buckets per power of two.
	subBits = 7
	// subCount is the number of sub-buckets per power of two.
	subCount = 1 << subBits
	// numBuckets covers every non-negative int64: values below 2*subCount
	// are exact, and each further power of two adds subCount buckets.
	numBuckets = (64 - subBits) * subCount
)

// RelativeError is the largest relative difference between a recorded value
// and the value a quantile reports for it.
const RelativeError = 1.0 / subCount

// Histogram counts non-negative int64 values (nanoseconds, by convention).
// The zero value is empty and ready to use.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	sum    float64 // float: a sum of int64 nanoseconds overflows in hours of ops
	min    int64
	max    int64
}

// bucketOf returns the index of the bucket that holds v (v >= 0).
func bucketOf(v int64) int {
	u := uint64(v)
	if u < 2*subCount {
		return int(u)
	}
	shift := bits.Len64(u) - (subBits + 1)
	return (shift+1)*subCount + int(u>>uint(shift)) - subCount
}

// bounds returns the smallest and largest value that fall in bucket i.
func bounds(i int) (lo, hi int64) {
	if i < 2*subCount {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	m := uint64(i%subCount + subCount)
	lo64 := m << uint(shift)
	return int64(lo64), int64(lo64 + (1 << uint(shift)) - 1)
}

// Record adds one value. Negative values are recorded as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// RecordDuration adds one duration in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min returns the smallest recorded value, exactly (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest recorded value, exactly (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the mean of the recorded values (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns an estimate of the q-quantile (0 <= q <= 1): the midpoint
// of the bucket holding the value of that rank, clamped to [Min, Max], so
// it is within RelativeError of a value that was recorded at that rank.
// Quantile(0) is Min and Quantile(1) is Max. It returns 0 when h is empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	// rank is 1-based: the smallest rank whose cumulative share reaches q.
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bounds(i)
			v := lo + (hi-lo)/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// Summary is a histogram reduced to the figures a report prints, in
// nanoseconds.
type Summary struct {
	Count uint64  `json:"count"`
	Min   int64   `json:"min_ns"`
	Mean  float64 `json:"mean_ns"`
	P50   int64   `json:"p50_ns"`
	P95   int64   `json:"p95_ns"`
	P99   int64   `json:"p99_ns"`
	P999  int64   `json:"p999_ns"`
	Max   int64   `json:"max_ns"`
}

// Summarize returns the standard percentiles of h. They are ordered:
// Min <= P50 <= P95 <= P99 <= P999 <= Max.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count: h.total,
		Min:   h.min,
		Mean:  h.Mean(),
		P50:   h.Quantile(0.50),
		P95:   h.Quantile(0.95),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   h.max,
	}
}

// CDFPoint is one point of a cumulative distribution: the share of the
// recorded values at or below Value (nanoseconds).
type CDFPoint struct {
	Value    int64   `json:"ns"`
	Fraction float64 `json:"fraction"`
}

// CDF returns h's cumulative distribution at the upper bound of each
// non-empty bucket (clamped to Max), thinned to about n points spaced
// evenly on a log scale of the value; the last point (Max, 1) is always
// kept. It returns nil when h is empty.
func (h *Histogram) CDF(n int) []CDFPoint {
	if h.total == 0 {
		return nil
	}
	n = max(n, 2)
	lo := math.Log(float64(max(h.min, 1)))
	step := (math.Log(float64(max(h.max, 1))) - lo) / float64(n-1)
	var (
		out  []CDFPoint
		seen uint64
		next = math.Inf(-1) // the log-value the next kept point must reach
	)
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		_, hi := bounds(i)
		v := min(hi, h.max)
		if seen == h.total {
			return append(out, CDFPoint{v, 1})
		}
		if lv := math.Log(float64(max(v, 1))); lv >= next {
			out = append(out, CDFPoint{v, float64(seen) / float64(h.total)})
			next = lv + step
		}
	}
	return out
}

// liveShift folds a Histogram's buckets into Live's: 16 sub-buckets to
// one, which leaves 8 per power of two (a value is known to 12.5%).
const liveShift = 4

// LiveBuckets is the number of buckets of a Live histogram.
const LiveBuckets = numBuckets >> liveShift

// Live is a coarse histogram that one goroutine records into while
// another reads it: a run's timeline samples its workers' Live
// histograms every interval and subtracts the previous sample. Its
// counts are atomic, so a sample needs no lock on the recording path.
type Live struct {
	counts [LiveBuckets]atomic.Uint64
}

// Record adds one value. Negative values are recorded as 0.
func (l *Live) Record(v int64) {
	l.counts[bucketOf(max(v, 0))>>liveShift].Add(1)
}

// AddTo adds l's counts so far to c.
func (l *Live) AddTo(c *LiveCounts) {
	for i := range l.counts {
		c[i] += l.counts[i].Load()
	}
}

// LiveCounts is a snapshot of one or more Live histograms.
type LiveCounts [LiveBuckets]uint64

// Sub subtracts an earlier snapshot of the same histograms: what was
// recorded between the two.
func (c *LiveCounts) Sub(earlier *LiveCounts) {
	for i := range c {
		c[i] -= earlier[i]
	}
}

// Count returns the number of values counted.
func (c *LiveCounts) Count() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// Quantile returns an estimate of the q-quantile (0 < q <= 1): the
// upper bound of the bucket holding the value of that rank, so within
// 12.5% above a value recorded at that rank. It returns 0 when c is empty.
func (c *LiveCounts) Quantile(q float64) int64 {
	total := c.Count()
	if total == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(total))), 1)
	var seen uint64
	for i, v := range c {
		seen += v
		if seen >= rank {
			_, hi := bounds(i<<liveShift | (1<<liveShift - 1))
			return hi
		}
	}
	return 0
}
