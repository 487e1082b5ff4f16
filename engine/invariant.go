package engine

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// This file enforces the schema's write-time invariants (schema.Invariant,
// "invariant name = condition" in a definition). Every write runs inside
// one store.Update transaction, and the store serialises transactions, so
// an invariant judged inside the transaction, on the state it builds on
// plus the write's own pending changes, holds at the revision the write
// commits: no concurrent write can slip between the check and the commit.
//
// What a write must check is decided per relationship it changes, from an
// index built once per schema (invariantIndex): an invariant is checked on
// an object only when the write changes a relation the invariant reads
// there, so writes to other relations pay one map lookup.
//
// Semantics, for one object O of the invariant's definition, on the state
// after the write, with relationships expired at the write's clock
// counting as absent:
//   - an object with no relationship at all does not exist, and satisfies
//     every invariant (so "count(creator) == 1" lets an enterprise be
//     created, in one write with its creator, and deleted, in one write
//     with everything else);
//   - "g requires test": holds when O has no g relationship, else as test;
//   - "count(r) op N": the number of r relationships of O compared with N;
//     with "value(v)" the bound is the id of O's v subject read as a
//     decimal number (no v relationship: 0; several: the smallest; an id
//     that is not a number: violated);
//   - "r": O has at least one r relationship;
//   - "r within p": every subject of O's r relationships has p on O (a
//     check on the post-write state, without the cache).

// invTrigger is one invariant a change to a relation can break.
type invTrigger struct {
	inv *schema.Invariant
	// onTouch and onDelete say which changes can break it.
	onTouch, onDelete bool
}

// invariantIndex finds the invariants a change can break.
type invariantIndex struct {
	// byRelation: definition, then relation, then triggers.
	byRelation map[string]map[string][]invTrigger
	// onAnyTouch: per definition, invariants that creating any
	// relationship of an object can break (it brings the object into
	// existence).
	onAnyTouch map[string][]*schema.Invariant
	// eval checks "within" invariants: no cache (the state it reads is not
	// a committed revision) and no router (peers read committed state).
	eval *eval.Evaluator
}

// newInvariantIndex indexes s's invariants; nil when it has none.
func newInvariantIndex(s *schema.Schema, opts eval.Options) *invariantIndex {
	ix := &invariantIndex{byRelation: map[string]map[string][]invTrigger{}, onAnyTouch: map[string][]*schema.Invariant{}}
	n, within := 0, false
	for _, def := range s.Definitions {
		for _, inv := range def.Invariants {
			n++
			add := func(r *schema.Relation, touch, del bool) {
				if r == nil {
					return
				}
				m := ix.byRelation[def.Name]
				if m == nil {
					m = map[string][]invTrigger{}
					ix.byRelation[def.Name] = m
				}
				m[r.Name] = append(m[r.Name], invTrigger{inv: inv, onTouch: touch, onDelete: del})
			}
			add(inv.Guard, true, false)
			switch inv.Kind {
			case schema.InvariantCount:
				add(inv.Relation, inv.Op != ">=", inv.Op != "<=")
				add(inv.Value, true, true)
				if inv.Guard == nil && (inv.Op != "<=" || inv.Value != nil) {
					ix.onAnyTouch[def.Name] = append(ix.onAnyTouch[def.Name], inv)
				}
			case schema.InvariantNonEmpty:
				add(inv.Relation, false, true)
				if inv.Guard == nil {
					ix.onAnyTouch[def.Name] = append(ix.onAnyTouch[def.Name], inv)
				}
			case schema.InvariantWithin:
				within = true
				add(inv.Relation, true, false)
			}
		}
	}
	if n == 0 {
		return nil
	}
	if within {
		ix.eval = eval.New(s, eval.Options{MaxDepth: opts.MaxDepth, Concurrency: 1})
	}
	return ix
}

// affects reports whether a change to relation rel of type typ may break
// an invariant (nil-safe).
func (ix *invariantIndex) affects(typ, rel string) bool {
	if ix == nil {
		return false
	}
	if len(ix.onAnyTouch[typ]) > 0 {
		return true
	}
	m := ix.byRelation[typ]
	if rel == "" {
		return len(m) > 0
	}
	return len(m[rel]) > 0
}

// invChange is a relationship change of a write: Rel is nil for a delete.
type invChange struct {
	index int // the update's index in the request; -1 for a delete by filter
	op    store.Op
	key   tuple.Key
	rel   *tuple.Relationship
}

// invTask is one invariant to judge on one object, with the first change
// that asked for it (named in the error).
type invTask struct {
	inv   *schema.Invariant
	id    string
	cause invChange
}

// checkInvariants judges, on tx's state plus changes, every invariant that
// changes may break. It runs inside the write's transaction.
func (ix *invariantIndex) checkInvariants(ctx context.Context, tx store.Tx, changes []invChange, now time.Time) error {
	if ix == nil {
		return nil
	}
	type taskKey struct {
		inv *schema.Invariant
		id  string
	}
	seen := map[taskKey]bool{}
	var tasks []invTask
	add := func(inv *schema.Invariant, id string, c invChange) {
		k := taskKey{inv, id}
		if !seen[k] {
			seen[k] = true
			tasks = append(tasks, invTask{inv: inv, id: id, cause: c})
		}
	}
	for _, c := range changes {
		typ := c.key.Resource.Type
		// A relationship written already expired replaces a live one with
		// nothing: for the invariants, it is a delete.
		adds := c.rel != nil && !c.rel.ExpiredAt(now)
		for _, t := range ix.byRelation[typ][c.key.Relation] {
			if (adds && t.onTouch) || (!adds && t.onDelete) {
				add(t.inv, c.key.Resource.ID, c)
			}
		}
		if adds {
			for _, inv := range ix.onAnyTouch[typ] {
				add(inv, c.key.Resource.ID, c)
			}
		}
	}
	if len(tasks) == 0 {
		return nil
	}
	ov := newOverlay(tx, changes, now)
	for _, t := range tasks {
		detail, err := ix.judge(ctx, ov, t.inv, t.id, now)
		if err != nil {
			return fmt.Errorf("engine: invariant %s on %s:%s: %w", t.inv, t.inv.Definition.Name, t.id, err)
		}
		if detail != "" {
			return &InvariantError{
				Invariant:    t.inv.Definition.Name + "." + t.inv.Name,
				Condition:    t.inv.Text,
				Object:       tuple.ObjectRef{Type: t.inv.Definition.Name, ID: t.id},
				Index:        t.cause.index,
				Op:           t.cause.op,
				Relationship: t.cause.key,
				Detail:       detail,
			}
		}
	}
	return nil
}

// judge evaluates inv on object id of its definition, reading r; it
// returns "" when the invariant holds, else why not.
func (ix *invariantIndex) judge(ctx context.Context, r store.Reader, inv *schema.Invariant, id string, now time.Time) (string, error) {
	typ := inv.Definition.Name
	obj := typ + ":" + id
	exists, err := countRels(ctx, r, tuple.Filter{ResourceType: typ, ResourceID: id}, 1)
	if err != nil || exists == 0 {
		return "", err
	}
	if inv.Guard != nil {
		n, err := countRels(ctx, r, tuple.Filter{ResourceType: typ, ResourceID: id, Relation: inv.Guard.Name}, 1)
		if err != nil || n == 0 {
			return "", err
		}
	}
	switch inv.Kind {
	case schema.InvariantCount:
		bound, why := inv.N, ""
		if inv.Value != nil {
			bound, why, err = valueOf(ctx, r, typ, id, inv.Value.Name)
			if err != nil || why != "" {
				return why, err
			}
		}
		limit := 0
		if inv.Op != ">=" && bound < math.MaxInt {
			limit = bound + 1 // enough to tell == and <= apart from more
		}
		n, err := countRels(ctx, r, tuple.Filter{ResourceType: typ, ResourceID: id, Relation: inv.Relation.Name}, limit)
		if err != nil {
			return "", err
		}
		ok := false
		switch inv.Op {
		case "==":
			ok = n == bound
		case "<=":
			ok = n <= bound
		case ">=":
			ok = n >= bound
		}
		if ok {
			return "", nil
		}
		count := strconv.Itoa(n)
		if limit > 0 && n == limit {
			count = "more than " + strconv.Itoa(bound)
		}
		return fmt.Sprintf("%s has %s %s relationships, want %s %d", obj, count, inv.Relation.Name, inv.Op, bound), nil
	case schema.InvariantNonEmpty:
		n, err := countRels(ctx, r, tuple.Filter{ResourceType: typ, ResourceID: id, Relation: inv.Relation.Name}, 1)
		if err != nil || n > 0 {
			return "", err
		}
		return fmt.Sprintf("%s has no %s relationship", obj, inv.Relation.Name), nil
	case schema.InvariantWithin:
		for rel, err := range r.QueryRelationships(ctx, tuple.Filter{ResourceType: typ, ResourceID: id, Relation: inv.Relation.Name}, store.QueryOptions{Now: now}) {
			if err != nil {
				return "", err
			}
			res, err := ix.eval.Check(ctx, eval.Params{Reader: r, Now: now},
				eval.CheckRequest{Resource: rel.Resource, Permission: inv.Target.Name, Subject: rel.Subject})
			if err != nil {
				return "", err
			}
			switch res.Permissionship {
			case eval.HasPermission:
				continue
			case eval.ConditionalPermission:
				return fmt.Sprintf("%s has %s only under a caveat (missing %s), not for certain", rel.Subject, inv.Target.Name, strings.Join(res.MissingContext, ", ")), nil
			}
			return fmt.Sprintf("%s does not have %s on %s", rel.Subject, inv.Target.Name, obj), nil
		}
	}
	return "", nil
}

// countRels counts unexpired relationships matching f, stopping at limit
// when positive. The reader hides expired ones (see newOverlay).
func countRels(ctx context.Context, r store.Reader, f tuple.Filter, limit int) (int, error) {
	n := 0
	for _, err := range r.QueryRelationships(ctx, f, store.QueryOptions{Limit: limit}) {
		if err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// valueOf reads the bound value(rel) of typ:id: the smallest subject id of
// its rel relationships, as a decimal number; 0 when there is none.
func valueOf(ctx context.Context, r store.Reader, typ, id, rel string) (int, string, error) {
	best, found := 0, false
	for x, err := range r.QueryRelationships(ctx, tuple.Filter{ResourceType: typ, ResourceID: id, Relation: rel}, store.QueryOptions{}) {
		if err != nil {
			return 0, "", err
		}
		n, err := strconv.Atoi(x.Subject.ID)
		if err != nil || n < 0 {
			return 0, fmt.Sprintf("value(%s) of %s:%s is %q, not a number", rel, typ, id, x.Subject.ID), nil
		}
		if !found || n < best {
			best, found = n, true
		}
	}
	return best, "", nil
}

// overlay is a store.Reader over a write transaction's base state with
// the write's own changes applied on top, hiding relationships expired at
// now: the state the write would commit. Only forward queries are served
// (checks need nothing else).
type overlay struct {
	tx      store.Tx
	pending map[tuple.Key]*tuple.Relationship // nil: deleted
	now     time.Time
}

func newOverlay(tx store.Tx, changes []invChange, now time.Time) *overlay {
	ov := &overlay{tx: tx, pending: make(map[tuple.Key]*tuple.Relationship, len(changes)), now: now}
	for _, c := range changes {
		ov.pending[c.key] = c.rel
	}
	return ov
}

// pendingRevision is what an overlay reports as its revision: it is no
// committed revision, so nothing may cache by it (the invariant
// evaluator has no cache).
const pendingRevision = store.Revision(math.MaxUint64)

// Revision implements store.Reader.
func (ov *overlay) Revision() store.Revision { return pendingRevision }

// ReadSchema implements store.Reader; invariant checks never read it.
func (ov *overlay) ReadSchema(ctx context.Context) (string, store.Revision, error) {
	return "", 0, fmt.Errorf("%w: the schema is not readable inside a write", ErrInvalidRequest)
}

// ReverseQueryRelationships implements store.Reader; checks never walk
// from the subject inside a write.
func (ov *overlay) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		yield(tuple.Relationship{}, fmt.Errorf("%w: reverse queries are not served inside a write", ErrInvalidRequest))
	}
}

// QueryRelationships yields the matches of f after the write, in forward
// index order. It reads no more of the base than it yields plus the
// write's changes that match f (whose base versions it skips), so a check
// that asks for one relationship of a wide object reads a few, not all.
func (ov *overlay) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		var pend []tuple.Relationship // the write's matching relationships, after opts.After
		changed := 0                  // the write's changes matching f: base versions to skip
		for k, p := range ov.pending {
			if !f.Matches(tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}) {
				continue
			}
			changed++
			if p != nil && !p.ExpiredAt(ov.now) && (opts.After == nil || compareKeys(k, *opts.After) > 0) {
				pend = append(pend, *p)
			}
		}
		baseOpts := store.QueryOptions{Now: ov.now, After: opts.After}
		if opts.Limit > 0 {
			baseOpts.Limit = opts.Limit + changed
		}
		out := pend
		fetched, last := 0, tuple.Key{}
		for r, err := range ov.tx.QueryRelationships(ctx, f, baseOpts) {
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			fetched++
			last = r.Key()
			if _, ok := ov.pending[last]; !ok {
				out = append(out, r)
			}
		}
		slices.SortFunc(out, func(a, b tuple.Relationship) int { return compareKeys(a.Key(), b.Key()) })
		if baseOpts.Limit > 0 && fetched == baseOpts.Limit {
			// The base may go on past last: a pending relationship after
			// it could be preceded by base ones not read. Enough base
			// ones were read to fill the limit without it.
			for i, r := range out {
				if compareKeys(r.Key(), last) > 0 {
					out = out[:i]
					break
				}
			}
		}
		n := 0
		for _, r := range out {
			if opts.Limit > 0 && n >= opts.Limit {
				return
			}
			if !opts.Now.IsZero() && r.ExpiredAt(opts.Now) {
				continue
			}
			if !yield(r, nil) {
				return
			}
			n++
		}
	}
}

// compareKeys orders keys as the forward index does.
func compareKeys(a, b tuple.Key) int {
	return cmp.Or(
		strings.Compare(a.Resource.Type, b.Resource.Type),
		strings.Compare(a.Resource.ID, b.Resource.ID),
		strings.Compare(a.Relation, b.Relation),
		strings.Compare(a.Subject.Type, b.Subject.Type),
		strings.Compare(a.Subject.ID, b.Subject.ID),
		strings.Compare(a.Subject.Relation, b.Subject.Relation),
	)
}

// updateChanges lists a write request's updates as invariant changes, or
// nil when none can break an invariant.
func (ix *invariantIndex) updateChanges(ups []Update) []invChange {
	if ix == nil {
		return nil
	}
	hit := false
	out := make([]invChange, len(ups))
	for i, u := range ups {
		c := invChange{index: i, op: u.Op, key: u.Relationship.Key()}
		if u.Op != store.OpDelete {
			r := u.Relationship
			c.rel = &r
		}
		out[i] = c
		if ix.affects(c.key.Resource.Type, c.key.Relation) {
			hit = true
		}
	}
	if !hit {
		return nil
	}
	return out
}

// deleteChecked is tx.DeleteMatching for a filter that may break an
// invariant: it lists the victims first (the ones DeleteMatching would
// take: index order, expired ones included, at most limit), judges the
// invariants without them (none when ix is nil), deletes them and
// returns their keys.
func deleteChecked(ctx context.Context, tx hiddenTx, ix *invariantIndex, f tuple.Filter, limit int, now time.Time) ([]tuple.Key, error) {
	var changes []invChange
	for r, err := range tx.QueryRelationships(ctx, f, store.QueryOptions{Limit: limit}) {
		if err != nil {
			return nil, fmt.Errorf("engine: delete %s: %w", formatFilter(f), err)
		}
		changes = append(changes, invChange{index: -1, op: store.OpDelete, key: r.Key()})
	}
	if ix != nil {
		if err := ix.checkInvariants(ctx, tx, changes, now); err != nil {
			return nil, err
		}
	}
	keys := make([]tuple.Key, len(changes))
	for i, c := range changes {
		keys[i] = c.key
	}
	if err := tx.deleteKeys(ctx, f, keys); err != nil {
		return nil, fmt.Errorf("engine: delete %s: %w", formatFilter(f), err)
	}
	return keys, nil
}
