package progress

import (
	"strings"
	"testing"
	"time"
)

// TestPlainLines: away from a terminal a line comes every PlainEvery (by
// the injected clock) and one at the end, with the count, share, rate and
// time left.
func TestPlainLines(t *testing.T) {
	var b strings.Builder
	clock := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	r := New(&b, "importing", Options{Total: 1000, Unit: "relationships", Now: func() time.Time { return clock }})
	r.Add(100) // no time has passed: no line
	clock = clock.Add(PlainEvery)
	r.Add(150)
	clock = clock.Add(PlainEvery)
	r.Add(750)
	r.Finish()
	want := "importing: 250 of 1000 (25%), 25/s, 30s left, 10s elapsed\n" +
		"importing: 1000 of 1000 (100%), 50/s, 20s elapsed\n" +
		"importing: 1000 of 1000 (100%), 50/s, 20s elapsed, done\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	var quiet strings.Builder
	q := New(&quiet, "importing", Options{Now: func() time.Time { return clock }})
	q.Add(5)
	q.Finish()
	if quiet.String() != "" {
		t.Errorf("short work printed %q", quiet.String())
	}
	var nilR *Reporter
	nilR.Add(3) // a nil Reporter does nothing
	nilR.Finish()
}

// TestBar: on a terminal (forced here) the bar draws the description and
// the count, and Finish ends its line.
func TestBar(t *testing.T) {
	var b strings.Builder
	yes := true
	r := New(&b, "exporting", Options{Unit: "relationships", Terminal: &yes})
	r.Add(42)
	r.Finish()
	if out := b.String(); !strings.Contains(out, "exporting") || !strings.Contains(out, "42") || !strings.HasSuffix(out, "\n") {
		t.Errorf("bar output %q", out)
	}
}
