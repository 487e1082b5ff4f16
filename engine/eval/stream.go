package eval

import (
	"context"
	"iter"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Streamed lookups. The walks of lookup.go hold every object they reach
// until they end, so a lookup's memory grows with its answer, and a page
// costs the whole walk. The commonest large lookups need no walk: when a
// permission is, on the object itself, a union of stored relations whose
// relationships name the requested subjects directly (view = reader +
// writer, each accepting users and nothing through which users could
// come in: no subject set that can contain them, no arrow), its answers
// are exactly those relationships. The store yields them in ID order, so
// the lookup merges one store scan per relation and yields each answer as
// it reads it: its memory is one relationship per scan, whatever the size
// of the answer, it stops reading when its consumer stops (a stream whose
// client does not read blocks the scan under flow control), and a page
// resumes the scans strictly after the cursor's ID instead of redoing the
// walk. An answer held only by caveated relationships is decided by Check,
// as the walk does; an uncaveated one is certain (it is within the depth
// limit, or the plan is not taken).

// directLeaf is a stored relation whose relationships are answers of a
// streamed lookup.
type directLeaf struct {
	rel *schema.Relation
	// wildcard is whether the relation accepts the subject type's
	// wildcard.
	wildcard bool
}

// directLeaves returns the stored relations whose relationships naming
// subjects of kind (typ, srel) are exactly rel's answers on any object,
// and whether rel has that shape: computed references and unions on the
// object itself, down to stored relations within the depth limit, none
// of which accepts a subject set that can contain such subjects. Arrows,
// intersections, exclusions and self need the walk, as does a subject
// set asked for that contains itself.
func (e *Evaluator) directLeaves(rel *schema.Relation, typ, srel string) ([]directLeaf, bool) {
	var leaves []directLeaf
	seen := map[*schema.Relation]bool{}
	ok := true
	var visit func(r *schema.Relation, h int)
	var rewrite func(w *schema.Rewrite, h int)
	visit = func(r *schema.Relation, h int) {
		if !ok || seen[r] {
			return
		}
		seen[r] = true
		if h > e.opts.MaxDepth || (srel != "" && r.Name == srel && r.Definition.Name == typ) {
			// Too deep, or a subject set that contains itself.
			ok = false
			return
		}
		if r.Rewrite != nil {
			rewrite(r.Rewrite, h)
			return
		}
		leaf := directLeaf{rel: r}
		direct := false
		for _, a := range r.Allowed {
			switch {
			case a.Relation != "":
				// A subject set of the kind asked for is an answer
				// itself, but one that can contain subjects of that
				// kind (itself nested) needs the walk.
				if a.Target == nil || e.an.canContain(a.Target, typ, srel) {
					ok = false
					return
				}
				if a.Type == typ && a.Relation == srel {
					direct = true
				}
			case a.Type == typ && srel == "":
				direct = true
				leaf.wildcard = leaf.wildcard || a.Wildcard
			}
		}
		if direct {
			leaves = append(leaves, leaf)
		}
	}
	rewrite = func(w *schema.Rewrite, h int) {
		if !ok {
			return
		}
		switch w.Kind {
		case schema.RewriteNil:
		case schema.RewriteComputed:
			visit(w.Relation, h+1)
		case schema.RewriteUnion:
			for _, c := range w.Children {
				rewrite(c, h)
			}
		default:
			ok = false
		}
	}
	visit(rel, 1)
	if !ok {
		return nil, false
	}
	return leaves, true
}

// streams reports whether the lookups of this request may take the
// streamed plan: the tests have not turned it off. Contextual
// relationships stream too: store.Overlay merges them into each scan in
// index order, after the cursor.
func (rq *request) streams() bool {
	return !rq.e.walkOnly
}

// scan is one ordered store scan of a streamed lookup: the IDs it
// yields (resource IDs for LookupResources, subject IDs for
// LookupSubjects), pulled one at a time; or, with fixed set, the one ID
// fixed.
type scan struct {
	next func() (tuple.Relationship, error, bool)
	stop func()
	id   func(*tuple.Relationship) string
	cur  tuple.Relationship
	ok   bool
	// key is the current relationship's ID.
	key string
	// certain: an uncaveated relationship of the scan is an answer.
	certain bool
	fixed   string
	done    bool
}

func newScan(seq iter.Seq2[tuple.Relationship, error], id func(*tuple.Relationship) string) *scan {
	next, stop := iter.Pull2(seq)
	return &scan{next: next, stop: stop, id: id, certain: true}
}

// advance reads the scan's next relationship.
func (s *scan) advance() error {
	if s.next == nil { // fixed: one ID, then done
		s.key, s.ok = s.fixed, !s.done
		s.done = true
		return nil
	}
	r, err, ok := s.next()
	if err != nil {
		s.ok = false
		return err
	}
	s.cur, s.ok = r, ok
	if ok {
		s.key = s.id(&s.cur)
	}
	return nil
}

// close stops the scan's store iterator.
func (s *scan) close() {
	if s.stop != nil {
		s.stop()
	}
}

// scanHeap is a min-heap of scans by their current ID.
type scanHeap []*scan

func (h scanHeap) less(i, j int) bool { return h[i].key < h[j].key }

func (h scanHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].key < h[l].key {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// merge yields, in ascending ID order, each ID the scans yield with
// whether it is certain (a relationship of a certain scan naming it is
// uncaveated), skipping skip (the wildcard, emitted apart). It reads one
// relationship ahead per scan, and keeps the scans in a heap by ID, so an
// ID costs O(log scans) comparisons.
func merge(scans []*scan, skip string, yield func(id string, certain bool) bool) error {
	defer func() {
		for _, s := range scans {
			s.close()
		}
	}()
	h := make(scanHeap, 0, len(scans))
	for _, s := range scans {
		if err := s.advance(); err != nil {
			return err
		}
		if s.ok {
			h = append(h, s)
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	for len(h) > 0 {
		low := h[0].key
		certain := false
		for len(h) > 0 && h[0].key == low {
			s := h[0]
			certain = certain || (s.certain && (s.next == nil || s.cur.Caveat == nil))
			if err := s.advance(); err != nil {
				return err
			}
			if !s.ok {
				h[0] = h[len(h)-1]
				h = h[:len(h)-1]
			}
			h.down(0)
		}
		if low != skip && !yield(low, certain) {
			return nil
		}
	}
	return nil
}

// answers yields, in order, the ids that merge makes of scans (without
// skip) after the cursor after: each one the scans found certain is
// granted, any other is decided by decide. It stops after limit answers
// (0: no limit) counting the emitted ones yielded before, or at the first
// error, which it yields. The undecided ones are decided together, up to
// confirmChunk at a time (fewer when the page lacks fewer, at least one
// per worker), on rq's workers (rq.confirm), each chunk by a request of
// its own (chunkRequest) that decide is given: what it holds is that
// chunk and its Checks' subproblems. With all set, every candidate is
// decided, the certain ones too (a scoped lookup tests each for its
// scope): decide is told whether the scans found it certain.
func answers[R any](ctx context.Context, rq *request, scans []*scan, skip, after string, limit, emitted int, all bool, decide func(ctx context.Context, rq *request, id string, certain bool) (CheckResult, error), answer func(id string, res CheckResult) R, yield func(R, error) bool) {
	type candidate struct {
		id      string
		certain bool
		res     CheckResult
	}
	var (
		pending []candidate
		todo    []int
		// decideErr is the first error of decide, which stops the merge.
		decideErr error
	)
	// flush decides and yields pending, and reports whether to go on.
	flush := func() bool {
		if len(todo) > 0 {
			// A request of its own per chunk: the subproblems its Checks
			// memoize, and what they charge to the memory budget, are
			// dropped with the chunk.
			crq := rq.chunkRequest()
			decideErr = crq.confirm(ctx, len(todo), func(ctx context.Context, k int) error {
				c := &pending[todo[k]]
				var derr error
				c.res, derr = decide(ctx, crq, c.id, c.certain)
				return derr
			})
			crq.done()
			if decideErr != nil {
				return false
			}
		}
		for _, c := range pending {
			if c.res.Permissionship == NoPermission {
				continue
			}
			if !yield(answer(c.id, c.res), nil) {
				return false
			}
			emitted++
			if limit > 0 && emitted >= limit {
				return false
			}
		}
		pending, todo = pending[:0], todo[:0]
		return true
	}
	granted := CheckResult{Permissionship: HasPermission}
	stopped := false
	err := merge(scans, skip, func(id string, certain bool) bool {
		if after != "" && id <= after {
			return true
		}
		if certain && !all && len(pending) == 0 {
			if !yield(answer(id, granted), nil) {
				stopped = true
				return false
			}
			emitted++
			stopped = limit > 0 && emitted >= limit
			return !stopped
		}
		pending = append(pending, candidate{id: id, certain: certain, res: granted})
		if !certain || all {
			todo = append(todo, len(pending)-1)
		}
		size := confirmChunk
		if limit > 0 {
			size = min(size, max(limit-emitted, rq.e.opts.Concurrency))
		}
		if len(todo) >= size || len(pending) >= confirmChunk {
			stopped = !flush()
			return !stopped
		}
		return true
	})
	if err == nil && !stopped {
		flush()
	}
	if err == nil {
		err = decideErr
	}
	if err != nil {
		var zero R
		yield(zero, err)
	}
}

// streamSubjects is LookupSubjects by the streamed plan: a scan of each
// leaf on the resource. The wildcard comes first, as in the walk's
// order; a caveated wildcard, which would list the subjects it
// excludes, is left to the walk. It reports false, having yielded
// nothing, when the plan does not apply.
func (rq *request) streamSubjects(ctx context.Context, req LookupSubjectsRequest, rel *schema.Relation, yield func(SubjectResult, error) bool) bool {
	if !rq.streams() || req.Within != nil {
		return false
	}
	leaves, ok := rq.e.directLeaves(rel, req.SubjectType, req.SubjectRelation)
	if !ok {
		return false
	}
	srel := req.SubjectRelation
	if srel == "" {
		srel = tuple.Ellipsis
	}
	filter := func(l directLeaf, id string) tuple.Filter {
		return tuple.Filter{ResourceType: req.Resource.Type, ResourceID: req.Resource.ID, Relation: l.rel.Name,
			Subject: &tuple.SubjectFilter{Type: req.SubjectType, ID: id, Relation: srel}}
	}
	// The wildcard: certain, caveated (the walk's case) or absent.
	wild, wildCertain := false, false
	for _, l := range leaves {
		if !l.wildcard {
			continue
		}
		rels, err := rq.query(ctx, filter(l, tuple.Wildcard))
		if err != nil {
			yield(SubjectResult{}, err)
			return true
		}
		for _, r := range rels {
			wild = true
			wildCertain = wildCertain || r.Caveat == nil
		}
	}
	if wild && !wildCertain {
		return false
	}
	rq.e.streamed.Add(1)
	emitted := 0
	if wild && req.After == "" {
		if !yield(SubjectResult{SubjectID: tuple.Wildcard, Permissionship: HasPermission}, nil) {
			return true
		}
		emitted++
		if req.Limit > 0 && emitted >= req.Limit {
			return true
		}
	}
	after := req.After
	if after == tuple.Wildcard {
		after = ""
	}
	var scans []*scan
	subID := func(r *tuple.Relationship) string { return r.Subject.ID }
	for _, l := range leaves {
		opts := store.QueryOptions{Now: rq.now}
		if after != "" {
			opts.After = &tuple.Key{Resource: req.Resource, Relation: l.rel.Name, Subject: tuple.SubjectRef{Type: req.SubjectType, ID: after, Relation: req.SubjectRelation}}
		}
		scans = append(scans, newScan(rq.reader.QueryRelationships(ctx, filter(l, ""), opts), subID))
	}
	sub := tuple.SubjectRef{Type: req.SubjectType, Relation: req.SubjectRelation}
	answers(ctx, rq, scans, tuple.Wildcard, after, req.Limit, emitted, false, func(ctx context.Context, rq *request, id string, _ bool) (CheckResult, error) {
		if wild {
			// Every subject of the type has the permission.
			return CheckResult{Permissionship: HasPermission}, nil
		}
		sub := sub
		sub.ID = id
		r, err := rq.check(ctx, nil, rel, req.Resource.ID, sub)
		return r.checkResult(), err
	}, func(id string, res CheckResult) SubjectResult {
		return SubjectResult{SubjectID: id, Permissionship: res.Permissionship, MissingContext: res.MissingContext}
	}, yield)
	return true
}

// chunkRequest returns a request for deciding one chunk of a streamed
// lookup's candidates: rq's snapshot, clock, caveat context, contextual
// relationships and goroutines, with a memo and a memory account of its
// own, which the caller ends (done) once the chunk is decided. A lookup
// deciding a million candidates thus holds one chunk's subproblems at a
// time, not a million; the cross-request cache still shares their
// answers.
func (rq *request) chunkRequest() *request {
	c := &request{e: rq.e, reader: rq.reader, rev: rq.rev, now: rq.now, context: rq.context, stats: rq.stats,
		points: rq.points, batch: rq.batch, tokens: rq.tokens, uncached: rq.uncached, overlay: rq.overlay, nestedEdges: rq.nestedEdges}
	c.mem.m = rq.mem.m
	return c
}
