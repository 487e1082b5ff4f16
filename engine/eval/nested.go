package eval

import (
	"context"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// The nested-group index (Leopard-style) keeps, for each relation that
// nests only in itself (NestedRelations: "group#member: user |
// group#member"), the transitive closure of its subject-set edges as
// rows beside the relationships, written by the engine in the same
// transaction as the edges they follow (engine/nested.go). A closure row
//
//	T:x#~r@T:y#~k
//
// says that T:y#r is a member set of T:x#r at shortest distance k >= 1
// (k edges x -> ... -> y; no row for x itself). The tupleset of a
// recursive arrow (parent of "manage = admin + parent->manage",
// NestedArrows) gets the same rows for its edges T:x#parent@T:y: y is an
// ancestor of x at distance k (nestedarrow.go reads them). A marker row
//
//	T:~#~~r@T:~
//
// says that the rows of T#r are complete at the revisions that see it
// (and not the stale row T:~#~~r@T:~#~stale, which a bulk import adds):
// the engine deletes it in the same transaction as any change it cannot
// follow (an index turned off, an oversized change) and writes it back
// with a rebuild. The names are reserved (tuple.Reserved): no
// schema can declare them and the engine hides them from every read.
//
// The evaluator reads the rows only at revisions that see the marker, so
// every answer is that of the walk over the relationships at the same
// revision, with the same heights (the depth limit fails the same
// requests).

// NestedRelations returns the relations of s whose edges the
// nested-group index keeps the closure of: the self-nesting relations
// (not permissions) whose allowed subjects are plain objects or
// wildcards (with or without caveats and expirations) and their own
// subject set T#r without a caveat or expiration, which they allow, with
// edges T:x#r@T:y#r; and the tuplesets of the recursive permissions
// NestedArrows names (parent: T), with edges T:x#parent@T:y. Neither is
// renamed (@renamed_from), which would merge another name's rows into
// theirs. NestedSubjectRelation tells the two apart.
func NestedRelations(s *schema.Schema) []*schema.Relation {
	tuplesets := map[*schema.Relation]bool{}
	for _, na := range NestedArrows(s) {
		tuplesets[na.Parent] = true
	}
	var out []*schema.Relation
	for _, typ := range slices.Sorted(maps.Keys(s.Definitions)) {
		for _, rel := range s.Definitions[typ].Ordered {
			if nestable(rel) || tuplesets[rel] {
				out = append(out, rel)
			}
		}
	}
	return out
}

// NestedSubjectRelation returns the subject relation of the edges of
// rel, one of NestedRelations: rel's own name for a self-nesting
// relation (T:x#r@T:y#r), "" for a tupleset (T:x#parent@T:y).
func NestedSubjectRelation(rel *schema.Relation) string {
	if nestable(rel) {
		return rel.Name
	}
	return ""
}

// nestable reports whether rel qualifies for the nested-group index.
func nestable(rel *schema.Relation) bool {
	if rel.IsPermission || rel.RenamedFrom != "" {
		return false
	}
	self := false
	for _, a := range rel.Allowed {
		if a.Relation == "" {
			continue // a plain object or a wildcard: a terminal subject
		}
		if a.Type != rel.Definition.Name || a.Relation != rel.Name || a.Caveat != nil || a.Expiration {
			return false
		}
		self = true
	}
	return self
}

// NestedClosureRelation is the reserved relation of the closure rows of
// relation rel.
func NestedClosureRelation(rel string) string { return tuple.ReservedPrefix + rel }

// NestedMarkerRelation is the reserved relation of the marker row of
// relation rel.
func NestedMarkerRelation(rel string) string {
	return tuple.ReservedPrefix + tuple.ReservedPrefix + rel
}

// NestedMarkerID is the object ID of marker rows.
const NestedMarkerID = tuple.ReservedPrefix

// NestedMarker returns the marker row of rel.
func NestedMarker(rel *schema.Relation) tuple.Relationship {
	typ := rel.Definition.Name
	return tuple.Relationship{
		Resource: tuple.ObjectRef{Type: typ, ID: NestedMarkerID},
		Relation: NestedMarkerRelation(rel.Name),
		Subject:  tuple.SubjectRef{Type: typ, ID: NestedMarkerID},
	}
}

// NestedRow returns the closure row saying that rel of object to is a
// member set of rel of object from at distance d (for a tupleset: that
// to is an ancestor of from).
func NestedRow(rel *schema.Relation, from, to string, d int) tuple.Relationship {
	typ := rel.Definition.Name
	return tuple.Relationship{
		Resource: tuple.ObjectRef{Type: typ, ID: from},
		Relation: NestedClosureRelation(rel.Name),
		Subject:  tuple.SubjectRef{Type: typ, ID: to, Relation: tuple.ReservedPrefix + strconv.Itoa(d)},
	}
}

// NestedDistance returns the distance a closure row records, or false
// when r is not a closure row.
func NestedDistance(r *tuple.Relationship) (int, bool) {
	s, ok := strings.CutPrefix(r.Subject.Relation, tuple.ReservedPrefix)
	if !ok || r.Resource.ID == r.Subject.ID {
		return 0, false
	}
	d, err := strconv.Atoi(s)
	if err != nil || d < 1 {
		return 0, false
	}
	return d, true
}

// nestedState caches, per indexed relation, whether the marker is present
// at the last revision asked about: revisions never change, so the answer
// is exact for that revision.
type nestedState struct {
	rev store.Revision
	ok  bool
	gen uint64
}

// nestedReady reports whether the index of rel is complete at rq's
// revision (see NestedMarkerState.Ready).
func (rq *request) nestedReady(ctx context.Context, rel *schema.Relation) bool {
	ok, _ := rq.nestedGen(ctx, rel)
	return ok
}

// nestedGen is nestedReady with the index's generation at rq's revision
// (0: none recorded).
func (rq *request) nestedGen(ctx context.Context, rel *schema.Relation) (bool, uint64) {
	p := &rq.e.nestedState[rel.Index]
	if st := p.Load(); st != nil && st.rev == rq.rev {
		return st.ok, st.gen
	}
	m, err := ReadNestedMarker(ctx, rq.reader, rel)
	if err != nil {
		return false, 0
	}
	p.Store(&nestedState{rev: rq.rev, ok: m.Ready, gen: m.Gen})
	return m.Ready, m.Gen
}

// NestedMarkerState is what the marker rows of an indexed relation say
// at one state of the store.
type NestedMarkerState struct {
	// Ready is set when the index is complete: its marker row is there
	// and its stale row (NestedStale) is not.
	Ready bool
	// Gen is the generation of the closure rows (NestedGeneration); 0
	// when no generation row is there.
	Gen uint64
	// GenRows are the generation rows there (one, unless none).
	GenRows []tuple.Relationship
}

// ReadNestedMarker reads the marker rows of rel at r's state.
func ReadNestedMarker(ctx context.Context, r interface {
	QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error]
}, rel *schema.Relation) (NestedMarkerState, error) {
	m := NestedMarker(rel)
	f := tuple.Filter{ResourceType: m.Resource.Type, ResourceID: m.Resource.ID, Relation: m.Relation,
		Subject: &tuple.SubjectFilter{Type: m.Subject.Type, ID: m.Subject.ID}}
	var st NestedMarkerState
	stale := false
	for row, err := range r.QueryRelationships(ctx, f, store.QueryOptions{}) {
		if err != nil {
			return NestedMarkerState{}, err
		}
		switch rel := row.Subject.Relation; {
		case rel == "":
			st.Ready = true
		case rel == nestedStaleRelation:
			stale = true
		case strings.HasPrefix(rel, nestedGenPrefix):
			if g, err := strconv.ParseUint(rel[len(nestedGenPrefix):], 16, 64); err == nil && g != 0 {
				st.Gen = g
			}
			st.GenRows = append(st.GenRows, row)
		}
	}
	if stale {
		st.Ready = false
	}
	return st, nil
}

// nestedGenPrefix starts the subject relation of generation rows.
const nestedGenPrefix = tuple.ReservedPrefix + "g"

// NestedGeneration returns the generation row of rel for generation gen
// (not 0): the engine replaces it, in the same transaction, whenever the
// closure rows change while the marker is there, and when it writes the
// marker, so that two revisions with the same generation row (and the
// marker) hold the same closure rows. Generations are random, so that
// two lineages of a store (a restored backup) do not share one.
func NestedGeneration(rel *schema.Relation, gen uint64) tuple.Relationship {
	r := NestedMarker(rel)
	r.Subject.Relation = nestedGenPrefix + strconv.FormatUint(gen, 16)
	return r
}

// nestedStaleRelation is the subject relation of stale rows.
const nestedStaleRelation = tuple.ReservedPrefix + "stale"

// NestedStale returns the stale row of rel: while it is there the index is
// not read, whether the marker is there or not. A bulk import, which
// writes only relationships, appends it when it loads edges of rel, so
// that the import's own revision already reads as stale.
func NestedStale(rel *schema.Relation) tuple.Relationship {
	r := NestedMarker(rel)
	r.Subject.Relation = nestedStaleRelation
	return r
}

// nestedPointReads is how many member sets of the subject a nested check
// point-reads in the closure of the object; past it, it scans the closure
// of the object once instead.
const nestedPointReads = 16

// nestedCheck answers f's relation, when the nested-group index covers it
// and is complete at the request's revision, with the walk up from sub's
// answer and height (see directFromSubject): the direct relationships
// naming sub (or its wildcard) give the objects y whose rel holds sub at
// height 1, and one closure row (f's object, y) each gives the distance
// from f's object to y. ok is false when the index does not apply (then
// the walk decides): caveated relationships, contextual edges of rel (nestedUsable),
// a store error, or a grant beyond the depth limit.
func (rq *request) nestedCheck(ctx context.Context, f *frame, sub tuple.SubjectRef) (result, bool) {
	rel := f.rel
	if !rq.e.nested[rel.Index] || (rq.nestedEdges != nil && rq.nestedEdges[rel.Index]) {
		return result{}, false
	}
	typ := rel.Definition.Name
	seeds, h0, expires, ok := rq.nestedSeeds(ctx, rel, sub)
	if !ok {
		return result{}, false
	}
	ready, gen := rq.nestedGen(ctx, rel)
	if !ready {
		return result{}, false
	}
	h := int32(-1) // the shortest height found; -1: none
	closure := rq.e.nestedClosure[rel.Index]
	mem := rq.closureIndex(rel, gen, len(seeds))
	if len(seeds) <= nestedPointReads {
		for _, y := range seeds {
			if y == f.id {
				h = shorter(h, h0)
				continue
			}
			if mem != nil {
				if d, ok := mem.Distance(f.id, y); ok {
					h = shorter(h, h0+int32(d))
				}
				continue
			}
			fl := tuple.Filter{ResourceType: typ, ResourceID: f.id, Relation: closure,
				Subject: &tuple.SubjectFilter{Type: typ, ID: y}}
			// A pair has one row (its shortest distance): the scan stops
			// at it instead of reading on to the end of its range.
			rows, err := rq.appendQuery(ctx, rq.scratchRels(), fl, store.QueryOptions{Limit: 1})
			if err != nil {
				return result{}, false
			}
			for i := range rows {
				if d, ok := NestedDistance(&rows[i]); ok {
					h = shorter(h, h0+int32(d))
				}
			}
			rq.keepScratch(rows)
		}
	} else {
		// Many seeds: the closure of the object once, matched against
		// them.
		at := make(map[string]bool, len(seeds))
		for _, y := range seeds {
			at[y] = true
		}
		if at[f.id] {
			h = shorter(h, h0)
		}
		if mem != nil {
			mem.Each(f.id, func(y string, d int) {
				if at[y] {
					h = shorter(h, h0+int32(d))
				}
			})
		} else {
			fl := tuple.Filter{ResourceType: typ, ResourceID: f.id, Relation: closure, Subject: &tuple.SubjectFilter{Type: typ}}
			rows, err := rq.appendQuery(ctx, rq.scratchRels(), fl, store.QueryOptions{})
			if err != nil {
				return result{}, false
			}
			for i := range rows {
				if d, ok := NestedDistance(&rows[i]); ok && at[rows[i].Subject.ID] {
					h = shorter(h, h0+int32(d))
				}
			}
			rq.keepScratch(rows)
		}
	}
	res := resNo
	if h >= 0 {
		// As revSet.member: the path of height h from this frame must fit.
		if int(f.depth)-1+int(h) > rq.e.opts.MaxDepth {
			return result{}, false
		}
		res = resYes
		res.h = h - 1
	}
	res.expires = expires
	return res, true
}

// closureIndex returns the in-memory closure of rel at generation gen
// (Options.Closures), or nil; reads is how many store reads it would
// save (none: nil without asking).
func (rq *request) closureIndex(rel *schema.Relation, gen uint64, reads int) *ClosureIndex {
	src := rq.e.opts.Closures
	if src == nil || gen == 0 || reads == 0 {
		return nil
	}
	c := src.Closure(rel, gen, rq.rev)
	if c != nil {
		rq.count(PlanNestedMemory)
	}
	return c
}

// shorter returns the shorter of the heights h (-1: none yet) and v.
func shorter(h, v int32) int32 {
	if h < 0 || v < h {
		return v
	}
	return h
}

// nestedClosureNames returns NestedClosureRelation of every relation that
// nested marks, by relation index ("" for the others), so that a check
// does not build the name.
func nestedClosureNames(s *schema.Schema, nested []bool) []string {
	names := make([]string, len(nested))
	for _, d := range s.Definitions {
		for _, r := range d.Relations {
			if r.Index < len(nested) && nested[r.Index] {
				names[r.Index] = NestedClosureRelation(r.Name)
			}
		}
	}
	return names
}

// newNested marks the relations a check answers from the index.
func newNested(s *schema.Schema, on bool) ([]bool, []atomic.Pointer[nestedState]) {
	n := s.NumRelations
	marks := make([]bool, n)
	if on {
		for _, rel := range NestedRelations(s) {
			// A tupleset's closure answers its recursive permissions
			// (nestedArrowCheck), not checks of the tupleset.
			marks[rel.Index] = nestable(rel)
		}
	}
	return marks, make([]atomic.Pointer[nestedState], n)
}

// nestedSeeds returns the objects whose rel holds sub directly (at height
// h0: 1 for a plain subject, read from its relationships and its type's
// wildcard; 0 for the subject set rel of an object itself), and the
// earliest expiration read. ok is false when the index cannot answer for
// sub: a caveated relationship, another subject set, a store error.
func (rq *request) nestedSeeds(ctx context.Context, rel *schema.Relation, sub tuple.SubjectRef) (seeds []string, h0 int32, expires time.Time, ok bool) {
	typ := rel.Definition.Name
	if sub.Relation != "" {
		if sub.Type != typ || sub.Relation != rel.Name {
			return nil, 0, time.Time{}, false
		}
		return []string{sub.ID}, 0, time.Time{}, true
	}
	info := &rq.e.an.direct[rel.Index]
	read := func(id string) bool {
		rf := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: sub.Type, ID: id, Relation: tuple.Ellipsis},
			ResourceType: typ, Relation: rel.Name}
		rels, err := rq.appendReverseQuery(ctx, rq.scratchRels(), rf, store.QueryOptions{Now: rq.now})
		if err != nil {
			return false
		}
		defer rq.keepScratch(rels)
		for i := range rels {
			r := &rels[i]
			if r.Caveat != nil {
				return false
			}
			expires = minTime(expires, r.Expiration)
			seeds = append(seeds, r.Resource.ID)
		}
		return true
	}
	if sub.ID != tuple.Wildcard && info.plain[sub.Type] && !read(sub.ID) {
		return nil, 0, time.Time{}, false
	}
	if info.wildcard[sub.Type] && !read(tuple.Wildcard) {
		return nil, 0, time.Time{}, false
	}
	return seeds, 1, expires, true
}

// nestedMembers is the walk up from sub over rel (reverseMembers) read
// from the index: the seeds, and the objects whose closure holds a seed,
// each at its shortest height. ok is false where nestedCheck's is, and
// when the objects are more than the walk's budget (the walk would give up
// too).
func (rq *request) nestedMembers(ctx context.Context, rel *schema.Relation, sub tuple.SubjectRef) (ids map[string]revVal, expires time.Time, ok bool) {
	if !rq.e.nested[rel.Index] || (rq.nestedEdges != nil && rq.nestedEdges[rel.Index]) {
		return nil, time.Time{}, false
	}
	seeds, h0, expires, ok := rq.nestedSeeds(ctx, rel, sub)
	if !ok || !rq.nestedReady(ctx, rel) {
		return nil, time.Time{}, false
	}
	typ := rel.Definition.Name
	ids = make(map[string]revVal, len(seeds))
	at := func(id string, h int32) {
		if v, ok := ids[id]; !ok || h < v.h {
			ids[id] = revVal{exact: true, h: h}
		}
	}
	for _, y := range seeds {
		at(y, h0)
	}
	closure := NestedClosureRelation(rel.Name)
	for _, y := range seeds {
		rf := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: typ, ID: y}, ResourceType: typ, Relation: closure}
		for r, err := range rq.reader.ReverseQueryRelationships(ctx, rf, store.QueryOptions{After: nestedRowsAfter(typ, y)}) {
			if err != nil {
				return nil, time.Time{}, false
			}
			if d, ok := NestedDistance(&r); ok {
				at(r.Resource.ID, h0+int32(d))
			}
		}
		if b := rq.e.reverseBudget; b > 0 && len(ids) > b {
			return nil, time.Time{}, false
		}
	}
	return ids, expires, true
}
