package store

import (
	"fmt"
	"reflect"
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

// TestStatisticsEncoding round-trips Statistics through its encoding.
func TestStatisticsEncoding(t *testing.T) {
	st := &Statistics{Revision: 42, Total: 7,
		Resources: map[RelationKind]Count{{"doc", "viewer"}: {5, 2}, {"group", "member"}: {2, 1}},
		Subjects:  map[RelationKind]Count{{"user", "..."}: {6, 4}, {"group", "member"}: {1, 1}}}
	got, err := DecodeStatistics(EncodeStatistics(st))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("decoded %+v, want %+v", got, st)
	}
	if _, err := DecodeStatistics([]byte("{")); err == nil {
		t.Error("decoding garbage: no error")
	}
}
