package engine

import (
	"context"
	"sync"
	"sync/atomic"
)

// soloJob runs an engine's background work of one kind one run at a
// time (the compaction after imports, the loads of closures into memory),
// lets callers wait for the run, and lets Close stop new runs and wait for
// the last. The zero value is ready to use.
type soloJob struct {
	busy atomic.Bool // a run is going, for callers that must not lock

	mu      sync.Mutex
	running bool          // a run is going
	closed  bool          // set by close: no run starts after it
	idle    chan struct{} // closed when the run that is going ends
	wg      sync.WaitGroup
}

// start runs fn in a new goroutine unless a run is going or the job is
// closed, and reports whether it did. ok, when not nil, is asked first,
// under the job's lock: the run starts only if it says so (and may
// update the caller's state that decides the next runs).
func (j *soloJob) start(ok func() bool, fn func()) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running || j.closed || (ok != nil && !ok()) {
		return false
	}
	j.running = true
	j.busy.Store(true)
	j.idle = make(chan struct{})
	j.wg.Add(1)
	go func() {
		defer j.end()
		fn()
	}()
	return true
}

// end marks the run that was going as ended.
func (j *soloJob) end() {
	j.mu.Lock()
	j.running = false
	j.busy.Store(false)
	close(j.idle)
	j.mu.Unlock()
	j.wg.Done()
}

// close stops runs from starting, calls cancel (when not nil) to cancel
// the one that is going, and waits for it.
func (j *soloJob) close(cancel func()) {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	j.wg.Wait()
}

// wait waits until no run is going, or ctx is done.
func (j *soloJob) wait(ctx context.Context) error {
	j.mu.Lock()
	idle, running := j.idle, j.running
	j.mu.Unlock()
	if !running {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
