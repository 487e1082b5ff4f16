package engine_test

import (
	"context"
	"errors"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
)

// permState is a consumer's accumulated view of a permission: the answer
// of each (resource, user) over the test's universe of users.
type permState map[resultKey]engine.Permissionship

// apply applies one event. Within a step a resource's wildcard event comes
// first; the users it excludes get events of their own when they changed.
func (s permState) apply(ev engine.PermissionEvent, users []string) {
	if ev.Subject.ID != "*" {
		s.set(resultKey{ev.Resource.ID, ev.Subject.ID}, ev.After)
		return
	}
	for _, u := range users {
		if !slices.Contains(ev.ExcludedIDs, u) {
			s.set(resultKey{ev.Resource.ID, u}, ev.After)
		}
	}
}

func (s permState) set(k resultKey, p engine.Permissionship) {
	if p == engine.NoPermission {
		delete(s, k)
	} else {
		s[k] = p
	}
}

// consumer pulls a permission watch.
type consumer struct {
	t     *testing.T
	next  func() (engine.PermissionEvent, error, bool)
	stop  func()
	state permState
	users []string
	last  engine.PermissionEvent // the last checkpoint applied
	seen  int                    // events applied
	byExp int                    // of which caused by expiry
}

func (f *diffFixture) subscribe(t *testing.T, req engine.PermissionWatchRequest, state permState) *consumer {
	ctx, cancel := context.WithCancel(f.ctx)
	req.Poll = time.Millisecond // the clock decides what expires; the poll only when to look
	next, stop := iter.Pull2(f.eng.WatchPermissions(ctx, req))
	c := &consumer{t: t, next: next, stop: func() { stop(); cancel() }, state: state, users: append(slices.Clone(f.world.users), "nobody")}
	t.Cleanup(c.stop)
	return c
}

// until applies events up to the checkpoint at zookie z and time at.
func (c *consumer) until(z string, at time.Time) {
	c.t.Helper()
	for {
		ev, err, ok := c.next()
		if !ok || err != nil {
			c.t.Fatalf("watch ended before checkpoint: %v", err)
		}
		if !ev.Checkpoint {
			c.seen++
			if ev.Cause == engine.CauseExpiry {
				c.byExp++
			}
			c.state.apply(ev, c.users)
			continue
		}
		c.last = ev
		if ev.Zookie == z && ev.Time.Equal(at) {
			return
		}
	}
}

// brute is the permission of every (resource, user) at zookie z, checked.
func (f *diffFixture) brute(z string, sc engine.PermissionScope) permState {
	f.t.Helper()
	out := permState{}
	n, prefix := f.world.docs, "d"
	if sc.ResourceType == "folder" {
		n, prefix = f.world.dirs, "f"
	}
	for i := range n {
		for _, u := range append(slices.Clone(f.world.users), "nobody") {
			q := engine.CheckQuery{Permission: sc.Permission}
			q.Resource.Type, q.Resource.ID = sc.ResourceType, prefix+string(rune('0'+i))
			q.Subject.Type, q.Subject.ID = "user", u
			if p := f.check(z, q); p != engine.NoPermission {
				out[resultKey{q.Resource.ID, u}] = p
			}
		}
	}
	return out
}

func (f *diffFixture) head() string {
	f.t.Helper()
	r, err := f.eng.ReadSchema(f.ctx, engine.FullyConsistent())
	if err != nil {
		f.t.Fatal(err)
	}
	return r.Zookie
}

func diffStates(t *testing.T, what string, got, want permState) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %v is %v, stream says %v", what, k, w, got[k])
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: stream says %v is %v, it has no permission", what, k, g)
		}
	}
}

// TestWatchPermissionsMatchesBruteForce applies random writes, deletions,
// folder moves and clock advances that expire grants, and after each one
// compares the state accumulated from the stream with a check of every
// (resource, user). Midway the consumer is killed and resumed from its
// last checkpoint while writes and expirations go on without it.
func TestWatchPermissionsMatchesBruteForce(t *testing.T) {
	seen, byExp := 0, 0
	for _, sc := range []engine.PermissionScope{
		{ResourceType: "doc", Permission: "view"},
		{ResourceType: "doc", Permission: "edit"},
		{ResourceType: "folder", Permission: "view"},
	} {
		t.Run(sc.ResourceType+"#"+sc.Permission, func(t *testing.T) {
			f := newDiffFixture(t, 7)
			start := f.head()
			c := f.subscribe(t, engine.PermissionWatchRequest{Scope: sc, After: start}, permState{})
			c.until(start, f.clk.Now())
			for i := range 40 {
				if i == 20 {
					// Kill the consumer; the world moves on; resume.
					c.stop()
					for range 3 {
						f.step()
					}
					f.clk.Advance(3 * time.Minute)
					last := c.last
					seen, byExp = seen+c.seen, byExp+c.byExp
					c = f.subscribe(t, engine.PermissionWatchRequest{Scope: sc, After: last.Zookie, Time: last.Time}, c.state)
				}
				if i%5 == 4 {
					f.clk.Advance(2 * time.Minute) // no write: only the poll sees it
				} else {
					f.step()
				}
				z := f.head()
				c.until(z, f.clk.Now())
				diffStates(t, "step "+string(rune('0'+i%10)), c.state, f.brute(z, sc))
				if t.Failed() {
					t.Fatalf("state differs after step %d", i)
				}
			}
			seen, byExp = seen+c.seen, byExp+c.byExp
		})
	}
	if seen < 20 || byExp == 0 {
		t.Fatalf("only %d events, %d by expiry: the test proves little", seen, byExp)
	}
}

// TestWatchPermissionsExpiry pins when an expiry is delivered: at the
// first poll after the clock passes the expiration, at the current zookie
// with the clock's time, with cause "expiry".
func TestWatchPermissionsExpiry(t *testing.T) {
	f := newDiffFixture(t, 1)
	exp := f.clk.Now().Add(time.Minute)
	z := f.touch("doc:d0#viewer@group:g0#member", "group:g0#member@user:u1[expiration:"+exp.Format(time.RFC3339)+"]")
	sc := engine.PermissionScope{ResourceType: "doc", Permission: "view", SubjectType: "user"}
	c := f.subscribe(t, engine.PermissionWatchRequest{Scope: sc, After: z}, permState{})
	c.until(z, f.clk.Now())
	if got := c.state[resultKey{"d0", "u1"}]; got != engine.NoPermission {
		t.Fatalf("a consumer starting at %s has its own state; got %v", z, got)
	}
	f.clk.Advance(59 * time.Second)
	c.until(z, f.clk.Now()) // nothing expires before the expiration
	f.clk.Advance(time.Second)
	var evs []engine.PermissionEvent
	for {
		ev, err, _ := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Checkpoint {
			if !ev.Time.Equal(f.clk.Now()) {
				continue
			}
			break
		}
		evs = append(evs, ev)
	}
	want := engine.PermissionEvent{
		PermissionChange: engine.PermissionChange{Before: engine.HasPermission, After: engine.NoPermission, Permission: "view"},
		Zookie:           z, Time: exp, Cause: engine.CauseExpiry,
	}
	want.Resource.Type, want.Resource.ID = "doc", "d0"
	want.Subject.Type, want.Subject.ID = "user", "u1"
	if len(evs) != 1 || !equalEvent(evs[0], want) {
		t.Fatalf("events at the expiration: %+v, want %+v", evs, want)
	}
}

func equalEvent(a, b engine.PermissionEvent) bool {
	return a.Resource == b.Resource && a.Subject == b.Subject && a.Before == b.Before && a.After == b.After &&
		a.Zookie == b.Zookie && a.Time.Equal(b.Time) && a.Cause == b.Cause && a.Permission == b.Permission
}

// TestWatchPermissionsSlowConsumer: a consumer that does not read while
// its position leaves the GC window gets ErrSnapshotExpired, not a gap.
func TestWatchPermissionsSlowConsumer(t *testing.T) {
	f := newDiffFixture(t, 2)
	f.step()
	z := f.head()
	sc := engine.PermissionScope{ResourceType: "doc", Permission: "view"}
	c := f.subscribe(t, engine.PermissionWatchRequest{Scope: sc, After: z}, permState{})
	c.until(z, f.clk.Now())
	for range 5 {
		f.step()
	}
	f.clk.Advance(2 * time.Hour) // the window is an hour
	f.step()
	if _, err := f.st.GC(f.ctx, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err, ok := c.next()
		if !ok {
			t.Fatal("stream ended without an error")
		}
		if err != nil {
			if !errors.Is(err, engine.ErrSnapshotExpired) {
				t.Fatalf("got %v, want ErrSnapshotExpired", err)
			}
			return
		}
		if ev.Checkpoint && ev.Zookie != z {
			t.Fatalf("stream went on past a collected revision: checkpoint at %s", ev.Zookie)
		}
	}
}

// TestWatchPermissionsErrors covers the refusals.
func TestWatchPermissionsErrors(t *testing.T) {
	f := newDiffFixture(t, 3)
	f.step()
	z := f.head()
	cases := []struct {
		name string
		req  engine.PermissionWatchRequest
		want error
	}{
		{"no permission", engine.PermissionWatchRequest{Scope: engine.PermissionScope{ResourceType: "doc"}}, engine.ErrInvalidRequest},
		{"unknown type", engine.PermissionWatchRequest{Scope: engine.PermissionScope{ResourceType: "nope", Permission: "view"}}, engine.ErrUnknownDefinition},
		{"unknown permission", engine.PermissionWatchRequest{Scope: engine.PermissionScope{ResourceType: "doc", Permission: "nope"}}, engine.ErrUnknownRelation},
		{"bad zookie", engine.PermissionWatchRequest{Scope: engine.PermissionScope{ResourceType: "doc", Permission: "view"}, After: "junk"}, engine.ErrInvalidZookie},
		{"negative poll", engine.PermissionWatchRequest{Scope: engine.PermissionScope{ResourceType: "doc", Permission: "view"}, Poll: -1}, engine.ErrInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, err := range f.eng.WatchPermissions(f.ctx, tc.req) {
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				return
			}
			t.Fatal("no error")
		})
	}
	// A schema change ends a running watch.
	c := f.subscribe(t, engine.PermissionWatchRequest{Scope: engine.PermissionScope{ResourceType: "doc", Permission: "view"}, After: z}, permState{})
	c.until(z, f.clk.Now())
	if _, _, err := f.eng.WriteSchema(f.ctx, "test", diffSchema+"\ndefinition extra {}\n"); err != nil {
		t.Fatal(err)
	}
	for {
		_, err, ok := c.next()
		if !ok {
			t.Fatal("stream ended without an error")
		}
		if err != nil {
			if !errors.Is(err, engine.ErrSchemaChanged) {
				t.Fatalf("got %v, want ErrSchemaChanged", err)
			}
			return
		}
	}
}
