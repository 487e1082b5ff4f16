package store

import (
	"fmt"
	"testing"
)

// TestKMVEstimate checks the distinct-subject sketch of CountStatistics:
// exact below its size, and within 15% of the truth above it (the
// estimator's relative error is about 1/sqrt(256), 6%; the hash is fixed,
// so the test is deterministic).
func TestKMVEstimate(t *testing.T) {
	for _, n := range []int{0, 1, 100, 255, 1000, 20000, 200000} {
		var m kmv
		for range 3 { // duplicates do not count
			for i := range n {
				m.add(hashID(fmt.Sprint("user", i)))
			}
		}
		got := m.estimate()
		if n < kmvSize {
			if got != int64(n) {
				t.Errorf("n=%d: estimate %d, want exact", n, got)
			}
			continue
		}
		if err := float64(got-int64(n)) / float64(n); err < -0.15 || err > 0.15 {
			t.Errorf("n=%d: estimate %d, off by %.0f%%", n, got, 100*err)
		}
	}
}
