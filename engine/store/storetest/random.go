package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// testRandom runs a long, seeded sequence of random transactions over a
// small key space, so that keys are written, replaced, expired and deleted
// many times, and after each one compares random queries at random
// revisions with the model. When the store collects garbage, GC runs
// every few transactions and compacted revisions must fail cleanly.
func (s *suite) testRandom(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) { s.randomRun(t, seed) })
	}
}

// vocabulary is the small key space of the random test.
type vocabulary struct {
	resources []tuple.ObjectRef
	relations []string
	subjects  []tuple.SubjectRef
}

func newVocabulary() vocabulary {
	return vocabulary{
		resources: []tuple.ObjectRef{{Type: "doc", ID: "1"}, {Type: "doc", ID: "2"}, {Type: "doc", ID: "10"}, {Type: "folder", ID: "1"}},
		relations: []string{"owner", "viewer"},
		subjects: []tuple.SubjectRef{
			{Type: "user", ID: "a"}, {Type: "user", ID: "b"}, {Type: "user", ID: "*"},
			{Type: "group", ID: "g"}, {Type: "group", ID: "g", Relation: "member"}, {Type: "doc", ID: "1"},
		},
	}
}

// randomGen draws random values for one run.
type randomGen struct {
	rng   *rand.Rand
	clock *Clock
	voc   vocabulary
}

func pick[T any](g *randomGen, xs []T) T { return xs[g.rng.IntN(len(xs))] }

func (g *randomGen) rel() tuple.Relationship {
	r := tuple.Relationship{Resource: pick(g, g.voc.resources), Relation: pick(g, g.voc.relations), Subject: pick(g, g.voc.subjects)}
	switch g.rng.IntN(4) {
	case 0:
		r.Caveat = &tuple.Caveat{Name: "c1"}
	case 1:
		r.Caveat = &tuple.Caveat{Name: "c2", Context: map[string]any{"n": json.Number(fmt.Sprint(g.rng.IntN(100))), "l": []any{"x", true}}}
	}
	if g.rng.IntN(3) == 0 {
		// From two minutes ago to eight minutes ahead, in whole minutes so
		// that expirations land exactly on commit and query times.
		r.Expiration = g.clock.Now().Add(time.Duration(g.rng.IntN(11)-2) * time.Minute)
	}
	return r
}

func (g *randomGen) filter() tuple.Filter {
	f := tuple.Filter{}
	if g.rng.IntN(4) > 0 {
		r := pick(g, g.voc.resources)
		f.ResourceType = r.Type
		if g.rng.IntN(2) == 0 {
			f.ResourceID = r.ID
		}
	}
	if g.rng.IntN(2) == 0 {
		f.Relation = pick(g, g.voc.relations)
	}
	if g.rng.IntN(2) == 0 {
		f.Subject = g.subjectFilter()
	}
	return f
}

func (g *randomGen) subjectFilter() *tuple.SubjectFilter {
	sub := pick(g, g.voc.subjects)
	sf := &tuple.SubjectFilter{Type: sub.Type}
	if g.rng.IntN(2) == 0 {
		sf.ID = sub.ID
	}
	switch g.rng.IntN(3) {
	case 0:
		sf.Relation = tuple.Ellipsis
	case 1:
		sf.Relation = sub.Relation
	}
	return sf
}

func (g *randomGen) reverseFilter() tuple.ReverseFilter {
	f := tuple.ReverseFilter{Subject: *g.subjectFilter()}
	if g.rng.IntN(2) == 0 {
		f.ResourceType = pick(g, g.voc.resources).Type
	}
	if g.rng.IntN(2) == 0 {
		f.Relation = pick(g, g.voc.relations)
	}
	return f
}

func (g *randomGen) opts(order func(a, b tuple.Key) int) store.QueryOptions {
	var o store.QueryOptions
	if g.rng.IntN(3) == 0 {
		o.Limit = 1 + g.rng.IntN(4)
	}
	if g.rng.IntN(3) == 0 {
		k := g.rel().Key()
		o.After = &k
	}
	if g.rng.IntN(2) == 0 {
		o.Now = g.clock.Now().Add(time.Duration(g.rng.IntN(5)-2) * time.Minute)
	}
	return o
}

// randomOp is one transaction operation and its effect on the model.
type randomOp struct {
	desc  string
	apply func(ctx context.Context, tx store.Tx) error
	// model applies the operation to m and reports the keys it writes
	// a new version of; it returns the error kind the store must report,
	// if the operation must fail.
	model func(m model, now time.Time, wrote func(tuple.Key)) error
	write bool // counts towards MaxBatchOps
}

func (g *randomGen) op() randomOp {
	switch n := g.rng.IntN(10); {
	case n < 4:
		r := g.rel()
		return randomOp{"touch " + r.String(), func(ctx context.Context, tx store.Tx) error { return tx.Touch(ctx, r) },
			func(m model, _ time.Time, wrote func(tuple.Key)) error { m.touch(r); wrote(r.Key()); return nil }, true}
	case n < 6:
		r := g.rel()
		return randomOp{"create " + r.String(), func(ctx context.Context, tx store.Tx) error { return tx.Create(ctx, r) },
			func(m model, now time.Time, wrote func(tuple.Key)) error {
				if old, ok := m[r.Key()]; ok && !old.ExpiredAt(now) {
					return store.ErrAlreadyExists
				}
				m.touch(r)
				wrote(r.Key())
				return nil
			}, true}
	case n < 9:
		k := g.rel().Key()
		return randomOp{"delete " + k.String(), func(ctx context.Context, tx store.Tx) error { return tx.Delete(ctx, k) },
			func(m model, _ time.Time, _ func(tuple.Key)) error { m.delete(k); return nil }, true}
	default:
		f := g.filter()
		return randomOp{"delete matching " + describeFilter(f), func(ctx context.Context, tx store.Tx) error {
			_, err := tx.DeleteMatching(ctx, f, 0)
			return err
		}, func(m model, _ time.Time, _ func(tuple.Key)) error {
			for k, r := range m {
				if f.Matches(r) {
					delete(m, k)
				}
			}
			return nil
		}, false}
	}
}

func (s *suite) randomRun(t *testing.T, seed uint64) {
	ctx := context.Background()
	const (
		steps    = 200
		maxOps   = 4
		window   = 20 * time.Minute
		gcEvery  = 25
		checkRev = 3 // random old revisions checked after each step
	)
	st, clock := s.open(t, Config{MaxBatchOps: maxOps, GCWindow: window})
	gc, _ := st.(store.GarbageCollector)
	g := &randomGen{rng: rand.New(rand.NewPCG(seed, 0x5eed)), clock: clock, voc: newVocabulary()}
	models := []model{newModel()}
	times := []time.Time{startTime()}
	horizon := store.Revision(0)
	// current holds, for each key present at head, the revision that
	// wrote its version: GC removes the expired ones written at or below
	// the horizon.
	current := map[tuple.Key]store.Revision{}

	for step := range steps {
		now := clock.Advance(time.Minute)
		nops := 1 + g.rng.IntN(maxOps+1) // sometimes one too many
		ops := make([]randomOp, nops)
		m := models[len(models)-1].clone()
		var want error
		writes := 0
		wrote := map[tuple.Key]bool{}
		for i := range ops {
			ops[i] = g.op()
			if ops[i].write {
				writes++
			}
			if want != nil {
				continue
			}
			if writes > maxOps {
				want = store.ErrBatchTooLarge
			} else {
				want = ops[i].model(m, now, func(k tuple.Key) { wrote[k] = true })
			}
		}
		abort := g.rng.IntN(10) == 0
		rev, err := st.Update(ctx, store.WriteMeta{Caller: "random"}, func(ctx context.Context, tx store.Tx) error {
			for _, op := range ops {
				if err := op.apply(ctx, tx); err != nil {
					return err
				}
			}
			if abort {
				return errAbort
			}
			return nil
		})
		descr := func() string {
			s := fmt.Sprintf("step %d:", step)
			for _, op := range ops {
				s += "\n\t" + op.desc
			}
			return s
		}
		switch {
		case want == nil && !abort:
			if err != nil {
				t.Fatalf("%s\nUpdate: %v", descr(), err)
			}
			if rev != store.Revision(len(models)) {
				t.Fatalf("%s\ncommitted %d, want %d", descr(), rev, len(models))
			}
			models = append(models, m)
			times = append(times, now)
			for k := range wrote {
				if _, ok := m[k]; ok {
					current[k] = rev
				}
			}
			for k := range current {
				if _, ok := m[k]; !ok {
					delete(current, k)
				}
			}
		default:
			// A batch that is too large may be rejected before or after
			// an earlier failing Create; either error is right.
			ok := errors.Is(err, want) || errors.Is(err, store.ErrBatchTooLarge) && writes > maxOps ||
				abort && errors.Is(err, errAbort) ||
				want == store.ErrBatchTooLarge && errors.Is(err, store.ErrAlreadyExists)
			if want == nil {
				ok = errors.Is(err, errAbort)
			}
			if !ok {
				t.Fatalf("%s\nUpdate = (%d, %v), want an error like %v (abort %v)", descr(), rev, err, want, abort)
			}
		}
		head := store.Revision(len(models) - 1)

		if gc != nil && step%gcEvery == gcEvery-1 {
			stats, err := gc.GC(ctx, clock.Now())
			if err != nil {
				t.Fatalf("step %d: GC: %v", step, err)
			}
			cutoff := clock.Now().Add(-window)
			for rev := head; rev > horizon; rev-- {
				if !times[rev].After(cutoff) {
					horizon = rev
					break
				}
			}
			if stats.Horizon != horizon {
				t.Fatalf("step %d: GC horizon %d, want %d", step, stats.Horizon, horizon)
			}
			expired := 0
			for k, wr := range current {
				if wr <= horizon && models[head][k].ExpiredAt(cutoff) {
					for rev := horizon; rev <= head; rev++ {
						delete(models[rev], k)
					}
					delete(current, k)
					expired++
				}
			}
			if stats.Expired != expired {
				t.Fatalf("step %d: GC removed %d expired relationships, want %d", step, stats.Expired, expired)
			}
		}

		for range checkRev {
			rev := store.Revision(g.rng.IntN(int(head) + 1))
			r, err := st.Snapshot(ctx, rev)
			if rev < horizon {
				if !errors.Is(err, store.ErrRevisionCompacted) {
					t.Fatalf("step %d: Snapshot(%d) below horizon %d: %v", step, rev, horizon, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d: Snapshot(%d): %v", step, rev, err)
			}
			what := fmt.Sprintf("step %d, revision %d", step, rev)
			f := g.filter()
			opts := g.opts(CompareForward)
			got, err := Collect(r.QueryRelationships(ctx, f, opts))
			checkRels(t, fmt.Sprintf("%s: %s %+v", what, describeFilter(f), opts), got, err, models[rev].forward(f, opts))
			br, batch := r.(store.BatchReader)
			if batch {
				// Appended after what the slice holds, the same answer.
				pre := MustParse(t, "doc:pre#viewer@user:pre")
				got, err := br.AppendRelationships(ctx, pre, f, opts)
				checkRels(t, fmt.Sprintf("%s: AppendRelationships %s %+v", what, describeFilter(f), opts), got, err, append(pre[:1:1], models[rev].forward(f, opts)...))
			}
			rf := g.reverseFilter()
			opts = g.opts(CompareReverse)
			got, err = Collect(r.ReverseQueryRelationships(ctx, rf, opts))
			checkRels(t, fmt.Sprintf("%s: %+v %+v", what, rf, opts), got, err, models[rev].reverse(rf, opts))
			if batch {
				got, err := br.AppendReverseRelationships(ctx, nil, rf, opts)
				checkRels(t, fmt.Sprintf("%s: AppendReverseRelationships %+v %+v", what, rf, opts), got, err, models[rev].reverse(rf, opts))
			}
			if pr, ok := r.(store.PointReader); ok {
				// A point read answers as the query naming the whole key.
				k, now := g.rel().Key(), g.opts(CompareForward).Now
				rel, found, err := pr.ReadRelationship(ctx, k, now)
				var got, want []tuple.Relationship
				if found {
					got = append(got, rel)
				}
				if m, ok := models[rev][k]; ok && (now.IsZero() || !m.ExpiredAt(now)) {
					want = append(want, m)
				}
				checkRels(t, fmt.Sprintf("%s: ReadRelationship(%s, now %v)", what, k, now), got, err, want)
			}
			if t.Failed() {
				t.FailNow()
			}
		}
	}
	for rev := horizon; rev < store.Revision(len(models)); rev++ {
		checkState(t, fmt.Sprintf("final check of revision %d", rev), MustSnapshot(t, st, rev), models[rev])
	}
}
