package changefeed

import "sync"

// Signal wakes watchers on commits: Chan returns a channel that the next
// Broadcast closes. A watcher takes the channel before it reads the
// changelog, so a commit between its read and its wait still wakes it.
// The zero value is ready to use; a Signal must not be copied.
type Signal struct {
	mu sync.Mutex
	ch chan struct{} // nil until a watcher asks for it
}

// Chan returns the channel that the next Broadcast closes.
func (s *Signal) Chan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Broadcast wakes every watcher that took Chan before it.
func (s *Signal) Broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
