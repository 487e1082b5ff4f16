package engine

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// This file maintains the nested-group index (see engine/eval/nested.go
// for its rows): the transitive closure, with shortest distances, of the
// edges of each relation eval.NestedRelations names: the subject-set
// edges T:x#r@T:y#r of a self-nesting relation, and the edges
// T:x#parent@T:y of the tupleset of a recursive arrow
// (engine/eval/nestedarrow.go). Both are edges between objects of one
// type by one relation (nestedRel.sub tells their subject relation), and
// one code path maintains, rebuilds and verifies them. Every write that changes such edges rewrites the closure rows
// that change, in the same store transaction, so that a reader at any
// revision sees the closure of exactly that revision's edges. A change
// whose rows do not fit the transaction (the store's batch limit), an
// import, or a write made with the index off deletes the relation's
// marker row instead; the evaluator then walks at those revisions, and a
// rebuild (nestedbuild.go: in the background after such a write and when
// an engine opens on a stale index; RebuildNestedIndex on demand) writes
// the rows and the marker back.
//
// The rows are ordinary relationships with reserved relation names
// (tuple.Reserved), so every backend stores, versions and collects them
// like relationships. They never leave the engine: hiddenReader filters
// them out of every read made with an open relation (reads naming a
// relation cannot match them), hideChanges out of change sets and audit
// entries, and hiddenTx keeps deletes by filter off them.

// nestedRel is an indexed relation of a compiled schema, whose edges are
// T:x#rel@T:y#sub: a self-nesting relation (sub is rel's name) or the
// tupleset of a recursive arrow (sub is "": plain objects).
type nestedRel struct {
	rel     *schema.Relation
	sub     string // eval.NestedSubjectRelation(rel)
	closure string // eval.NestedClosureRelation(rel.Name)
}

// edgeFilter is the subject filter of n's edges from object id ("": from
// every object).
func (n *nestedRel) edgeFilter() *tuple.SubjectFilter {
	sub := n.sub
	if sub == "" {
		sub = tuple.Ellipsis
	}
	return &tuple.SubjectFilter{Type: n.rel.Definition.Name, Relation: sub}
}

// nestedIndexOf returns the indexed relations of s by (type, relation).
func nestedIndexOf(s *schema.Schema) map[relKey]*nestedRel {
	rels := eval.NestedRelations(s)
	if len(rels) == 0 {
		return nil
	}
	m := make(map[relKey]*nestedRel, len(rels))
	for _, r := range rels {
		m[relKey{r.Definition.Name, r.Name}] = &nestedRel{rel: r, sub: eval.NestedSubjectRelation(r), closure: eval.NestedClosureRelation(r.Name)}
	}
	return m
}

// relKey names a relation by its definition and name.
type relKey struct{ typ, rel string }

// nestedEdit is one change of an indexed edge: rel of object from gains
// (add) or loses the member set rel of object to.
type nestedEdit struct {
	from, to string
	add      bool
}

// nestedEdge returns the indexed relation whose edge r is, or nil.
func nestedEdge(ix map[relKey]*nestedRel, r tuple.Key) *nestedRel {
	if ix == nil {
		return nil
	}
	n := ix[relKey{r.Resource.Type, r.Relation}]
	if n == nil || r.Subject.Type != r.Resource.Type || r.Subject.Relation != n.sub {
		return nil
	}
	return n
}

// nestedBatch collects the edits of one write, by relation.
type nestedBatch struct {
	ix    map[relKey]*nestedRel
	edits map[*nestedRel][]nestedEdit
}

// note records the change of k when it is an indexed edge.
func (b *nestedBatch) note(k tuple.Key, add bool) {
	n := nestedEdge(b.ix, k)
	if n == nil {
		return
	}
	if b.edits == nil {
		b.edits = make(map[*nestedRel][]nestedEdit)
	}
	b.edits[n] = append(b.edits[n], nestedEdit{from: k.Resource.ID, to: k.Subject.ID, add: add})
}

// nestedOn reports whether this engine maintains and reads the index.
func (e *Engine) nestedOn() bool { return e.evalOpts.NestedIndex }

// apply brings the index of every relation b touched up to date inside
// tx, whose reads see the state before the write; budget is how many
// more row writes tx may take. It returns the relations left stale (their
// marker deleted: the change did not fit, or the index is off).
func (b *nestedBatch) apply(ctx context.Context, e *Engine, tx store.Tx, budget int) ([]*schema.Relation, error) {
	var stale []*schema.Relation
	for _, n := range slices.SortedFunc(maps.Keys(b.edits), func(a, b *nestedRel) int { return a.rel.Index - b.rel.Index }) {
		st, err := readMarker(ctx, tx, n.rel)
		if err != nil {
			return nil, err
		}
		if !st.Ready {
			// Already stale: the rebuild running catches up, or, after
			// one that failed, this write starts the next.
			stale = append(stale, n.rel)
			continue
		}
		if !e.nestedOn() {
			if err := tx.Delete(ctx, eval.NestedMarker(n.rel).Key()); err != nil {
				return nil, fmt.Errorf("engine: nested index of %s#%s: %w", n.rel.Definition.Name, n.rel.Name, err)
			}
			continue
		}
		ops, ok, err := nestedAdditions(ctx, tx, n, b.edits[n], budget)
		if err != nil {
			return nil, err
		}
		if !ok {
			if ops, err = nestedDiff(ctx, tx, n, b.edits[n]); err != nil {
				return nil, err
			}
		}
		if len(ops) > 0 {
			ops = append(ops, genOps(n.rel, st)...)
		}
		if len(ops) >= budget {
			if budget < 1 {
				return nil, fmt.Errorf("%w: the write fills the transaction and leaves no room to mark the nested index of %s#%s stale", store.ErrBatchTooLarge, n.rel.Definition.Name, n.rel.Name)
			}
			if err := tx.Delete(ctx, eval.NestedMarker(n.rel).Key()); err != nil {
				return nil, fmt.Errorf("engine: nested index of %s#%s: %w", n.rel.Definition.Name, n.rel.Name, err)
			}
			budget--
			stale = append(stale, n.rel)
			continue
		}
		if err := writeOps(ctx, tx, ops); err != nil {
			return nil, err
		}
		budget -= len(ops)
	}
	return stale, nil
}

// readMarker reads the marker rows of rel at r's state.
func readMarker(ctx context.Context, r relationshipQuerier, rel *schema.Relation) (eval.NestedMarkerState, error) {
	st, err := eval.ReadNestedMarker(ctx, r, rel)
	if err != nil {
		return st, fmt.Errorf("engine: nested index marker: %w", err)
	}
	return st, nil
}

// genOps returns the writes that give the closure rows of rel a new
// generation (eval.NestedGeneration) in place of the one st read: every
// transaction that changes the rows while the marker is there, or writes
// the marker, makes them, so that the closures loaded into memory
// (closuremem.go) are never read at a revision whose rows differ.
func genOps(rel *schema.Relation, st eval.NestedMarkerState) []rowOp {
	ops := make([]rowOp, 0, len(st.GenRows)+1)
	for _, r := range st.GenRows {
		ops = append(ops, rowOp{r: r})
	}
	gen := rand.Uint64()
	for gen == 0 || gen == st.Gen {
		gen = rand.Uint64()
	}
	return append(ops, rowOp{r: eval.NestedGeneration(rel, gen), touch: true})
}

// markerOps is how many row writes touchMarker makes at most: the
// generation row replaced and the marker.
const markerOps = 3

// touchMarker marks the index of rel complete inside tx, with a new
// generation.
func touchMarker(ctx context.Context, tx store.Tx, rel *schema.Relation) error {
	st, err := readMarker(ctx, tx, rel)
	if err != nil {
		return err
	}
	if err := writeOps(ctx, tx, genOps(rel, st)); err != nil {
		return err
	}
	if err := tx.Touch(ctx, eval.NestedMarker(rel)); err != nil {
		return fmt.Errorf("engine: nested index marker: %w", err)
	}
	return nil
}

// rowOp is one write of closure rows: a Touch of r, or a Delete of its key.
type rowOp struct {
	r     tuple.Relationship
	touch bool
}

func writeOps(ctx context.Context, tx store.Tx, ops []rowOp) error {
	for _, op := range ops {
		var err error
		if op.touch {
			err = tx.Touch(ctx, op.r)
		} else {
			err = tx.Delete(ctx, op.r.Key())
		}
		if err != nil {
			return fmt.Errorf("engine: nested index row %s: %w", op.r.Key(), err)
		}
	}
	return nil
}

// distances maps a member set's object ID to its shortest distance.
type distances map[string]int

// closureOf reads the closure rows of object id (its member sets and
// their distances).
func closureOf(ctx context.Context, r relationshipQuerier, n *nestedRel, id string) (distances, error) {
	typ := n.rel.Definition.Name
	out := distances{}
	f := tuple.Filter{ResourceType: typ, ResourceID: id, Relation: n.closure, Subject: &tuple.SubjectFilter{Type: typ}}
	for row, err := range r.QueryRelationships(ctx, f, store.QueryOptions{}) {
		if err != nil {
			return nil, fmt.Errorf("engine: nested index of %s:%s: %w", typ, id, err)
		}
		if d, ok := eval.NestedDistance(&row); ok {
			out[row.Subject.ID] = d
		}
	}
	return out, nil
}

// childrenOf reads the objects whose rel object id names as member sets.
func childrenOf(ctx context.Context, r relationshipQuerier, n *nestedRel, id string) ([]string, error) {
	typ := n.rel.Definition.Name
	var out []string
	f := tuple.Filter{ResourceType: typ, ResourceID: id, Relation: n.rel.Name, Subject: n.edgeFilter()}
	for row, err := range r.QueryRelationships(ctx, f, store.QueryOptions{}) {
		if err != nil {
			return nil, fmt.Errorf("engine: edges of %s:%s: %w", typ, id, err)
		}
		out = append(out, row.Subject.ID)
	}
	return out, nil
}

// ancestorsOf reads the objects whose closure holds id.
func ancestorsOf(ctx context.Context, r relationshipQuerier, n *nestedRel, id string) ([]string, error) {
	typ := n.rel.Definition.Name
	var out []string
	rr, ok := r.(store.ReverseTx)
	if !ok {
		return nil, fmt.Errorf("engine: nested index: the %T transaction cannot read by subject", r)
	}
	f := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: typ, ID: id}, ResourceType: typ, Relation: n.closure}
	for row, err := range rr.ReverseQueryRelationships(ctx, f, store.QueryOptions{}) {
		if err != nil {
			return nil, fmt.Errorf("engine: nested index of %s:%s: %w", typ, id, err)
		}
		if _, ok := eval.NestedDistance(&row); ok {
			out = append(out, row.Resource.ID)
		}
	}
	return out, nil
}

// nestedDiff computes the closure row writes that edits make, reading
// the state before them from tx.
func nestedDiff(ctx context.Context, tx store.Tx, n *nestedRel, edits []nestedEdit) ([]rowOp, error) {
	sources := make([]string, 0, len(edits))
	for _, ed := range edits {
		sources = append(sources, ed.from)
	}
	return recomputeClosures(ctx, tx, n, sources, func(children map[string][]string) {
		for _, ed := range edits { // the write, laid over the old edges in order
			kids := children[ed.from]
			kids = slices.DeleteFunc(kids, func(c string) bool { return c == ed.to })
			if ed.add {
				kids = append(kids, ed.to)
			}
			children[ed.from] = kids
		}
	})
}

// recomputeClosures computes the closure row writes that follow a change
// of the children of the objects sources, reading the closure rows before
// the change from r, and the edges from r with overlay applied to the
// children of the objects it recomputes (nil: r's edges are those after
// the change).
//
// The closure of an object changes only if it reaches a source in the
// old graph (a path to a changed edge starts with unchanged edges), so
// the objects to recompute, S, are the sources and their old ancestors.
// For an object outside S the old closure is the new one; the new
// distances of S follow by relaxation (Bellman-Ford) over its new edges,
// from the closures of its children outside S.
func recomputeClosures(ctx context.Context, r relationshipQuerier, n *nestedRel, sources []string, overlay func(children map[string][]string)) ([]rowOp, error) {
	inS := map[string]bool{}
	for _, src := range sources {
		if inS[src] {
			continue
		}
		inS[src] = true
		anc, err := ancestorsOf(ctx, r, n, src)
		if err != nil {
			return nil, err
		}
		for _, a := range anc {
			inS[a] = true
		}
	}
	S := slices.Sorted(maps.Keys(inS))
	children := make(map[string][]string, len(S))
	for _, s := range S {
		kids, err := childrenOf(ctx, r, n, s)
		if err != nil {
			return nil, err
		}
		children[s] = kids
	}
	if overlay != nil {
		overlay(children)
	}
	old := make(map[string]distances, len(S))
	outside := map[string]distances{}
	dist := make(map[string]distances, len(S))
	for _, s := range S {
		o, err := closureOf(ctx, r, n, s)
		if err != nil {
			return nil, err
		}
		old[s] = o
		d := distances{}
		for _, c := range children[s] {
			relax(d, c, 1)
			if inS[c] {
				continue
			}
			oc, ok := outside[c]
			if !ok {
				if oc, err = closureOf(ctx, r, n, c); err != nil {
					return nil, err
				}
				outside[c] = oc
			}
			for y, k := range oc {
				relax(d, y, k+1)
			}
		}
		dist[s] = d
	}
	for changed := true; changed; {
		changed = false
		for _, s := range S {
			d := dist[s]
			for _, c := range children[s] {
				if !inS[c] {
					continue
				}
				for y, k := range dist[c] {
					if relax(d, y, k+1) {
						changed = true
					}
				}
			}
		}
	}
	var ops []rowOp
	for _, s := range S {
		delete(dist[s], s) // a cycle back to s: s is in itself anyway
		ops = appendDiff(ops, n, s, old[s], dist[s])
	}
	return ops, nil
}

// nestedAdditions computes the closure row writes of edits that only add
// edges, in time proportional to the pairs they connect rather than to
// the closures of the ancestors (nestedDiff): an added edge a -> b can
// only shorten the distances from a and its ancestors u to b and its
// member sets v, to d(u,a) + 1 + d(b,v), distances that do not use the
// edge; each pair is compared with its stored row (one read) or with an
// earlier edge of the same write. ok is false when edits delete, or when
// the pairs are too many to read one by one (past budget): then nestedDiff
// decides.
func nestedAdditions(ctx context.Context, tx store.Tx, n *nestedRel, edits []nestedEdit, budget int) ([]rowOp, bool, error) {
	for _, ed := range edits {
		if !ed.add {
			return nil, false, nil
		}
	}
	type pair struct{ u, v string }
	typ := n.rel.Definition.Name
	stored := map[pair]int{} // rows read, 0 when absent
	set := map[pair]int{}    // new distances of this write
	dist := func(p pair) (int, error) {
		if d, ok := set[p]; ok {
			return d, nil
		}
		if d, ok := stored[p]; ok {
			return d, nil
		}
		d := 0
		f := tuple.Filter{ResourceType: typ, ResourceID: p.u, Relation: n.closure, Subject: &tuple.SubjectFilter{Type: typ, ID: p.v}}
		for row, err := range tx.QueryRelationships(ctx, f, store.QueryOptions{}) {
			if err != nil {
				return 0, fmt.Errorf("engine: nested index of %s:%s: %w", typ, p.u, err)
			}
			if k, ok := eval.NestedDistance(&row); ok {
				d = k
			}
		}
		stored[p] = d
		return d, nil
	}
	for _, ed := range edits {
		if ed.from == ed.to {
			continue // a loop shortens nothing
		}
		// The ancestors of a with their distances to it, and the member
		// sets of b with theirs, as this write left them so far.
		up := map[string]int{ed.from: 0}
		anc, err := ancestorsWithDist(ctx, tx, n, ed.from)
		if err != nil {
			return nil, false, err
		}
		for u, k := range anc {
			up[u] = k
		}
		down := map[string]int{ed.to: 0}
		desc, err := closureOf(ctx, tx, n, ed.to)
		if err != nil {
			return nil, false, err
		}
		for v, k := range desc {
			down[v] = k
		}
		for p, k := range set {
			if old, ok := up[p.u]; p.v == ed.from && (!ok || k < old) {
				up[p.u] = k
			}
			if old, ok := down[p.v]; p.u == ed.to && (!ok || k < old) {
				down[p.v] = k
			}
		}
		if len(up)*len(down) > 4*budget {
			return nil, false, nil
		}
		for _, u := range slices.Sorted(maps.Keys(up)) {
			for _, v := range slices.Sorted(maps.Keys(down)) {
				if u == v {
					continue
				}
				p := pair{u, v}
				cur, err := dist(p)
				if err != nil {
					return nil, false, err
				}
				if k := up[u] + 1 + down[v]; cur == 0 || k < cur {
					set[p] = k
				}
			}
		}
	}
	var ops []rowOp
	for _, p := range slices.SortedFunc(maps.Keys(set), func(a, b pair) int { return cmp.Or(cmp.Compare(a.u, b.u), cmp.Compare(a.v, b.v)) }) {
		if old := stored[p]; old != 0 {
			ops = append(ops, rowOp{r: eval.NestedRow(n.rel, p.u, p.v, old)})
		}
		ops = append(ops, rowOp{r: eval.NestedRow(n.rel, p.u, p.v, set[p]), touch: true})
	}
	return ops, true, nil
}

// ancestorsWithDist reads the objects whose closure holds id, with their
// distances to it.
func ancestorsWithDist(ctx context.Context, tx store.Tx, n *nestedRel, id string) (distances, error) {
	rr, ok := tx.(store.ReverseTx)
	if !ok {
		return nil, fmt.Errorf("engine: nested index: the %T transaction cannot read by subject", tx)
	}
	typ := n.rel.Definition.Name
	out := distances{}
	f := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: typ, ID: id}, ResourceType: typ, Relation: n.closure}
	for row, err := range rr.ReverseQueryRelationships(ctx, f, store.QueryOptions{}) {
		if err != nil {
			return nil, fmt.Errorf("engine: nested index of %s:%s: %w", typ, id, err)
		}
		if d, ok := eval.NestedDistance(&row); ok {
			out[row.Resource.ID] = d
		}
	}
	return out, nil
}

// relax lowers d[y] to k and reports whether it did.
func relax(d distances, y string, k int) bool {
	if v, ok := d[y]; ok && v <= k {
		return false
	}
	d[y] = k
	return true
}

// appendDiff appends the writes that turn the rows old of object s into
// want, in a deterministic order.
func appendDiff(ops []rowOp, n *nestedRel, s string, old, want distances) []rowOp {
	for _, y := range slices.Sorted(maps.Keys(old)) {
		if k, ok := want[y]; !ok || k != old[y] {
			ops = append(ops, rowOp{r: eval.NestedRow(n.rel, s, y, old[y])})
		}
	}
	for _, y := range slices.Sorted(maps.Keys(want)) {
		if k, ok := old[y]; !ok || k != want[y] {
			ops = append(ops, rowOp{r: eval.NestedRow(n.rel, s, y, want[y]), touch: true})
		}
	}
	return ops
}

// NestedIndexReport describes the nested-group index of one relation.
type NestedIndexReport struct {
	// Relation is "type#relation".
	Relation string
	// Ready is set when the index is complete at Revision (its marker is
	// there), so checks read it.
	Ready bool
	// Rows counts the closure rows stored.
	Rows int
	// Missing, Extra and Wrong count the rows a rebuild would add, remove
	// and correct (a different distance): all zero when the stored index
	// equals the one computed from scratch.
	Missing, Extra, Wrong int
	// Written counts the row writes a rebuild made (RebuildNestedIndex).
	Written int
}

// VerifyNestedIndex compares, at the head revision, the stored index of
// every indexed relation of the schema with the closure computed from
// scratch from the relationships.
func (e *Engine) VerifyNestedIndex(ctx context.Context) (Revision, []NestedIndexReport, error) {
	v, err := e.open(ctx, FullyConsistent())
	if err != nil {
		return 0, nil, err
	}
	if v.c == nil {
		return v.rev, nil, nil
	}
	var out []NestedIndexReport
	for _, n := range sortedNested(v.c.nested) {
		rep, err := nestedReport(ctx, v.reader, n)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, rep)
	}
	return v.rev, out, nil
}

// nestedReport compares the stored rows of n with the closure of the
// edges r holds.
func nestedReport(ctx context.Context, r relationshipQuerier, n *nestedRel) (NestedIndexReport, error) {
	st, err := readMarker(ctx, r, n.rel)
	if err != nil {
		return NestedIndexReport{}, err
	}
	g, err := loadNestedGraph(ctx, r, n)
	if err != nil {
		return NestedIndexReport{}, err
	}
	rep, err := diffClosure(ctx, r, n, g, nil)
	rep.Ready = st.Ready
	return rep, err
}

func sortedNested(ix map[relKey]*nestedRel) []*nestedRel {
	return slices.SortedFunc(maps.Values(ix), func(a, b *nestedRel) int { return a.rel.Index - b.rel.Index })
}

// hiddenReader is a store.Reader without the reserved rows, except for
// reads that name a reserved relation (the evaluator's and the index's).
type hiddenReader struct{ store.Reader }

// QueryRelationships implements store.Reader.
func (h hiddenReader) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if f.Relation != "" {
		return h.Reader.QueryRelationships(ctx, f, opts)
	}
	return visible(func(o store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
		return h.Reader.QueryRelationships(ctx, f, o)
	}, opts)
}

// ReverseQueryRelationships implements store.Reader.
func (h hiddenReader) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if f.Relation != "" {
		return h.Reader.ReverseQueryRelationships(ctx, f, opts)
	}
	return visible(func(o store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
		return h.Reader.ReverseQueryRelationships(ctx, f, o)
	}, opts)
}

// visible runs query with opts without the reserved rows. A limited read
// that met reserved rows reads on after the last row it saw, so that it
// still returns up to its limit and the store still applies a limit.
func visible(query func(store.QueryOptions) iter.Seq2[tuple.Relationship, error], opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		want := opts.Limit
		for {
			read, hidden := 0, 0
			var last tuple.Key
			for r, err := range query(opts) {
				if err != nil {
					yield(r, err)
					return
				}
				read++
				last = r.Key()
				if tuple.Reserved(r.Relation) {
					hidden++
					continue
				}
				if !yield(r, nil) {
					return
				}
			}
			if want <= 0 || hidden == 0 || read < opts.Limit {
				return // unlimited, or the store had no more
			}
			opts.Limit -= read - hidden
			opts.After = &last
		}
	}
}

// hiddenTx is a store.Tx whose reads and deletes by filter leave the
// reserved rows alone unless they name a reserved relation.
type hiddenTx struct{ store.Tx }

// QueryRelationships implements store.Tx.
func (h hiddenTx) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	if f.Relation != "" {
		return h.Tx.QueryRelationships(ctx, f, opts)
	}
	return visible(func(o store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
		return h.Tx.QueryRelationships(ctx, f, o)
	}, opts)
}

// DeleteMatching implements store.Tx: a filter without a relation
// lists its victims (relationships only) and deletes them by filters
// that name their relations.
func (h hiddenTx) DeleteMatching(ctx context.Context, f tuple.Filter, limit int) (int, error) {
	if f.Relation != "" {
		return h.Tx.DeleteMatching(ctx, f, limit)
	}
	var keys []tuple.Key
	for r, err := range h.QueryRelationships(ctx, f, store.QueryOptions{Limit: limit}) {
		if err != nil {
			return 0, err
		}
		keys = append(keys, r.Key())
	}
	return len(keys), h.deleteKeys(ctx, f, keys)
}

// deleteKeys deletes keys, the first matches of f in index order, with
// one store DeleteMatching per run of keys of one object and relation
// (a delete by filter is not charged against the store's batch limit,
// as one Delete per key would be).
func (h hiddenTx) deleteKeys(ctx context.Context, f tuple.Filter, keys []tuple.Key) error {
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j].Resource == keys[i].Resource && keys[j].Relation == keys[i].Relation {
			j++
		}
		g := tuple.Filter{ResourceType: keys[i].Resource.Type, ResourceID: keys[i].Resource.ID, Relation: keys[i].Relation, Subject: f.Subject}
		n, err := h.Tx.DeleteMatching(ctx, g, j-i)
		if err != nil {
			return err
		}
		if n != j-i {
			return fmt.Errorf("engine: delete %s: %d deleted, %d listed", formatFilter(g), n, j-i)
		}
		i = j
	}
	return nil
}

// ReverseQueryRelationships implements store.ReverseTx when the store's
// transaction does.
func (h hiddenTx) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	rr, ok := h.Tx.(store.ReverseTx)
	if !ok {
		return func(yield func(tuple.Relationship, error) bool) {
			yield(tuple.Relationship{}, fmt.Errorf("engine: the %T transaction cannot read by subject", h.Tx))
		}
	}
	return rr.ReverseQueryRelationships(ctx, f, opts)
}

// hideChanges returns cs without the changes of reserved rows, and false
// when cs changed only reserved rows (nothing a caller wrote).
func hideChanges(cs []store.Change) ([]store.Change, bool) {
	hidden := 0
	for i := range cs {
		if tuple.Reserved(cs[i].Relationship.Relation) {
			hidden++
		}
	}
	if hidden == 0 {
		return cs, true
	}
	out := make([]store.Change, 0, len(cs)-hidden)
	for _, c := range cs {
		if !tuple.Reserved(c.Relationship.Relation) {
			out = append(out, c)
		}
	}
	return out, len(out) > 0
}

// watchStore is the store's Watch without the reserved rows: a change set
// that changed only them (an index rebuild) is left out.
func (e *Engine) watchStore(ctx context.Context, after store.Revision) iter.Seq2[store.ChangeSet, error] {
	return func(yield func(store.ChangeSet, error) bool) {
		for cs, err := range e.st.Watch(ctx, after) {
			if err == nil {
				var any bool
				if cs.Changes, any = hideChanges(cs.Changes); !any && !cs.SchemaChanged {
					continue
				}
			}
			if !yield(cs, err) {
				return
			}
		}
	}
}

// headIndexes returns the invariants and the nested-group index of the
// head's schema (nil and nil without a schema).
func (e *Engine) headIndexes(ctx context.Context) (*invariantIndex, map[relKey]*nestedRel, error) {
	head, err := e.heads.head(ctx)
	if err != nil {
		return nil, nil, err
	}
	v, err := e.openAt(ctx, head)
	if err != nil {
		return nil, nil, err
	}
	if v.c == nil {
		return nil, nil, nil
	}
	return v.c.invariants, v.c.nested, nil
}

// mayMatch reports whether f can match an indexed edge of b's schema.
func (b *nestedBatch) mayMatch(f tuple.Filter) bool {
	for k, n := range b.ix {
		if f.ResourceType != k.typ || (f.Relation != "" && f.Relation != k.rel) {
			continue
		}
		if s := f.Subject; s != nil && (s.Type != k.typ || (s.Relation != "" && s.Relation != n.edgeFilter().Relation)) {
			continue
		}
		return true
	}
	return false
}

// batchOps is the store's limit on the writes of one transaction.
func (e *Engine) batchOps() int {
	if b, ok := e.st.(store.BatchLimiter); ok && b.MaxBatchOps() > 0 {
		return b.MaxBatchOps()
	}
	return store.DefaultMaxBatchOps
}

// reservedKey reports whether k names a reserved relation, which no
// caller may write or delete.
func reservedKey(k tuple.Key) bool {
	return tuple.Reserved(k.Relation) || tuple.Reserved(k.Subject.Relation)
}

// schemaNested updates the index inside a schema write's transaction: a
// relation the new schema no longer indexes (or indexes with edges of the
// other kind) loses its marker and rows; a
// relation it starts indexing gets its rows and marker when they fit the
// transaction, else it is returned for a rebuild after the commit.
func (e *Engine) schemaNested(ctx context.Context, tx store.Tx, prev, next map[relKey]*nestedRel) ([]*schema.Relation, error) {
	budget := e.batchOps() - 2
	for _, n := range sortedNested(prev) {
		if m := next[relKey{n.rel.Definition.Name, n.rel.Name}]; m != nil && m.sub == n.sub {
			continue
		}
		if err := tx.Delete(ctx, eval.NestedMarker(n.rel).Key()); err != nil {
			return nil, fmt.Errorf("engine: drop nested index of %s#%s: %w", n.rel.Definition.Name, n.rel.Name, err)
		}
		budget--
		// Rows past the budget stay, unread (no marker), until a later
		// schema indexes the relation again and its rebuild diffs them.
		k, err := tx.DeleteMatching(ctx, tuple.Filter{ResourceType: n.rel.Definition.Name, Relation: n.closure}, max(1, budget))
		if err != nil {
			return nil, fmt.Errorf("engine: drop nested index of %s#%s: %w", n.rel.Definition.Name, n.rel.Name, err)
		}
		budget -= k
	}
	var stale []*schema.Relation
	for _, n := range sortedNested(next) {
		m := prev[relKey{n.rel.Definition.Name, n.rel.Name}]
		if (m != nil && m.sub == n.sub) || !e.nestedOn() {
			continue
		}
		if m != nil {
			// Indexed before with the other kind of edges (a
			// self-nesting relation turned tupleset, or back): this
			// transaction still reads the old rows, so the rebuild
			// after the commit diffs them.
			stale = append(stale, n.rel)
			continue
		}
		if e.builder.building.Load() {
			// A rebuild writes rows that assume the index stale until it
			// marks it: it builds this one too, once it sees the schema.
			stale = append(stale, n.rel)
			continue
		}
		ops, fits, err := nestedBuildOps(ctx, tx, n, budget-markerOps)
		if err != nil {
			return nil, err
		}
		if !fits {
			stale = append(stale, n.rel)
			continue
		}
		if err := writeOps(ctx, tx, ops); err != nil {
			return nil, err
		}
		if err := touchMarker(ctx, tx, n.rel); err != nil {
			return nil, err
		}
		budget -= len(ops) + markerOps
	}
	return stale, nil
}

// staleOnLoad wraps the relationships of a bulk load: after the last one
// it appends the stale row of every indexed relation whose edges it
// loaded, so that the load's revision reads the index as stale. seen
// collects those relations for the rebuild after the load.
func staleOnLoad(ix map[relKey]*nestedRel, rels iter.Seq2[tuple.Relationship, error], seen map[*nestedRel]bool) iter.Seq2[tuple.Relationship, error] {
	if len(ix) == 0 {
		return rels
	}
	return func(yield func(tuple.Relationship, error) bool) {
		for r, err := range rels {
			if err == nil {
				if n := nestedEdge(ix, r.Key()); n != nil {
					seen[n] = true
				}
			}
			if !yield(r, err) || err != nil {
				return
			}
		}
		for _, n := range sortedNested(ix) {
			if seen[n] && !yield(eval.NestedStale(n.rel), nil) {
				return
			}
		}
	}
}

// markStaleFirst marks the index of the indexed relations that updates
// edit stale in a write of its own, before a write too large to take the
// marker's change (one that fills the store's batch limit), and returns
// them for the rebuild after it.
func (e *Engine) markStaleFirst(ctx context.Context, meta store.WriteMeta, ix map[relKey]*nestedRel, updates []Update) ([]*schema.Relation, error) {
	if len(ix) == 0 || len(updates) < e.batchOps() {
		return nil, nil
	}
	seen := map[*nestedRel]bool{}
	for _, u := range updates {
		if n := nestedEdge(ix, u.Relationship.Key()); n != nil {
			seen[n] = true
		}
	}
	if len(seen) == 0 {
		return nil, nil
	}
	var rels []*schema.Relation
	_, err := e.st.Update(ctx, meta, func(ctx context.Context, tx store.Tx) error {
		for _, n := range sortedNested(ix) {
			if seen[n] {
				rels = append(rels, n.rel)
				if err := tx.Touch(ctx, eval.NestedStale(n.rel)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("engine: mark the nested index stale: %w", err)
	}
	return rels, nil
}
