package engine_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/token"
)

const annView = "document:1#view@user:anne"

func revisionOf(t *testing.T, f *fixture, z string) uint64 {
	t.Helper()
	rev, err := token.DecodeZookie(token.FingerprintOf(f.st.Kind(), f.st.ID()), z)
	if err != nil {
		t.Fatalf("decode zookie %q: %v", z, err)
	}
	return rev
}

// Every mode, with and without the result cache: the cache must never
// serve an answer computed at another revision.
func cacheConfigs() []struct {
	name  string
	bytes int64
} {
	return []struct {
		name  string
		bytes int64
	}{{"cache", 0}, {"nocache", -1}}
}

func TestAtExactSnapshotSeesExactlyThatRevision(t *testing.T) {
	for _, cc := range cacheConfigs() {
		t.Run(cc.name, func(t *testing.T) {
			f := newFixture(t, engine.Options{CacheBytes: cc.bytes})
			z1 := f.touch("document:1#viewer@user:anne")
			z2 := f.remove("document:1#viewer@user:anne")
			z3 := f.touch("document:1#viewer@user:anne", "document:1#banned@user:anne")
			z4 := f.remove("document:1#banned@user:anne")
			want := []struct {
				z    string
				perm eval.Permissionship
			}{{z1, eval.HasPermission}, {z2, eval.NoPermission}, {z3, eval.NoPermission}, {z4, eval.HasPermission}}
			// Twice, in both orders, so cached answers are asked for at
			// neighbouring revisions.
			for round := 0; round < 2; round++ {
				for i := range want {
					w := want[i]
					if round == 1 {
						w = want[len(want)-1-i]
					}
					got, z := f.check(engine.AtExactSnapshot(w.z), annView)
					if got != w.perm {
						t.Errorf("round %d: at revision %d got %v, want %v", round, revisionOf(t, f, w.z), got, w.perm)
					}
					if z != w.z {
						t.Errorf("answered at revision %d, want %d", revisionOf(t, f, z), revisionOf(t, f, w.z))
					}
				}
			}
		})
	}
}

func TestAtLeastAsFreshAfterDeleteDenies(t *testing.T) {
	for _, cc := range cacheConfigs() {
		t.Run(cc.name, func(t *testing.T) {
			f := newFixture(t, engine.Options{CacheBytes: cc.bytes, Quantum: time.Hour})
			z1 := f.touch("document:1#viewer@user:anne")
			// Warm the quantized revision (and the cache) with a "yes".
			if got, _ := f.check(engine.MinimizeLatency(), annView); got != eval.HasPermission {
				t.Fatalf("before the delete: got %v", got)
			}
			z2 := f.remove("document:1#viewer@user:anne")
			// MinimizeLatency may still serve the older, quantized revision.
			if got, z := f.check(engine.MinimizeLatency(), annView); got != eval.HasPermission || z != z1 {
				t.Errorf("minimize_latency inside the quantum: got %v at revision %d, want the quantized revision %d", got, revisionOf(t, f, z), revisionOf(t, f, z1))
			}
			got, z := f.check(engine.AtLeastAsFresh(z2), annView)
			if got != eval.NoPermission {
				t.Errorf("at_least_as_fresh(delete) = %v, want no permission", got)
			}
			if revisionOf(t, f, z) < revisionOf(t, f, z2) {
				t.Errorf("answered at revision %d, older than the zookie's %d", revisionOf(t, f, z), revisionOf(t, f, z2))
			}
			// An older zookie does not drag the answer below the quantized revision.
			if _, z := f.check(engine.AtLeastAsFresh(z1), annView); revisionOf(t, f, z) < revisionOf(t, f, z1) {
				t.Errorf("at_least_as_fresh(z1) answered at %d", revisionOf(t, f, z))
			}
		})
	}
}

func TestMinimizeLatencyQuantization(t *testing.T) {
	const quantum = 5 * time.Second
	f := newFixture(t, engine.Options{Quantum: quantum})
	z1 := f.touch("document:1#viewer@user:anne")
	if _, z := f.check(engine.MinimizeLatency(), annView); z != z1 {
		t.Fatalf("first read at %d, want head %d", revisionOf(t, f, z), revisionOf(t, f, z1))
	}
	z2 := f.remove("document:1#viewer@user:anne")

	f.clk.Advance(quantum - time.Nanosecond)
	if got, z := f.check(engine.MinimizeLatency(), annView); z != z1 || got != eval.HasPermission {
		t.Errorf("just inside the quantum: %v at %d, want yes at %d", got, revisionOf(t, f, z), revisionOf(t, f, z1))
	}
	// A fully consistent read inside the quantum sees the head but does
	// not move the revision that minimize_latency readers share.
	if got, z := f.check(engine.FullyConsistent(), annView); z != z2 || got != eval.NoPermission {
		t.Errorf("fully_consistent: %v at %d, want no at head %d", got, revisionOf(t, f, z), revisionOf(t, f, z2))
	}
	if _, z := f.check(engine.MinimizeLatency(), annView); z != z1 {
		t.Errorf("after a fully consistent read: at %d, want still %d", revisionOf(t, f, z), revisionOf(t, f, z1))
	}

	f.clk.Advance(time.Nanosecond)
	if got, z := f.check(engine.MinimizeLatency(), annView); z != z2 || got != eval.NoPermission {
		t.Errorf("after the quantum: %v at %d, want no at %d", got, revisionOf(t, f, z), revisionOf(t, f, z2))
	}
}

func TestNegativeQuantumAlwaysReadsHead(t *testing.T) {
	f := newFixture(t, engine.Options{Quantum: -1})
	f.touch("document:1#viewer@user:anne")
	f.check(engine.MinimizeLatency(), annView)
	z2 := f.remove("document:1#viewer@user:anne")
	if got, z := f.check(engine.MinimizeLatency(), annView); z != z2 || got != eval.NoPermission {
		t.Errorf("got %v at %d, want no at head %d", got, revisionOf(t, f, z), revisionOf(t, f, z2))
	}
}

func TestFullyConsistentSeesHead(t *testing.T) {
	f := newFixture(t, engine.Options{Quantum: time.Hour})
	for i, step := range []struct {
		write func() string
		want  eval.Permissionship
	}{
		{func() string { return f.touch("document:1#viewer@user:anne") }, eval.HasPermission},
		{func() string { return f.touch("document:1#banned@user:anne") }, eval.NoPermission},
		{func() string { return f.remove("document:1#banned@user:anne") }, eval.HasPermission},
	} {
		z := step.write()
		got, at := f.check(engine.FullyConsistent(), annView)
		if got != step.want || at != z {
			t.Errorf("step %d: %v at %d, want %v at %d", i, got, revisionOf(t, f, at), step.want, revisionOf(t, f, z))
		}
	}
}

func TestBadZookiesRejected(t *testing.T) {
	f := newFixture(t, engine.Options{})
	z := f.touch("document:1#viewer@user:anne")
	head := revisionOf(t, f, z)

	other := memstore.New(memstore.Options{})
	defer other.Close()
	otherZ := token.EncodeZookie(token.FingerprintOf(other.Kind(), other.ID()), head)
	future := token.EncodeZookie(token.FingerprintOf(f.st.Kind(), f.st.ID()), head+3)
	tampered := []byte(z)
	tampered[len(tampered)/2] ^= 1

	tests := []struct {
		name string
		c    engine.Consistency
		want error
		msg  string // the whole message, when the test pins it: each cause said once
	}{
		{"garbage", engine.AtLeastAsFresh("not-a-zookie"), engine.ErrInvalidZookie, "engine: invalid zookie: too short"},
		{"not base64url", engine.AtLeastAsFresh("not-a-zookie-but-long-enough!"), engine.ErrInvalidZookie, ""},
		{"tampered", engine.AtExactSnapshot(string(tampered)), engine.ErrInvalidZookie, ""},
		{"other store", engine.AtLeastAsFresh(otherZ), token.ErrOtherStore, "engine: invalid zookie: minted by another datastore"},
		{"future at_least_as_fresh", engine.AtLeastAsFresh(future), engine.ErrFutureZookie, ""},
		{"future exact", engine.AtExactSnapshot(future), engine.ErrFutureZookie, ""},
		{"missing zookie", engine.Consistency{Mode: engine.ModeAtLeastAsFresh}, engine.ErrInvalidRequest, ""},
		{"zookie on minimize_latency", engine.Consistency{Zookie: z}, engine.ErrInvalidRequest, ""},
		{"zookie on fully_consistent", engine.Consistency{Mode: engine.ModeFullyConsistent, Zookie: z}, engine.ErrInvalidRequest, ""},
		{"unknown mode", engine.Consistency{Mode: 9}, engine.ErrInvalidRequest, ""},
	}
	r := mustParse(t, annView)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: tt.c, CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message %q, want %q", err.Error(), tt.msg)
			}
			if strings.Count(err.Error(), "invalid") > 1 || strings.Contains(err.Error(), "token:") {
				t.Errorf("message repeats itself: %q", err.Error())
			}
			if tt.want == token.ErrOtherStore && !errors.Is(err, engine.ErrInvalidZookie) {
				t.Errorf("other-store error %v is not also ErrInvalidZookie", err)
			}
		})
	}
	// A future zookie names both revisions in its message.
	_, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtLeastAsFresh(future), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
	var fe *engine.FutureZookieError
	if !errors.As(err, &fe) || uint64(fe.Requested) != head+3 || uint64(fe.Head) != head {
		t.Errorf("future zookie error = %v", err)
	}
}

func TestExactSnapshotCompacted(t *testing.T) {
	f := newFixture(t, engine.Options{})
	z1 := f.touch("document:1#viewer@user:anne")
	f.clk.Advance(time.Hour)
	f.touch("document:1#viewer@user:bob")
	f.clk.Advance(time.Hour)
	if _, err := f.st.GC(f.ctx, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, annView)
	_, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtExactSnapshot(z1), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
	if !errors.Is(err, engine.ErrSnapshotExpired) || !errors.Is(err, store.ErrRevisionCompacted) {
		t.Fatalf("got %v, want ErrSnapshotExpired wrapping store.ErrRevisionCompacted", err)
	}
	if !strings.Contains(err.Error(), "oldest readable") {
		t.Errorf("error %q does not say which revision is the oldest readable", err)
	}
	// at_least_as_fresh with the same old zookie is still answerable.
	if got, _ := f.check(engine.AtLeastAsFresh(z1), annView); got != eval.HasPermission {
		t.Errorf("at_least_as_fresh(compacted zookie) = %v", got)
	}
}

func TestCacheServesOnlyItsRevision(t *testing.T) {
	f := newFixture(t, engine.Options{Quantum: -1})
	var zs []string
	var wants []eval.Permissionship
	// Alternate the answer at every revision.
	for i := 0; i < 6; i++ {
		if i%2 == 0 {
			zs = append(zs, f.touch("document:1#viewer@user:anne"))
			wants = append(wants, eval.HasPermission)
		} else {
			zs = append(zs, f.remove("document:1#viewer@user:anne"))
			wants = append(wants, eval.NoPermission)
		}
	}
	for round := 0; round < 3; round++ {
		for i, z := range zs {
			if got, _ := f.check(engine.AtExactSnapshot(z), annView); got != wants[i] {
				t.Fatalf("round %d revision %d: got %v, want %v", round, revisionOf(t, f, z), got, wants[i])
			}
		}
	}
	st := f.eng.Stats()
	if !st.CacheEnabled || st.Cache.Hits == 0 {
		t.Errorf("stats %+v: expected cache hits from repeated checks", st)
	}
}

func TestExpiredRelationshipsFollowTheClock(t *testing.T) {
	f := newFixture(t, engine.Options{Quantum: -1})
	exp := f.clk.Now().Add(time.Minute).Format(time.RFC3339)
	z := f.touch("document:1#viewer@user:anne[expiration:" + exp + "]")
	if got, _ := f.check(engine.AtExactSnapshot(z), annView); got != eval.HasPermission {
		t.Fatalf("before expiry: %v", got)
	}
	f.clk.Advance(time.Minute)
	// Same revision, later clock: the cached "yes" must not outlive the relationship.
	if got, _ := f.check(engine.AtExactSnapshot(z), annView); got != eval.NoPermission {
		t.Errorf("after expiry: %v, want no permission", got)
	}
}

// Concurrent writers each read their own write back with its zookie,
// while MinimizeLatency readers share quantized revisions.
func TestConcurrentReadYourWrites(t *testing.T) {
	f := newFixture(t, engine.Options{Quantum: time.Hour})
	const writers, rounds = 4, 10
	errs := make(chan error, writers*rounds)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				rel := mustParse(t, fmt.Sprintf("document:w%d_%d#viewer@user:u%d", w, i, w))
				z, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Updates: []engine.Update{{Op: store.OpTouch, Relationship: rel}}})
				if err != nil {
					errs <- err
					return
				}
				resp, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: engine.AtLeastAsFresh(z), CheckRequest: engine.CheckQuery{Resource: rel.Resource, Permission: "view", Subject: rel.Subject}})
				if err != nil {
					errs <- err
					return
				}
				if resp.Permissionship != eval.HasPermission {
					errs <- fmt.Errorf("%s not visible at its own zookie", rel)
				}
				if _, err := f.eng.Check(f.ctx, engine.CheckRequest{CheckRequest: engine.CheckQuery{Resource: rel.Resource, Permission: "view", Subject: rel.Subject}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A seeded random history of writes, then checks at every revision in a
// shuffled order, twice (the second pass is served largely from the
// cache): every answer must equal a model of the history.
func TestRandomHistoryAtEveryRevision(t *testing.T) {
	f := newFixture(t, engine.Options{Quantum: -1})
	rng := rand.New(rand.NewPCG(1, 2))
	users := []string{"a", "b", "c"}
	type state struct{ viewer, banned map[string]bool }
	cur := state{map[string]bool{}, map[string]bool{}}
	var zs []string
	var states []state
	for i := 0; i < 30; i++ {
		u := users[rng.IntN(len(users))]
		rel, set := "viewer", cur.viewer
		if rng.IntN(3) == 0 {
			rel, set = "banned", cur.banned
		}
		s := fmt.Sprintf("document:1#%s@user:%s", rel, u)
		var z string
		if set[u] {
			z = f.remove(s)
		} else {
			z = f.touch(s)
		}
		set[u] = !set[u]
		zs = append(zs, z)
		states = append(states, state{maps.Clone(cur.viewer), maps.Clone(cur.banned)})
	}
	for pass := 0; pass < 2; pass++ {
		for _, i := range rng.Perm(len(zs)) {
			for _, u := range users {
				want := eval.NoPermission
				if states[i].viewer[u] && !states[i].banned[u] {
					want = eval.HasPermission
				}
				if got, _ := f.check(engine.AtExactSnapshot(zs[i]), "document:1#view@user:"+u); got != want {
					t.Fatalf("pass %d, write %d, user %s: got %v, want %v", pass, i, u, got, want)
				}
			}
		}
	}
}
