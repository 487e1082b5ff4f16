package changefeed

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
)

// log is a changelog in memory whose commits wake watchers the way the
// backends do: by closing and replacing a channel.
type log struct {
	mu     sync.Mutex
	sets   []store.ChangeSet // sets[i].Revision == i+1
	notify chan struct{}
	reads  []store.Revision // the after of every Read
	fail   error
}

func newLog(n int) *log {
	l := &log{notify: make(chan struct{})}
	for range n {
		l.sets = append(l.sets, store.ChangeSet{Revision: store.Revision(len(l.sets) + 1)})
	}
	return l
}

func (l *log) wake() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notify
}

func (l *log) read(ctx context.Context, after store.Revision, max int) ([]store.ChangeSet, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads = append(l.reads, after)
	if l.fail != nil {
		return nil, l.fail
	}
	if int(after) >= len(l.sets) {
		return nil, nil
	}
	return append([]store.ChangeSet(nil), l.sets[after:min(len(l.sets), int(after)+max)]...), nil
}

// commit appends a change set; wakeUp says whether it wakes watchers.
func (l *log) commit(wakeUp bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sets = append(l.sets, store.ChangeSet{Revision: store.Revision(len(l.sets) + 1)})
	if wakeUp {
		close(l.notify)
		l.notify = make(chan struct{})
	}
}

// waitReads waits until Read has been called n times.
func (l *log) waitReads(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		got := len(l.reads)
		l.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reads, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (l *log) source(closed <-chan struct{}, poll time.Duration) Source {
	return Source{Wake: l.wake, Read: l.read, Batch: 2, Closed: closed, Poll: poll}
}

// next pulls one item from a running Watch.
type result struct {
	cs  store.ChangeSet
	err error
}

func start(ctx context.Context, after store.Revision, src Source) <-chan result {
	out := make(chan result)
	go func() {
		defer close(out)
		for cs, err := range Watch(ctx, after, src) {
			out <- result{cs, err}
		}
	}()
	return out
}

func expect(t *testing.T, out <-chan result, revs ...store.Revision) {
	t.Helper()
	for _, want := range revs {
		select {
		case r := <-out:
			if r.err != nil || r.cs.Revision != want {
				t.Fatalf("got revision %d, %v; want %d", r.cs.Revision, r.err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no change set %d", want)
		}
	}
}

func expectEnd(t *testing.T, out <-chan result, want error) {
	t.Helper()
	select {
	case r := <-out:
		if !errors.Is(r.err, want) {
			t.Fatalf("got %+v, want the error %v", r, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no error %v", want)
	}
	if r, ok := <-out; ok {
		t.Fatalf("sequence went on after the error: %+v", r)
	}
}

func TestBacklogInBatchesThenWake(t *testing.T) {
	l := newLog(5)
	ctx, cancel := context.WithCancel(context.Background())
	out := start(ctx, 1, l.source(nil, 0))
	expect(t, out, 2, 3, 4, 5)
	l.waitReads(t, 3) // the empty read: the watcher waits now
	l.commit(true)
	expect(t, out, 6)
	l.waitReads(t, 5) // the read after 6 finds nothing; only then cancel
	cancel()
	expectEnd(t, out, context.Canceled)
	l.mu.Lock()
	defer l.mu.Unlock()
	// Batches of 2 from the cursor: 1 -> (2,3), 3 -> (4,5), 5 -> nothing, wait, 5 -> (6), 6 -> nothing.
	want := []store.Revision{1, 3, 5, 5, 6}
	if len(l.reads) < len(want) {
		t.Fatalf("reads after %v, want %v", l.reads, want)
	}
	for i, r := range want {
		if l.reads[i] != r {
			t.Fatalf("reads after %v, want %v", l.reads, want)
		}
	}
}

func TestStopsWhenConsumerBreaks(t *testing.T) {
	l := newLog(3)
	n := 0
	for _, err := range Watch(context.Background(), 0, l.source(nil, 0)) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 || len(l.reads) != 1 {
		t.Errorf("yielded %d, read %d times; want 1, 1", n, len(l.reads))
	}
}

func TestReadErrorEnds(t *testing.T) {
	l := newLog(0)
	l.fail = &store.CompactedError{Requested: 1, Horizon: 5}
	expectEnd(t, start(context.Background(), 1, l.source(nil, 0)), store.ErrRevisionCompacted)
}

func TestDoneContextEndsBeforeReading(t *testing.T) {
	l := newLog(3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	expectEnd(t, start(ctx, 0, l.source(nil, 0)), context.Canceled)
	if len(l.reads) != 0 {
		t.Errorf("read %d times with a done context", len(l.reads))
	}
}

func TestCloseEnds(t *testing.T) {
	l := newLog(1)
	closed := make(chan struct{})
	out := start(context.Background(), 0, l.source(closed, 0))
	expect(t, out, 1)
	close(closed)
	expectEnd(t, out, store.ErrClosed)
}

func TestPollFindsCommitsWithoutWake(t *testing.T) {
	l := newLog(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := start(ctx, 0, l.source(nil, 10*time.Millisecond))
	l.waitReads(t, 1)
	l.commit(false)
	expect(t, out, 1)
}

func TestNoPollWaitsForWake(t *testing.T) {
	l := newLog(0)
	ctx, cancel := context.WithCancel(context.Background())
	out := start(ctx, 0, l.source(nil, 0))
	l.waitReads(t, 1)
	l.commit(false)
	select {
	case r := <-out:
		t.Fatalf("got %+v without a wake-up or polling", r)
	case <-time.After(50 * time.Millisecond):
	}
	l.commit(true)
	expect(t, out, 1, 2)
	cancel()
	expectEnd(t, out, context.Canceled)
}

func TestSignal(t *testing.T) {
	var s Signal
	s.Broadcast() // nobody waits: nothing to wake, no panic
	before := s.Chan()
	if s.Chan() != before {
		t.Fatal("Chan changed without a Broadcast")
	}
	select {
	case <-before:
		t.Fatal("channel closed before Broadcast")
	default:
	}
	s.Broadcast()
	select {
	case <-before:
	default:
		t.Fatal("Broadcast did not close the channel taken before it")
	}
	after := s.Chan()
	select {
	case <-after:
		t.Fatal("the channel taken after Broadcast is closed")
	default:
	}
	s.Broadcast()
	s.Broadcast()
	select {
	case <-after:
	default:
		t.Fatal("second Broadcast did not close the newer channel")
	}
}
