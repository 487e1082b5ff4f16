package histogram

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketsAreContiguous(t *testing.T) {
	// Every bucket starts one past the end of the previous one, and every
	// value maps back into the bucket whose bounds contain it.
	prevHi := int64(-1)
	for i := 0; i < numBuckets; i++ {
		lo, hi := bounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		for _, v := range []int64{lo, lo + (hi-lo)/2, hi} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		if hi == math.MaxInt64 {
			if i != numBuckets-1 {
				t.Fatalf("MaxInt64 reached at bucket %d of %d", i, numBuckets)
			}
			return
		}
		prevHi = hi
	}
	t.Fatalf("buckets end at %d, before MaxInt64", prevHi)
}

func TestQuantileAccuracy(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) int64
	}{
		{"uniform small", func(r *rand.Rand) int64 { return r.Int64N(300) }},
		{"uniform micros", func(r *rand.Rand) int64 { return 1000 + r.Int64N(1_000_000) }},
		{"lognormal", func(r *rand.Rand) int64 { return int64(math.Exp(10 + 2*r.NormFloat64())) }},
		{"bimodal", func(r *rand.Rand) int64 {
			if r.IntN(100) < 3 {
				return 50_000_000 + r.Int64N(10_000_000)
			}
			return 20_000 + r.Int64N(5_000)
		}},
		{"constant", func(*rand.Rand) int64 { return 123_456_789 }},
	}
	qs := []float64{0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var h Histogram
			vals := make([]int64, 20_000)
			for i := range vals {
				vals[i] = tc.gen(r)
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range qs {
				rank := int(math.Ceil(q*float64(len(vals)))) - 1
				want := vals[rank]
				got := h.Quantile(q)
				if diff := math.Abs(float64(got - want)); diff > float64(want)*RelativeError+1 {
					t.Errorf("q%v = %d, exact %d: off by %.0f, more than %.2f%%", q, got, want, diff, 100*RelativeError)
				}
			}
			if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Errorf("min/max = %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			var sum float64
			for _, v := range vals {
				sum += float64(v)
			}
			if mean := sum / float64(len(vals)); math.Abs(h.Mean()-mean) > 1e-6*mean+1e-9 {
				t.Errorf("mean = %f, want %f", h.Mean(), mean)
			}
		})
	}
}

func TestMergeEqualsRecordingTogether(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var all, a, b Histogram
	for i := range 10_000 {
		v := r.Int64N(1 << 30)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{}) // merging an empty one changes nothing
	if m.Summarize() != all.Summarize() {
		t.Errorf("merged %+v, want %+v", m.Summarize(), all.Summarize())
	}
}

func TestSummaryOrdered(t *testing.T) {
	tests := []struct {
		name string
		vals []int64
	}{
		{"empty", nil},
		{"one", []int64{42}},
		{"negative clamps to zero", []int64{-5, 3}},
		{"two far apart", []int64{1, 1 << 40}},
		{"huge", []int64{math.MaxInt64, math.MaxInt64 - 1, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tc.vals {
				h.Record(v)
			}
			s := h.Summarize()
			if s.Count != uint64(len(tc.vals)) {
				t.Errorf("count %d, want %d", s.Count, len(tc.vals))
			}
			ordered := []int64{s.Min, s.P50, s.P95, s.P99, s.P999, s.Max}
			if !slices.IsSorted(ordered) {
				t.Errorf("summary not ordered: %+v", s)
			}
		})
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Record(int64(i) * 7919)
	}
}

// TestCDF compares the thinned CDF with the exact share of recorded values
// at or below each point, on random log-uniform data.
func TestCDF(t *testing.T) {
	for _, n := range []int{1, 2, 7, 1000, 100000} {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		var h Histogram
		vals := make([]int64, n)
		for i := range vals {
			vals[i] = int64(math.Exp(rng.Float64() * 20))
			h.Record(vals[i])
		}
		slices.Sort(vals)
		cdf := h.CDF(50)
		if len(cdf) == 0 || len(cdf) > 60 {
			t.Fatalf("n=%d: %d points, want 1..60", n, len(cdf))
		}
		if last := cdf[len(cdf)-1]; last != (CDFPoint{h.Max(), 1}) {
			t.Errorf("n=%d: last point %+v, want {%d 1}", n, last, h.Max())
		}
		for i, p := range cdf {
			if i > 0 && (p.Value <= cdf[i-1].Value || p.Fraction < cdf[i-1].Fraction) {
				t.Fatalf("n=%d: point %d %+v does not follow %+v", n, i, p, cdf[i-1])
			}
			// Exact: the values at or below p.Value (a bucket's upper bound).
			at, _ := slices.BinarySearch(vals, p.Value+1)
			if want := float64(at) / float64(n); math.Abs(p.Fraction-want) > 1e-9 {
				t.Errorf("n=%d: at %d ns fraction %v, want %v", n, p.Value, p.Fraction, want)
			}
		}
	}
	var empty Histogram
	if got := empty.CDF(10); got != nil {
		t.Errorf("empty CDF = %v, want nil", got)
	}
}

// TestLive checks the coarse histogram's counts and quantiles against
// the exact values, and that Sub leaves what was recorded in between.
func TestLive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var l Live
	var before LiveCounts
	for range 500 {
		l.Record(rng.Int64N(1000))
	}
	l.AddTo(&before)
	vals := make([]int64, 5000)
	for i := range vals {
		vals[i] = int64(math.Exp(rng.Float64() * 25))
		l.Record(vals[i])
	}
	var now LiveCounts
	l.AddTo(&now)
	now.Sub(&before)
	if now.Count() != uint64(len(vals)) {
		t.Fatalf("count %d, want %d", now.Count(), len(vals))
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := now.Quantile(q)
		if got < exact || float64(got) > float64(exact)*1.125+16 {
			t.Errorf("q=%v: %d, want within [%d, %d*1.125]", q, got, exact, exact)
		}
	}
	var empty LiveCounts
	if empty.Quantile(0.5) != 0 {
		t.Error("empty quantile not 0")
	}
}
