// Package progress shows how far long work (an import, an export, a
// benchmark's load, a backup) has come: on a terminal, a bar with the
// count, the rate and the time left (github.com/schollz/progressbar);
// elsewhere (a log file, a pipe, CI), a plain line every interval and one
// at the end, so that logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// PlainEvery is how often a Reporter writing to something other than a
// terminal prints a line.
const PlainEvery = 10 * time.Second

// Reporter counts units of work done and shows them. It is safe for
// concurrent use. A nil *Reporter does nothing, so callers need not check
// whether progress was asked for.
type Reporter struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar // on a terminal
	w     io.Writer                // plain lines otherwise
	what  string
	total int64
	done  int64
	start time.Time
	last  time.Time
	now   func() time.Time
}

// Options configure a Reporter.
type Options struct {
	// Total is the amount of work when known (0: unknown; the bar then
	// shows the count and rate without an end).
	Total int64
	// Unit names one unit of work in the rate ("relationships").
	Unit string
	// Terminal forces the bar (true) or plain lines (false); nil decides
	// from w (a terminal's file descriptor gets the bar).
	Terminal *bool
	// Now is the clock of the plain lines' cadence (nil: time.Now).
	Now func() time.Time
}

// New starts reporting work described by what ("importing") on w.
func New(w io.Writer, what string, o Options) *Reporter {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	r := &Reporter{w: w, what: what, total: o.Total, now: now}
	r.start, r.last = now(), now()
	tty := isTerminal(w)
	if o.Terminal != nil {
		tty = *o.Terminal
	}
	if tty {
		max := o.Total
		if max <= 0 {
			max = -1 // a spinner with a count
		}
		r.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(o.Unit),
			progressbar.OptionSetPredictTime(o.Total > 0),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return r
}

// isTerminal reports whether w writes to a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Add counts n more units done.
func (r *Reporter) Add(n int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += int64(n)
	if r.bar != nil {
		r.bar.Add(n)
		return
	}
	if now := r.now(); now.Sub(r.last) >= PlainEvery {
		r.last = now
		fmt.Fprintf(r.w, "%s: %s\n", r.what, r.status(now))
	}
}

// status is the plain line's figures at now.
func (r *Reporter) status(now time.Time) string {
	elapsed := now.Sub(r.start)
	s := fmt.Sprintf("%d", r.done)
	if r.total > 0 {
		s += fmt.Sprintf(" of %d (%.0f%%)", r.total, 100*float64(r.done)/float64(r.total))
	}
	if secs := elapsed.Seconds(); secs > 0 {
		rate := float64(r.done) / secs
		s += fmt.Sprintf(", %.0f/s", rate)
		if r.total > r.done && rate > 0 {
			s += fmt.Sprintf(", %s left", (time.Duration(float64(r.total-r.done) / rate * float64(time.Second))).Round(time.Second))
		}
	}
	return s + fmt.Sprintf(", %s elapsed", elapsed.Round(time.Millisecond))
}

// Finish ends the report: the bar is completed, or, when plain lines were
// printed, a last one says how much was done in how long (work too short
// for a line stays silent: the caller's own summary says enough).
func (r *Reporter) Finish() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		r.bar.Finish()
		return
	}
	if r.last.After(r.start) {
		fmt.Fprintf(r.w, "%s: %s, done\n", r.what, r.status(r.now()))
	}
}
