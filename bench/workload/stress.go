package workload

import (
	"iter"
	"math/rand/v2"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// The stress workloads each isolate one shape that is cheap to describe and
// expensive to evaluate. Their schemas are deliberately tiny.

const groupDocSchema = `definition user {}

definition group {
	relation member: user | group#member
}

definition document {
	relation viewer: user | group#member
	permission view = viewer
}
`

const folderDocSchema = `definition user {}

definition folder {
	relation viewer: user
	permission view = viewer
}

definition document {
	relation parent: folder
	relation viewer: user
	permission view = viewer + parent->view
}
`

// userID derives the ID of user n of kind k: random-looking, distinct
// per seed, so two seeds give different relationships of the same shape.
func userID(seed, k, n uint64) string { return id("u", hash3(seed, k, n)>>8) }

// churn is the state of a source's writes: it alternately adds a fresh
// relationship and removes the one it added before, so data sets keep their
// size and the facts that Check expectations rest on never change.
type churn struct {
	stream  uint64
	n       uint64
	pending []tuple.Relationship
}

// next returns the next write: the deletion of the pending relationships if
// there are any, otherwise the creation of fresh(name), where name is an ID
// no data set and no other stream uses.
func (c *churn) next(fresh func(name string) []tuple.Relationship) Request {
	if c.pending != nil {
		req := Request{Op: OpWrite}
		for _, r := range c.pending {
			req.Updates = append(req.Updates, Update{Delete: true, Relationship: r})
		}
		c.pending = nil
		return req
	}
	c.n++
	c.pending = fresh(id("w", c.stream) + "-" + id("", c.n))
	req := Request{Op: OpWrite}
	for _, r := range c.pending {
		req.Updates = append(req.Updates, Update{Relationship: r})
	}
	return req
}

// one adapts a function that makes one relationship for churn.next.
func one(f func(name string) tuple.Relationship) func(string) []tuple.Relationship {
	return func(name string) []tuple.Relationship { return []tuple.Relationship{f(name)} }
}

// deepChain: chains of groups nested chainDepth deep. Group l of chain k
// has group l+1 as a member set and one user of its own; the last group
// has chainLeaves users; chainDocs documents are viewable by group 0.
type deepChain struct {
	base
	chains uint64
}

const (
	chainDepth  = 30
	chainLeaves = 20
	chainDocs   = 5
	chainRels   = (chainDepth - 1) + chainDepth + chainLeaves + chainDocs
)

func newDeepChain(b base) *deepChain {
	return &deepChain{base: b, chains: max(1, uint64(b.scale.Target())/chainRels)}
}

func (w *deepChain) Name() string   { return "deep-chain" }
func (w *deepChain) Schema() string { return groupDocSchema }
func (w *deepChain) Size() int      { return int(w.chains * chainRels) }

func (w *deepChain) group(k uint64, l int) string { return id("c", k) + "-g" + id("", uint64(l)) }
func (w *deepChain) doc(k uint64, j int) string   { return id("c", k) + "-d" + id("", uint64(j)) }

// levelUser is the user directly in group l; leaf i is levelUser(k, depth+i).
func (w *deepChain) levelUser(k uint64, l int) string {
	return userID(w.seed, k, uint64(l))
}

func (w *deepChain) Relationships() iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for k := range w.chains {
			for l := range chainDepth {
				g := w.group(k, l)
				if l+1 < chainDepth {
					if !yield(relSet("group", g, "member", "group", w.group(k, l+1), "member"), nil) {
						return
					}
				}
				if !yield(rel("group", g, "member", "user", w.levelUser(k, l)), nil) {
					return
				}
			}
			last := w.group(k, chainDepth-1)
			for i := range chainLeaves {
				if !yield(rel("group", last, "member", "user", w.levelUser(k, chainDepth+i)), nil) {
					return
				}
			}
			for j := range chainDocs {
				if !yield(relSet("document", w.doc(k, j), "viewer", "group", w.group(k, 0), "member"), nil) {
					return
				}
			}
		}
	}
}

func (w *deepChain) Source(stream uint64) Source {
	return &deepChainSource{w: w, r: w.rng(stream), churn: churn{stream: stream}}
}

type deepChainSource struct {
	w     *deepChain
	r     *rand.Rand
	churn churn
}

func (s *deepChainSource) Next(op Op) Request {
	w, r := s.w, s.r
	k := r.Uint64N(w.chains)
	doc := tuple.ObjectRef{Type: "document", ID: w.doc(k, r.IntN(chainDocs))}
	// Mostly leaves: the deepest, most expensive members.
	member := func(k uint64) tuple.SubjectRef {
		l := chainDepth + r.IntN(chainLeaves)
		if r.IntN(4) == 0 {
			l = r.IntN(chainDepth)
		}
		return tuple.SubjectRef{Type: "user", ID: w.levelUser(k, l)}
	}
	switch op {
	case OpCheck:
		if r.IntN(100) < 80 || w.chains == 1 {
			return Request{Op: op, Resource: doc, Permission: "view", Subject: member(k), Expect: ExpectAllowed}
		}
		other := (k + 1 + r.Uint64N(w.chains-1)) % w.chains
		return Request{Op: op, Resource: doc, Permission: "view", Subject: member(other), Expect: ExpectDenied}
	case OpLookupResources:
		return Request{Op: op, ResourceType: "document", Permission: "view", Subject: member(k)}
	case OpLookupSubjects:
		return Request{Op: op, Resource: doc, Permission: "view", SubjectType: "user"}
	}
	l := r.IntN(chainDepth)
	return s.churn.next(one(func(name string) tuple.Relationship {
		return rel("group", w.group(k, l), "member", "user", name)
	}))
}

// wideGroup: one group ("big") with up to 100,000 direct members, and many
// ordinary groups of groupSize members. Every document is viewable by one
// ordinary group and one user; one in bigShare also by the big group.
type wideGroup struct {
	base
	bigMembers uint64
	groups     uint64
}

const (
	groupSize     = 20
	docsPerGroup  = 2
	bigShare      = 50
	maxBigMembers = 100_000
)

func newWideGroup(b base) *wideGroup {
	t := uint64(b.scale.Target())
	big := min(maxBigMembers, t)
	rest := t - big
	return &wideGroup{base: b, bigMembers: big, groups: max(20, rest/(groupSize+2*docsPerGroup))}
}

func (w *wideGroup) Name() string   { return "wide-group" }
func (w *wideGroup) Schema() string { return groupDocSchema }

func (w *wideGroup) docs() uint64 { return w.groups * docsPerGroup }

func (w *wideGroup) bigDocs() uint64 { return (w.docs() + bigShare - 1) / bigShare }

func (w *wideGroup) Size() int {
	return int(w.bigMembers + w.groups*groupSize + 2*w.docs() + w.bigDocs())
}

func (w *wideGroup) bigUser(i uint64) string      { return userID(w.seed, 1, i) }
func (w *wideGroup) groupUser(g, m uint64) string { return userID(w.seed, 2, g*groupSize+m) }
func (w *wideGroup) directUser(d uint64) string   { return userID(w.seed, 3, d) }
func (w *wideGroup) groupName(g uint64) string    { return id("g", g) }
func (w *wideGroup) docName(d uint64) string      { return id("d", d) }
func (w *wideGroup) docGroup(d uint64) uint64     { return d / docsPerGroup }
func (w *wideGroup) isBigDoc(d uint64) bool       { return d%bigShare == 0 }
func (w *wideGroup) docRef(d uint64) tuple.ObjectRef {
	return tuple.ObjectRef{Type: "document", ID: w.docName(d)}
}

func (w *wideGroup) Relationships() iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for i := range w.bigMembers {
			if !yield(rel("group", "big", "member", "user", w.bigUser(i)), nil) {
				return
			}
		}
		for g := range w.groups {
			for m := range uint64(groupSize) {
				if !yield(rel("group", w.groupName(g), "member", "user", w.groupUser(g, m)), nil) {
					return
				}
			}
		}
		for d := range w.docs() {
			doc := w.docName(d)
			if !yield(relSet("document", doc, "viewer", "group", w.groupName(w.docGroup(d)), "member"), nil) {
				return
			}
			if !yield(rel("document", doc, "viewer", "user", w.directUser(d)), nil) {
				return
			}
			if w.isBigDoc(d) {
				if !yield(relSet("document", doc, "viewer", "group", "big", "member"), nil) {
					return
				}
			}
		}
	}
}

func (w *wideGroup) Source(stream uint64) Source {
	return &wideGroupSource{w: w, r: w.rng(stream), churn: churn{stream: stream}}
}

type wideGroupSource struct {
	w     *wideGroup
	r     *rand.Rand
	churn churn
}

func (s *wideGroupSource) Next(op Op) Request {
	w, r := s.w, s.r
	user := func(id string) tuple.SubjectRef { return tuple.SubjectRef{Type: "user", ID: id} }
	d := r.Uint64N(w.docs())
	g := w.docGroup(d)
	switch op {
	case OpCheck:
		p := r.IntN(100)
		switch {
		case p < 40:
			bd := r.Uint64N(w.bigDocs()) * bigShare
			return Request{Op: op, Resource: w.docRef(bd), Permission: "view", Subject: user(w.bigUser(r.Uint64N(w.bigMembers))), Expect: ExpectAllowed}
		case p < 70:
			return Request{Op: op, Resource: w.docRef(d), Permission: "view", Subject: user(w.groupUser(g, r.Uint64N(groupSize))), Expect: ExpectAllowed}
		case p < 80:
			return Request{Op: op, Resource: w.docRef(d), Permission: "view", Subject: user(w.directUser(d)), Expect: ExpectAllowed}
		}
		// A member of another group, on a document the big group cannot see.
		if w.isBigDoc(d) {
			d++
			if d == w.docs() {
				d = 1
			}
			g = w.docGroup(d)
		}
		other := (g + 1 + r.Uint64N(w.groups-1)) % w.groups
		return Request{Op: op, Resource: w.docRef(d), Permission: "view", Subject: user(w.groupUser(other, r.Uint64N(groupSize))), Expect: ExpectDenied}
	case OpLookupResources:
		if r.IntN(10) == 0 {
			return Request{Op: op, ResourceType: "document", Permission: "view", Subject: user(w.bigUser(r.Uint64N(w.bigMembers)))}
		}
		return Request{Op: op, ResourceType: "document", Permission: "view", Subject: user(w.groupUser(g, r.Uint64N(groupSize)))}
	case OpLookupSubjects:
		return Request{Op: op, Resource: w.docRef(d), Permission: "view", SubjectType: "user"}
	}
	return s.churn.next(one(func(name string) tuple.Relationship {
		return rel("group", w.groupName(g), "member", "user", name)
	}))
}

// wideArrow: folders with two viewers each; wide documents with up to
// 10,000 parent folders; ordinary documents with two parents and a viewer.
type wideArrow struct {
	base
	folders    uint64
	parents    uint64 // parents of each wide document
	wideDocs   uint64
	normalDocs uint64
}

const (
	maxParents      = 10_000
	folderViewers   = 2
	normalDocRels   = 3 // two parents, one viewer
	wideDocsPerMRel = 2 // wide documents per million relationships
)

func newWideArrow(b base) *wideArrow {
	t := uint64(b.scale.Target())
	w := &wideArrow{base: b, parents: min(maxParents, t)}
	w.folders = max(w.parents, t/4)
	w.wideDocs = max(1, t/1_000_000*wideDocsPerMRel)
	if used := folderViewers*w.folders + w.wideDocs*w.parents; used < t {
		w.normalDocs = (t - used) / normalDocRels
	}
	w.normalDocs = max(w.normalDocs, 100)
	return w
}

func (w *wideArrow) Name() string   { return "wide-arrow" }
func (w *wideArrow) Schema() string { return folderDocSchema }
func (w *wideArrow) Size() int {
	return int(folderViewers*w.folders + w.wideDocs*w.parents + normalDocRels*w.normalDocs)
}

func (w *wideArrow) folderName(f uint64) string { return id("f", f) }
func (w *wideArrow) folderUser(f, v uint64) string {
	return userID(w.seed, 1, f*folderViewers+v)
}
func (w *wideArrow) docUser(d uint64) string  { return userID(w.seed, 2, d) }
func (w *wideArrow) wideName(k uint64) string { return id("wide", k) }
func (w *wideArrow) docName(d uint64) string  { return id("d", d) }

// wideParent is parent j of wide document k: a contiguous run of folders
// from a derived offset.
func (w *wideArrow) wideParent(k, j uint64) uint64 {
	return (hash2(w.seed, k) + j) % w.folders
}

// docParent is parent j (0 or 1) of ordinary document d.
func (w *wideArrow) docParent(d, j uint64) uint64 {
	return hash3(w.seed, d, j) % w.folders
}

func (w *wideArrow) Relationships() iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for f := range w.folders {
			for v := range uint64(folderViewers) {
				if !yield(rel("folder", w.folderName(f), "viewer", "user", w.folderUser(f, v)), nil) {
					return
				}
			}
		}
		for k := range w.wideDocs {
			for j := range w.parents {
				if !yield(rel("document", w.wideName(k), "parent", "folder", w.folderName(w.wideParent(k, j))), nil) {
					return
				}
			}
		}
		for d := range w.normalDocs {
			doc := w.docName(d)
			p0, p1 := w.docParent(d, 0), w.docParent(d, 1)
			if !yield(rel("document", doc, "parent", "folder", w.folderName(p0)), nil) {
				return
			}
			if p1 == p0 {
				// Keep the count fixed when both draws hit one folder.
				p1 = (p0 + 1) % w.folders
			}
			if !yield(rel("document", doc, "parent", "folder", w.folderName(p1)), nil) {
				return
			}
			if !yield(rel("document", doc, "viewer", "user", w.docUser(d)), nil) {
				return
			}
		}
	}
}

func (w *wideArrow) Source(stream uint64) Source {
	return &wideArrowSource{w: w, r: w.rng(stream), churn: churn{stream: stream}}
}

type wideArrowSource struct {
	w     *wideArrow
	r     *rand.Rand
	churn churn
}

func (s *wideArrowSource) Next(op Op) Request {
	w, r := s.w, s.r
	user := func(id string) tuple.SubjectRef { return tuple.SubjectRef{Type: "user", ID: id} }
	k := r.Uint64N(w.wideDocs)
	wide := tuple.ObjectRef{Type: "document", ID: w.wideName(k)}
	d := r.Uint64N(w.normalDocs)
	doc := tuple.ObjectRef{Type: "document", ID: w.docName(d)}
	// A user who can see nothing at all: the worst case, every parent scanned.
	nobody := user(id("nobody", r.Uint64N(1000)))
	switch op {
	case OpCheck:
		p := r.IntN(100)
		switch {
		case p < 40:
			f := w.wideParent(k, r.Uint64N(w.parents))
			return Request{Op: op, Resource: wide, Permission: "view", Subject: user(w.folderUser(f, r.Uint64N(folderViewers))), Expect: ExpectAllowed}
		case p < 50:
			return Request{Op: op, Resource: wide, Permission: "view", Subject: nobody, Expect: ExpectDenied}
		case p < 70:
			return Request{Op: op, Resource: doc, Permission: "view", Subject: user(w.docUser(d)), Expect: ExpectAllowed}
		case p < 85:
			f := w.docParent(d, 0)
			return Request{Op: op, Resource: doc, Permission: "view", Subject: user(w.folderUser(f, r.Uint64N(folderViewers))), Expect: ExpectAllowed}
		}
		return Request{Op: op, Resource: doc, Permission: "view", Subject: nobody, Expect: ExpectDenied}
	case OpLookupResources:
		f := r.Uint64N(w.folders)
		return Request{Op: op, ResourceType: "document", Permission: "view", Subject: user(w.folderUser(f, r.Uint64N(folderViewers)))}
	case OpLookupSubjects:
		if r.IntN(20) == 0 {
			return Request{Op: op, Resource: wide, Permission: "view", SubjectType: "user"}
		}
		return Request{Op: op, Resource: doc, Permission: "view", SubjectType: "user"}
	}
	f := r.Uint64N(w.folders)
	return s.churn.next(one(func(name string) tuple.Relationship {
		return rel("folder", w.folderName(f), "viewer", "user", name)
	}))
}
