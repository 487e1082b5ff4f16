package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/schema"
)

// DefaultNestedMemoryBytes is the Options.NestedMemoryBytes used when it
// is zero.
const DefaultNestedMemoryBytes = 256 << 20

// closureLoadCost is how many bytes of an in-memory closure one load may
// spend per store read it replaced before it: a load reads every row, and
// reading a row in a scan costs far less than a seek for one pair, so
// waiting for one miss per closureLoadCost bytes (about eight rows) keeps
// the loads' work a small, bounded share of the reads they save, however
// often the rows change.
const closureLoadCost = 48

// closureMemory keeps the nested-group index's closures in memory
// (eval.ClosureIndex: Leopard's in-memory index) for the evaluator
// (eval.Options.Closures): one per indexed relation, of the generation
// that the checks asked for last. A check whose generation memory does
// not hold reads the store, counts a miss and, once the misses since the
// last load pay for a load (closureLoadCost), starts one in the
// background from the check's revision; one load runs at a time, and the
// closures together stay within maxBytes.
type closureMemory struct {
	e        *Engine
	maxBytes int64 // <= 0: off

	slots sync.Map     // relKey -> *closureSlot
	bytes atomic.Int64 // of the closures held
	job   soloJob      // a load runs

	loads, failures, tooLarge atomic.Uint64
	loadNanos                 atomic.Int64
}

// closureSlot holds the closure of one relation.
type closureSlot struct {
	idx    atomic.Pointer[eval.ClosureIndex]
	misses atomic.Int64 // checks that wanted another generation since the last load
	due    atomic.Int64 // misses that start the next load
}

// Closure implements eval.ClosureSource.
func (m *closureMemory) Closure(rel *schema.Relation, gen uint64, rev store.Revision) *eval.ClosureIndex {
	k := relKey{rel.Definition.Name, rel.Name}
	v, ok := m.slots.Load(k)
	if !ok {
		v, _ = m.slots.LoadOrStore(k, &closureSlot{})
	}
	sl := v.(*closureSlot)
	if c := sl.idx.Load(); c != nil && c.Gen() == gen {
		return c
	}
	if sl.misses.Add(1) >= sl.due.Load() && !m.job.busy.Load() {
		m.job.start(func() bool {
			sl.misses.Store(0)
			return true
		}, func() { m.load(sl, rel, gen, rev) })
	}
	return nil
}

// load reads the closure of rel at revision rev, where its generation is
// gen, and holds it in place of the one sl held.
func (m *closureMemory) load(sl *closureSlot, rel *schema.Relation, gen uint64, rev store.Revision) {
	ctx := m.e.builder.ctx // cancelled by Close
	start := time.Now()
	var held int64
	if old := sl.idx.Load(); old != nil {
		held = old.Bytes()
	}
	budget := m.maxBytes - (m.bytes.Load() - held)
	c, fits, err := m.read(ctx, rel, gen, rev, budget)
	switch {
	case err == nil && fits:
		sl.idx.Store(c)
		m.bytes.Add(c.Bytes() - held)
		sl.due.Store(max(1, c.Bytes()/closureLoadCost))
		m.loads.Add(1)
		m.loadNanos.Add(int64(time.Since(start)))
	case err == nil:
		// The store serves it; another try costs as much again, so it
		// waits as long as a load of the whole budget would.
		sl.due.Store(max(1, budget/closureLoadCost))
		m.tooLarge.Add(1)
	case errors.Is(err, store.ErrRevisionCompacted):
		// The check's revision was collected before the load began (an
		// old zookie): the next miss loads from its own.
		m.failures.Add(1)
	case ctx.Err() == nil:
		sl.due.Store(max(1, held/closureLoadCost))
		m.failures.Add(1)
		m.e.log.Warn("loading the nested-group index into memory failed; checks read it from the store", "relation", rel.Definition.Name+"#"+rel.Name, "error", err)
	}
}

// read loads the closure of rel at revision rev; fits is false when it
// takes more than budget bytes.
func (m *closureMemory) read(ctx context.Context, rel *schema.Relation, gen uint64, rev store.Revision, budget int64) (c *eval.ClosureIndex, fits bool, err error) {
	if budget <= 0 {
		return nil, false, nil
	}
	r, err := m.e.st.Snapshot(ctx, rev)
	if err != nil {
		return nil, false, err
	}
	return eval.LoadClosureIndex(ctx, r, rel, gen, budget)
}

// WaitNestedMemory waits until no load of the nested-group index into
// memory runs (see Options.NestedMemoryBytes), or ctx is done.
func (e *Engine) WaitNestedMemory(ctx context.Context) error {
	return e.closures.job.wait(ctx)
}
