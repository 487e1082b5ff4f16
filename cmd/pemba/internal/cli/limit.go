package cli

import (
	"errors"
	"fmt"
)

// errLimitReached stops reading a stream at a result beyond --limit.
var errLimitReached = errors.New("cli: --limit reached")

// limiter pages a listing that the user may bound with --limit. Without a
// limit every request asks for everything the page size allows and the
// listing ends only when a request comes back short, so nothing is cut.
// With one, the last request asks for one result more than is still
// wanted: receiving it tells a listing that stopped at the user's limit
// (and says so) from one that simply had that many results.
type limiter struct {
	limit int  // the user's --limit; 0: none
	n     int  // results printed
	more  bool // a result beyond the limit arrived
}

// size is the limit of the next request: page (0: unbounded), or fewer
// when the user's limit is near.
func (l *limiter) size(page int) int {
	if l.limit == 0 {
		return page
	}
	left := l.limit - l.n
	if page > 0 && left >= page {
		return page
	}
	return left + 1 // one more, to learn whether more exist
}

// take reports whether a received result is to be printed, counting it;
// false means it is beyond the user's limit, and the listing stops.
func (l *limiter) take() bool {
	if l.limit > 0 && l.n == l.limit {
		l.more = true
		return false
	}
	l.n++
	return true
}

// done reports whether the listing is complete after a request of size
// that returned got results.
func (l *limiter) done(size, got int) bool {
	return l.more || size == 0 || got < size
}

// notice says that the listing stopped at the user's limit ("" when it
// did not).
func (l *limiter) notice(what string) string {
	if !l.more {
		return ""
	}
	return fmt.Sprintf("stopped at --limit %d: more %s match (raise --limit, or drop it to list them all)\n", l.limit, what)
}
