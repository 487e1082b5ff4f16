package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// This file rebuilds the nested-group index (nested.go) from scratch:
// after a bulk import, a write too large to maintain it, a schema that
// starts indexing a relation, or an engine opened on a stale index. The
// rebuild runs in the background, one at a time per engine, so that the
// write that left the index stale returns at once; checks walk the
// relationships until it is done, with the same answers.
//
// It takes no lock while it works. For a relation whose index reads as
// stale at a snapshot revision R (no marker, or the stale row), it
//
//  1. computes the closure of R's edges (nestedclosure.go) and writes the
//     rows that differ from the stored ones: additions in bulk loads of
//     nestedLoadRows rows (each its own revision, so that writes go on in
//     between), deletions in transactions; no reader uses them, as the
//     index stays stale;
//  2. catches up with the edges written meanwhile: the objects whose
//     children changed between R and the head (first by comparing the
//     edges, which skips the rows it has just written, then from the
//     change sets) and their ancestors get their closures recomputed
//     (recomputeClosures), as a write's maintenance does, a few rounds
//     while others keep writing;
//  3. takes the engine's write lock only for the last round, which writes
//     the last rows and the marker in one transaction when they fit (in a
//     few, the marker last, when they do not).
//
// So a reader at any revision that sees the marker sees the closure of
// that revision's edges: the rows at the marker's revision are the
// closure of the edges of the revision before it, which no write of the
// engine could change while it held the lock. Rows written while the
// index is stale change nothing a reader sees; the writes made meanwhile
// leave the rows alone (the index is stale) and are caught up in 2 and 3.
//
// A rebuild gives up and starts again (at most nestedRebuildAttempts
// times) when the schema changed under it, when the changes made
// meanwhile are too many to catch up (a concurrent import: the diff
// against the rows it wrote is cheap), or when another process committed
// between its last transactions. A rebuild that fails leaves the index
// stale: checks walk, the error is logged, and the next write that
// changes the relation's edges, the next Open or `pemba datastore
// rebuild-index` tries again.

// nestedLoadRows is how many rows one bulk load of a rebuild writes: the
// store's writers wait for a bulk load, not for the whole rebuild (20,000
// rather than 100,000 rows cut the p99 of writes during a rebuild of
// deep-chain medium from 930 to 368 ms; docs/benchmarks.md).
var nestedLoadRows = 20_000

// Catch-up rounds (see above): at most nestedCatchUpRounds rounds without
// the lock, stopping earlier once the objects changed since the last one
// are at most nestedLockedSources; more changed objects than
// nestedRestartSources (or a tenth of the relation's objects, if more)
// restart the rebuild instead. Variables, so that tests can make them
// small.
var (
	nestedLockedSources  = 256
	nestedRestartSources = 4096
)

const (
	nestedCatchUpRounds   = 4
	nestedRebuildAttempts = 4
)

// errNestedRestart makes a rebuild start again from a new snapshot.
var errNestedRestart = errors.New("engine: nested index rebuild: restart")

// nestedBuilder runs the rebuilds of the nested-group index of one
// engine.
type nestedBuilder struct {
	// run is held by the rebuild that runs (in the background, or
	// RebuildNestedIndex's); worked, under it, is set once that rebuild
	// finds an index to compute.
	run    sync.Mutex
	worked bool

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the background goroutine

	mu      sync.Mutex
	running bool          // a background rebuild is running
	again   bool          // and another is asked for after it
	idle    chan struct{} // closed when no background rebuild runs
	err     error         // the last background rebuild's

	// hook, when set (tests), is called by rebuilds at their stages
	// without the lock: "loaded" after the rows of the snapshot are
	// written, "caught-up" after each catch-up round.
	hook func(ctx context.Context, stage string)

	// flushMu is read-held by a rebuild's row writes (rowWriter), each
	// after checking that the schema in force is still the one the
	// rebuild computes for, and held by a schema write's commit: without
	// it, a batch computed for the old schema could land after the new
	// one dropped the relation's rows, and stay behind.
	flushMu sync.RWMutex

	building              atomic.Bool // a rebuild is running
	rebuilds, failures    atomic.Uint64
	totalNanos, lastNanos atomic.Int64
}

func (b *nestedBuilder) init() {
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.idle = make(chan struct{})
	close(b.idle)
}

// close cancels a background rebuild and waits for it to end.
func (b *nestedBuilder) close() {
	b.mu.Lock()
	b.cancel()
	b.mu.Unlock()
	b.wg.Wait()
}

// stage calls the hook, if any.
func (b *nestedBuilder) stage(ctx context.Context, name string) {
	if b.hook != nil {
		b.hook(ctx, name)
	}
}

// rebuildStale starts a background rebuild after a write left relations
// stale (nothing when the index is off). The write is committed either
// way; checks walk those relations until the rebuild is done.
func (e *Engine) rebuildStale(_ context.Context, stale []*schema.Relation) {
	if len(stale) == 0 || !e.nestedOn() {
		return
	}
	e.scheduleNestedRebuild()
}

// scheduleNestedRebuild starts a background rebuild, or asks the running
// one to run once more when it is done (it may have read its snapshot
// before the write that asks).
func (e *Engine) scheduleNestedRebuild() {
	b := &e.builder
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx.Err() != nil {
		return // closed
	}
	if b.running {
		b.again = true
		return
	}
	b.running = true
	b.idle = make(chan struct{})
	b.wg.Add(1)
	go e.rebuildInBackground()
}

func (e *Engine) rebuildInBackground() {
	b := &e.builder
	defer b.wg.Done()
	for {
		_, err := e.rebuildNested(b.ctx, false)
		if err != nil && b.ctx.Err() == nil {
			e.log.Error("nested index rebuild failed; checks walk until the next rebuild", "error", err)
		}
		b.mu.Lock()
		b.err = err
		if b.again && b.ctx.Err() == nil {
			b.again = false
			b.mu.Unlock()
			continue
		}
		b.running, b.again = false, false
		close(b.idle)
		b.mu.Unlock()
		return
	}
}

// WaitNestedIndex waits until no background rebuild of the nested-group
// index runs or is asked for, and returns the last one's error (nil when
// it succeeded or none ran), or ctx's. Writes that leave the index stale
// (a bulk import, an oversized write) return before its rebuild is done;
// this is for callers that want the index ready, such as benchmarks and
// tests.
func (e *Engine) WaitNestedIndex(ctx context.Context) error {
	b := &e.builder
	b.mu.Lock()
	idle := b.idle
	b.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// ensureNested starts, when the engine opens with the index on, a
// background rebuild if the index of a relation of the head's schema is
// stale (written with the index off, by an older version, or left by a
// rebuild that did not finish).
func (e *Engine) ensureNested(ctx context.Context) error {
	if !e.nestedOn() {
		return nil
	}
	v, err := e.open(ctx, FullyConsistent())
	if err != nil {
		return err
	}
	if v.c == nil {
		return nil
	}
	for _, n := range sortedNested(v.c.nested) {
		st, err := readMarker(ctx, v.reader, n.rel)
		if err != nil {
			return err
		}
		if !st.Ready || st.Gen == 0 {
			// Stale, or complete without a generation (written by an
			// older version): the rebuild gives it one.
			e.scheduleNestedRebuild()
			return nil
		}
	}
	return nil
}

// addGeneration gives the index of n a generation row where it is
// complete without one (written by a version before generations), so
// that checks may read it from memory (closuremem.go).
func (e *Engine) addGeneration(ctx context.Context, n *nestedRel, meta store.WriteMeta) error {
	_, err := e.st.Update(ctx, meta, func(ctx context.Context, tx store.Tx) error {
		st, err := readMarker(ctx, tx, n.rel)
		if err != nil || !st.Ready || st.Gen != 0 {
			return err
		}
		return writeOps(ctx, tx, genOps(n.rel, st))
	})
	if err != nil {
		return fmt.Errorf("engine: nested index generation of %s#%s: %w", n.rel.Definition.Name, n.rel.Name, err)
	}
	return nil
}

// RebuildNestedIndex recomputes the index of every indexed relation of
// the head's schema from the relationships, writes what differs and
// marks it complete, so that checks read it again; it returns what it
// found and wrote, relation by relation. Unlike the rebuilds the engine
// starts in the background, it also compares the indexes that read as
// complete (and rebuilds one that differs). It waits for a background
// rebuild that runs, and blocks writes of this engine only for its last
// round (see nestedbuild.go). With the index off it does nothing.
func (e *Engine) RebuildNestedIndex(ctx context.Context) ([]NestedIndexReport, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if !e.nestedOn() {
		return nil, nil
	}
	return e.rebuildNested(ctx, true)
}

// rebuildNested rebuilds the index of the relations of the head's schema
// that read as stale, and with all set the others too when they differ.
func (e *Engine) rebuildNested(ctx context.Context, all bool) (reps []NestedIndexReport, err error) {
	b := &e.builder
	b.run.Lock()
	defer b.run.Unlock()
	b.building.Store(true)
	b.worked = false
	start := time.Now()
	defer func() {
		// A run that found every index complete is not a rebuild.
		if b.worked || err != nil {
			d := time.Since(start).Nanoseconds()
			b.totalNanos.Add(d)
			b.lastNanos.Store(d)
			b.rebuilds.Add(1)
		}
		if err != nil {
			b.failures.Add(1)
		}
		b.building.Store(false)
	}()
	for attempt := 1; ; attempt++ {
		reps, err = e.rebuildOnce(ctx, all)
		if errors.Is(err, errNestedRestart) && attempt < nestedRebuildAttempts {
			continue
		}
		return reps, err
	}
}

// rebuildOnce is one attempt of rebuildNested.
func (e *Engine) rebuildOnce(ctx context.Context, all bool) ([]NestedIndexReport, error) {
	head, err := e.heads.head(ctx)
	if err != nil {
		return nil, err
	}
	v, err := e.openAt(ctx, head)
	if err != nil {
		return nil, err
	}
	if v.c == nil {
		return nil, nil
	}
	_, written, err := v.reader.ReadSchema(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: rebuild nested index: %w", err)
	}
	var out []NestedIndexReport
	for _, n := range sortedNested(v.c.nested) {
		rep, err := e.rebuildRelation(ctx, n, written, all)
		if err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, nil
}

// rebuildRelation rebuilds the index of n under the schema written at
// revision written (see the top of this file).
func (e *Engine) rebuildRelation(ctx context.Context, n *nestedRel, written store.Revision, all bool) (NestedIndexReport, error) {
	meta, err := writeMeta(ctx, "", OpNameRebuildNestedIndex)
	if err != nil {
		return NestedIndexReport{}, err
	}
	b := &e.builder
	var first *NestedIndexReport // what the first comparison found
	for attempt := 1; ; attempt++ {
		r, rev, err := e.rebuildSnapshot(ctx, written)
		if err != nil {
			return NestedIndexReport{}, err
		}
		st, err := readMarker(ctx, r, n.rel)
		if err != nil {
			return NestedIndexReport{}, err
		}
		ready := st.Ready
		if ready && st.Gen == 0 {
			if err := e.addGeneration(ctx, n, meta); err != nil {
				return NestedIndexReport{}, err
			}
		}
		if ready && !all {
			return NestedIndexReport{Relation: n.rel.Definition.Name + "#" + n.rel.Name, Ready: true}, nil
		}
		b.worked = true
		g, err := loadNestedGraph(ctx, r, n)
		if err != nil {
			return NestedIndexReport{}, err
		}
		if ready {
			// Asked to compare an index that reads as complete: only a
			// difference makes it stale (first), to be rebuilt from a
			// snapshot where it is.
			rep, err := diffClosure(ctx, r, n, g, nil)
			if err != nil {
				return rep, err
			}
			rep.Ready = true
			if rep.Missing+rep.Extra+rep.Wrong == 0 {
				return rep, nil
			}
			first = &rep
			if _, err := e.st.Update(ctx, meta, func(ctx context.Context, tx store.Tx) error {
				return tx.Touch(ctx, eval.NestedStale(n.rel))
			}); err != nil {
				return rep, fmt.Errorf("engine: rebuild nested index of %s: %w", rep.Relation, err)
			}
			all = false
			continue
		}
		w := &rowWriter{e: e, meta: meta, schema: written}
		w.bl, _ = e.st.(store.BulkLoader)
		rep, err := diffClosure(ctx, r, n, g, func(op rowOp) error { return w.add(ctx, op) })
		if err == nil {
			err = w.flush(ctx)
		}
		if err != nil {
			return rep, fmt.Errorf("engine: rebuild nested index of %s: %w", rep.Relation, err)
		}
		if first != nil {
			rep.Ready, rep.Rows, rep.Missing, rep.Extra, rep.Wrong = first.Ready, first.Rows, first.Missing, first.Extra, first.Wrong
		}
		rep.Written = w.written
		b.stage(ctx, "loaded")
		k, err := e.catchUpNested(ctx, n, meta, g, rev, written, attempt < nestedRebuildAttempts)
		rep.Written += k
		if errors.Is(err, errNestedRestart) && attempt < nestedRebuildAttempts {
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("engine: rebuild nested index of %s: %w", rep.Relation, err)
		}
		e.log.InfoContext(ctx, "nested index rebuilt", "relation", rep.Relation, "rows", rep.Rows, "written", rep.Written)
		return rep, nil
	}
}

// rebuildSnapshot returns a reader at the head and its revision, failing
// with errNestedRestart when the schema in force is no longer the one
// written at revision written.
func (e *Engine) rebuildSnapshot(ctx context.Context, written store.Revision) (store.Reader, store.Revision, error) {
	head, err := e.heads.head(ctx)
	if err != nil {
		return nil, 0, err
	}
	r, err := e.st.Snapshot(ctx, head)
	if err != nil {
		return nil, 0, fmt.Errorf("engine: snapshot at revision %d: %w", head, err)
	}
	_, w, err := r.ReadSchema(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("engine: read schema at revision %d: %w", head, err)
	}
	if w != written {
		return nil, 0, fmt.Errorf("%w: the schema changed", errNestedRestart)
	}
	return r, head, nil
}

// catchUpNested brings the rows of n, the closure of graph g of revision
// cur, up to the edges of the head and marks the index complete (steps 2
// and 3 at the top of this file). It returns the rows it wrote. With
// restart set, too many changes end it with errNestedRestart.
func (e *Engine) catchUpNested(ctx context.Context, n *nestedRel, meta store.WriteMeta, g *nestedGraph, cur, written store.Revision, restart bool) (int, error) {
	total := 0
	tooMany := max(nestedRestartSources, len(g.ids)/10)
	for round := 0; round < nestedCatchUpRounds; round++ {
		r, h, err := e.rebuildSnapshot(ctx, written)
		if err != nil {
			return total, err
		}
		if h == cur {
			break
		}
		var sources []string
		if round == 0 {
			// The rows just written lie between cur and h: compare the
			// edges rather than read them back from the change sets.
			now, err := loadNestedGraph(ctx, r, n)
			if err != nil {
				return total, err
			}
			sources = changedSources(g, now)
		} else if sources, err = e.edgeSources(ctx, n, cur, h); err != nil {
			return total, err
		}
		if restart && len(sources) > tooMany {
			return total, fmt.Errorf("%w: %d objects changed their edges meanwhile", errNestedRestart, len(sources))
		}
		if round > 0 && len(sources) <= nestedLockedSources {
			break
		}
		ops, err := recomputeClosures(ctx, r, n, sources, nil)
		if err != nil {
			return total, err
		}
		w := &rowWriter{e: e, meta: meta, schema: written} // in transactions: few rows
		for _, op := range ops {
			if err := w.add(ctx, op); err != nil {
				return total, err
			}
		}
		if err := w.flush(ctx); err != nil {
			return total, err
		}
		total += w.written
		cur = h
		e.builder.stage(ctx, "caught-up")
	}
	k, err := e.finishNested(ctx, n, meta, cur, written)
	return total + k, err
}

// finishNested is the last catch-up round, under the write lock: the rows
// of n are the closure of revision cur; it writes what the edges changed
// since, then the marker.
func (e *Engine) finishNested(ctx context.Context, n *nestedRel, meta store.WriteMeta, cur, written store.Revision) (int, error) {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	r, h, err := e.rebuildSnapshot(ctx, written)
	if err != nil {
		return 0, err
	}
	var ops []rowOp
	if h != cur {
		sources, err := e.edgeSources(ctx, n, cur, h)
		if err != nil {
			return 0, err
		}
		if ops, err = recomputeClosures(ctx, r, n, sources, nil); err != nil {
			return 0, err
		}
	}
	stale := eval.NestedStale(n.rel)
	chunk := max(1, e.batchOps()-1-markerOps) // room for the stale row and the marker
	want, rows := h, len(ops)
	for first := true; first || len(ops) > 0; first = false {
		part := ops[:min(chunk, len(ops))]
		ops = ops[len(part):]
		last := len(ops) == 0
		rev, err := e.st.Update(ctx, meta, func(ctx context.Context, tx store.Tx) error {
			if err := writeOps(ctx, tx, part); err != nil {
				return err
			}
			if !last {
				return nil
			}
			if err := tx.Delete(ctx, stale.Key()); err != nil {
				return err
			}
			return touchMarker(ctx, tx, n.rel)
		})
		if err != nil {
			return 0, err
		}
		if want++; rev != want {
			// Another process wrote between: its edges may be missing.
			if last {
				if _, err := e.st.Update(ctx, meta, func(ctx context.Context, tx store.Tx) error {
					return tx.Touch(ctx, stale)
				}); err != nil {
					return 0, err
				}
			}
			return 0, fmt.Errorf("%w: revision %d was written by another process", errNestedRestart, want)
		}
	}
	return rows, nil
}

// edgeSources returns the objects whose edges of n changed in the change
// sets after revision after, up to revision to.
func (e *Engine) edgeSources(ctx context.Context, n *nestedRel, after, to store.Revision) ([]string, error) {
	if after >= to {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	typ, rel := n.rel.Definition.Name, n.rel.Name
	seen := map[string]bool{}
	var out []string
	for cs, err := range e.st.Watch(ctx, after) {
		if err != nil {
			if errors.Is(err, store.ErrRevisionCompacted) {
				return nil, fmt.Errorf("%w: %w", errNestedRestart, err)
			}
			return nil, fmt.Errorf("engine: changes after revision %d: %w", after, err)
		}
		if cs.Revision > to {
			break
		}
		if cs.SchemaChanged {
			return nil, fmt.Errorf("%w: the schema changed", errNestedRestart)
		}
		for _, c := range cs.Changes {
			k := &c.Relationship
			if k.Resource.Type == typ && k.Relation == rel && k.Subject.Type == typ && k.Subject.Relation == n.sub && !seen[k.Resource.ID] {
				seen[k.Resource.ID] = true
				out = append(out, k.Resource.ID)
			}
		}
		if cs.Revision == to {
			break
		}
	}
	return out, nil
}

// rowWriter writes the rows of a rebuild while the index reads as stale:
// additions through the store's bulk loader (when it has one) in loads of
// nestedLoadRows, everything else in transactions of the store's batch
// limit.
type rowWriter struct {
	e    *Engine
	meta store.WriteMeta
	// schema is the revision of the schema the rows are computed for:
	// a batch is written only while it is in force (flushMu).
	schema  store.Revision
	bl      store.BulkLoader
	load    []tuple.Relationship
	tx      []rowOp
	written int
}

func (w *rowWriter) add(ctx context.Context, op rowOp) error {
	if op.touch && w.bl != nil {
		w.load = append(w.load, op.r)
		if len(w.load) >= nestedLoadRows {
			return w.flushLoad(ctx)
		}
		return nil
	}
	w.tx = append(w.tx, op)
	if len(w.tx) >= w.e.batchOps() {
		return w.flushTx(ctx)
	}
	return nil
}

func (w *rowWriter) flush(ctx context.Context) error {
	if err := w.flushLoad(ctx); err != nil {
		return err
	}
	return w.flushTx(ctx)
}

// inForce read-locks flushMu and checks that the rows' schema is the one
// in force, failing with errNestedRestart when it is not; the caller
// unlocks.
func (w *rowWriter) inForce(ctx context.Context) error {
	w.e.builder.flushMu.RLock()
	if _, _, err := w.e.rebuildSnapshot(ctx, w.schema); err != nil {
		w.e.builder.flushMu.RUnlock()
		return err
	}
	return nil
}

func (w *rowWriter) flushLoad(ctx context.Context) error {
	if len(w.load) == 0 {
		return nil
	}
	if err := w.inForce(ctx); err != nil {
		return err
	}
	defer w.e.builder.flushMu.RUnlock()
	_, k, err := w.bl.Import(ctx, w.meta, func(yield func(tuple.Relationship, error) bool) {
		for _, r := range w.load {
			if !yield(r, nil) {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	w.written += k
	w.load = w.load[:0]
	return nil
}

func (w *rowWriter) flushTx(ctx context.Context) error {
	if len(w.tx) == 0 {
		return nil
	}
	if err := w.inForce(ctx); err != nil {
		return err
	}
	defer w.e.builder.flushMu.RUnlock()
	if _, err := w.e.st.Update(ctx, w.meta, func(ctx context.Context, tx store.Tx) error {
		return writeOps(ctx, tx, w.tx)
	}); err != nil {
		return err
	}
	w.written += len(w.tx)
	w.tx = w.tx[:0]
	return nil
}

// nestedBuildOps returns the row writes that make the stored index of n
// the closure of the edges tx reads, when they are at most limit (fits);
// else fits is false.
func nestedBuildOps(ctx context.Context, tx store.Tx, n *nestedRel, limit int) (ops []rowOp, fits bool, err error) {
	g, err := loadNestedGraph(ctx, tx, n)
	if err != nil {
		return nil, false, err
	}
	_, err = diffClosure(ctx, tx, n, g, func(op rowOp) error {
		if len(ops) >= limit {
			return errStopDiff
		}
		ops = append(ops, op)
		return nil
	})
	if errors.Is(err, errStopDiff) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return ops, true, nil
}
