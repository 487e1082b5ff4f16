package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Update is one relationship change of a write.
type Update struct {
	// Op is store.OpTouch (create or replace), store.OpCreate (fail with
	// store.ErrAlreadyExists if present) or store.OpDelete.
	Op           store.Op
	Relationship tuple.Relationship
}

// Precondition must hold, at the revision the write builds on, for the
// write to commit.
type Precondition struct {
	Filter tuple.Filter
	// MustExist requires at least one (unexpired) match; false requires none.
	MustExist bool
}

// WriteRequest is an atomic batch of relationship updates.
type WriteRequest struct {
	// Caller is recorded in the changelog (the audit trail).
	Caller        string
	Updates       []Update
	Preconditions []Precondition
}

// DeleteRequest deletes the relationships matching a filter.
type DeleteRequest struct {
	Caller string
	// Filter selects what to delete; ResourceType is required.
	Filter tuple.Filter
	// Limit, when positive, bounds how many are deleted. When more match,
	// the delete is refused (a *DeleteLimitError, nothing deleted) unless
	// AllowPartial is set; then Limit of them are deleted and the
	// response says the delete was partial.
	Limit         int
	AllowPartial  bool
	Preconditions []Precondition
}

// DeleteResponse reports a delete.
type DeleteResponse struct {
	// Zookie names the revision of the delete.
	Zookie string
	// Deleted counts the relationships deleted.
	Deleted int
	// Partial is set when the delete stopped at its Limit and more
	// relationships still match at the delete's revision.
	Partial bool
}

// WriteSchema compiles text and stores it as the schema in force from the
// returned revision on. It refuses, with an *UnsafeSchemaChangeError, a
// schema that removes a relation or an allowed subject type that stored
// relationships still use. The returned changes list what differs from
// the previous schema (for the first schema: everything, as added).
func (e *Engine) WriteSchema(ctx context.Context, caller, text string) (zookie string, changes []schema.Change, err error) {
	return e.UpdateSchema(ctx, caller, func(string) (string, error) { return text, nil })
}

// UpdateSchema is WriteSchema of the text that edit makes of the schema
// text in force ("" before the first schema), so that no other schema
// write comes between: a tenant's schema write replaces its own
// definitions and keeps the others'. An error of edit is returned as it
// is.
//
// The new schema is compiled, compared with the old one and set up for
// evaluation before the write lock is taken, so checks and relationship
// writes on the old schema go on meanwhile, and the work stops when ctx
// is done. Under the lock the engine only verifies that the schema in
// force is still the one edited (else it prepares again: edit may be
// called more than once), scans for relationships the change would
// orphan and commits. Every reader then shares the evaluator set up here:
// the first check after the write compiles nothing.
func (e *Engine) UpdateSchema(ctx context.Context, caller string, edit func(current string) (string, error)) (zookie string, changes []schema.Change, err error) {
	zookie, changes, stale, err := e.updateSchema(ctx, caller, edit)
	e.rebuildStale(ctx, stale)
	return zookie, changes, err
}

// updateSchema is UpdateSchema, returning also the relations whose
// nested-group index the schema write left to a rebuild.
func (e *Engine) updateSchema(ctx context.Context, caller string, edit func(current string) (string, error)) (zookie string, changes []schema.Change, stale []*schema.Relation, err error) {
	if err := e.checkOpen(); err != nil {
		return "", nil, nil, err
	}
	// The audit note is checked first: a reason that is too long is
	// refused even when the schema is unchanged and nothing is committed.
	meta, err := writeMeta(ctx, caller, OpNameWriteSchema)
	if err != nil {
		return "", nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		// After schemaWriteAttempts races with other schema writes, the
		// schema is prepared under the lock: slower for everyone, but
		// this write cannot starve.
		locked := attempt >= schemaWriteAttempts
		if locked {
			e.writeMu.Lock()
		}
		p, err := e.prepareSchema(ctx, edit)
		if err != nil || p.next == nil {
			if locked {
				e.writeMu.Unlock()
			}
			if err != nil {
				return "", nil, nil, err
			}
			// Writing the text already stored commits nothing: the answer
			// is the head's zookie, and no revision, change or audit entry
			// is made for it.
			return e.zookieOf(p.head), nil, nil, nil
		}
		if !locked {
			e.writeMu.Lock()
		}
		// A rebuild of the nested index writes rows of the schema it read
		// outside writeMu; flushMu keeps its batches out of the commit
		// (see rowWriter).
		e.builder.flushMu.Lock()
		zookie, stale, err := e.commitSchema(ctx, caller, meta, p)
		e.builder.flushMu.Unlock()
		e.writeMu.Unlock()
		if errors.Is(err, errSchemaMoved) {
			continue
		}
		if err != nil {
			return "", nil, nil, err
		}
		return zookie, p.changes, stale, nil
	}
}

// schemaWriteAttempts is how many times a schema write prepares its schema
// outside the write lock before it prepares it under the lock.
const schemaWriteAttempts = 3

// errSchemaMoved: another schema write committed while this one prepared.
var errSchemaMoved = errors.New("engine: the schema in force changed while the new one was prepared")

// preparedSchema is a schema write made ready outside the write lock.
type preparedSchema struct {
	head store.Revision
	base *compiled // the schema in force at head; nil before the first
	text string
	// next is the compiled new schema with its evaluator; nil when text is
	// the schema already in force.
	next    *compiled
	changes []schema.Change
}

// prepareSchema reads the schema in force at the head, applies edit,
// compiles the result, checks it against the schema limits, diffs it and
// sets up its evaluator, stopping early when ctx is done.
func (e *Engine) prepareSchema(ctx context.Context, edit func(current string) (string, error)) (*preparedSchema, error) {
	head, err := e.heads.head(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := e.openAt(ctx, head)
	if err != nil {
		return nil, err
	}
	p := &preparedSchema{head: head, base: cur.c}
	current := ""
	if cur.c != nil {
		stored, _, err := cur.reader.ReadSchema(ctx)
		if err != nil {
			return nil, fmt.Errorf("engine: read schema: %w", err)
		}
		current = stored
	}
	if p.text, err = edit(current); err != nil {
		return nil, err
	}
	if cur.c != nil && p.text == current {
		return p, nil
	}
	next, err := e.compileSchema(ctx, p.text)
	if err != nil {
		return nil, err
	}
	var prev *schema.Schema
	if cur.c != nil {
		prev = cur.c.schema
	}
	p.changes = schema.Diff(prev, next)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("engine: schema write: %w", err)
	}
	p.next = e.newCompiled(next)
	return p, ctx.Err()
}

// compileSchema compiles text and checks it against the schema limits.
func (e *Engine) compileSchema(ctx context.Context, text string) (*schema.Schema, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("engine: schema write: %w", err)
	}
	next, err := schema.Compile(schemaFilename, text)
	if err != nil {
		return nil, fmt.Errorf("engine: invalid schema: %w", err)
	}
	if err := e.checkSchemaLimits(next); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("engine: schema write: %w", err)
	}
	return next, nil
}

// commitSchema stores the prepared schema; the caller holds writeMu.
// It fails with errSchemaMoved when the schema in force is no longer the
// one p was prepared from. It returns also the relations whose
// nested-group index the write left to a rebuild.
func (e *Engine) commitSchema(ctx context.Context, caller string, meta store.WriteMeta, p *preparedSchema) (zookie string, stale []*schema.Relation, err error) {
	head, err := e.heads.head(ctx)
	if err != nil {
		return "", nil, err
	}
	cur, err := e.openAt(ctx, head)
	if err != nil {
		return "", nil, err
	}
	if cur.c != p.base {
		// A schema written since (or the compiled base evicted from the
		// cache, which costs one more preparation).
		return "", nil, errSchemaMoved
	}
	now := e.now()
	// A request at the new revision finds the new schema's evaluator
	// here until remember below, instead of compiling the schema again.
	e.pending.Store(&pendingSchema{text: p.text, c: p.next})
	defer e.pending.Store(nil)
	var prevNested map[relKey]*nestedRel
	if p.base != nil {
		prevNested = p.base.nested
	}
	rev, err := e.st.Update(ctx, meta, func(ctx context.Context, raw store.Tx) error {
		tx := hiddenTx{raw}
		if p.base != nil {
			uses, err := e.orphans(ctx, tx, p.base.schema, p.next.schema, now)
			if err != nil {
				return err
			}
			if len(uses) > 0 {
				return &UnsafeSchemaChangeError{Uses: uses}
			}
		}
		if err := tx.WriteSchema(ctx, p.text); err != nil {
			return err
		}
		stale, err = e.schemaNested(ctx, tx, prevNested, p.next.nested)
		return err
	})
	if err != nil {
		var ue *UnsafeSchemaChangeError
		if errors.As(err, &ue) {
			e.log.WarnContext(ctx, "schema change refused", "caller", caller, "uses", len(ue.Uses), "error", err)
		}
		return "", nil, e.wrapWrite(err)
	}
	e.log.InfoContext(ctx, "schema written", "caller", caller, "revision", uint64(rev), "changes", len(p.changes))
	e.remember(rev, p.next)
	return e.zookieOf(rev), stale, nil
}

// orphans counts the stored relationships that next would no longer
// accept, grouped by the schema item whose removal rejects them. Only
// relations whose definition changed are scanned, and the old names of
// renamed relations (@renamed_from) whose alias next drops or changes.
func (e *Engine) orphans(ctx context.Context, tx relationshipQuerier, prev, next *schema.Schema, now time.Time) ([]SchemaUse, error) {
	var uses []SchemaUse
	index := map[string]int{}
	for _, typ := range slices.Sorted(maps.Keys(prev.Definitions)) {
		def := prev.Definitions[typ]
		var scan []string
		for _, rel := range def.Ordered {
			if !rel.IsPermission && !unchanged(rel, next) {
				scan = append(scan, rel.Name)
			}
		}
		for _, old := range slices.Sorted(maps.Keys(def.RenamedFrom)) {
			if !aliasKept(def, old, next) {
				scan = append(scan, old)
			}
		}
		for _, name := range scan {
			scanned := 0
			f := tuple.Filter{ResourceType: def.Name, Relation: name}
			for r, err := range tx.QueryRelationships(ctx, f, store.QueryOptions{Now: now}) {
				if err != nil {
					return nil, fmt.Errorf("engine: scan %s#%s: %w", def.Name, name, err)
				}
				what := orphanReason(e, next, r)
				if what == "" {
					continue
				}
				i, ok := index[what]
				if !ok {
					i = len(uses)
					index[what] = i
					uses = append(uses, SchemaUse{What: what})
				}
				uses[i].Count++
				scanned++
				if scanned >= e.limits.SchemaScanLimit {
					uses[i].Truncated = true
					break
				}
			}
		}
	}
	return uses, nil
}

// relationshipQuerier is what orphans reads: a write transaction, or a
// snapshot for a dry run.
type relationshipQuerier interface {
	QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error]
}

// aliasKept reports whether next still reads relationships stored under
// the old name old of def the same way: the same relation renames it,
// with the same allowed subject types.
func aliasKept(def *schema.Definition, old string, next *schema.Schema) bool {
	nd := next.Definitions[def.Name]
	if nd == nil || nd.RenamedFrom[old] == nil || nd.RenamedFrom[old].Name != def.RenamedFrom[old].Name {
		return false
	}
	return unchanged(def.RenamedFrom[old], next)
}

// unchanged reports whether next has rel with the same allowed subject
// types, so no stored relationship of rel can become invalid.
func unchanged(rel *schema.Relation, next *schema.Schema) bool {
	def, ok := next.Definitions[rel.Definition.Name]
	if !ok {
		return false
	}
	nrel, ok := def.Relations[rel.Name]
	if !ok || nrel.IsPermission {
		return false
	}
	have := map[string]bool{}
	for _, a := range nrel.Allowed {
		have[allowedList([]*schema.AllowedSubject{a})] = true
	}
	for _, a := range rel.Allowed {
		if !have[allowedList([]*schema.AllowedSubject{a})] {
			return false
		}
	}
	return true
}

// orphanReason names what next removed that r needs, or "" if next still
// accepts r. Caveat context types are not rechecked: a stored context was
// valid when written and is re-typed at evaluation.
func orphanReason(e *Engine, next *schema.Schema, r tuple.Relationship) string {
	if to := renamedRelation(next, r); to != nil {
		// Read as the renamed relation's: an orphan only if that one
		// refuses it.
		r.Relation = to.Name
	}
	err := e.validateRelationship(next, -1, r)
	var re *RelationshipError
	if err == nil || !errors.As(err, &re) || errors.Is(re.Reason, ErrCaveatContext) || errors.Is(err, ErrLimitExceeded) {
		return ""
	}
	switch {
	case errors.Is(re.Reason, ErrUnknownDefinition) && next.Definitions[r.Resource.Type] == nil:
		return fmt.Sprintf("definition %s", r.Resource.Type)
	case errors.Is(re.Reason, ErrUnknownRelation):
		return fmt.Sprintf("relation %s#%s", r.Resource.Type, r.Relation)
	case errors.Is(re.Reason, ErrWriteToPermission):
		return fmt.Sprintf("relation %s#%s (now a permission)", r.Resource.Type, r.Relation)
	}
	shape := subjectShape(r.Subject)
	if r.Caveat != nil {
		shape += " with " + r.Caveat.Name
	}
	if !r.Expiration.IsZero() {
		shape += " with expiration"
	}
	return fmt.Sprintf("subject type %s on %s#%s", shape, r.Resource.Type, r.Relation)
}

// WriteRelationships validates and applies req atomically and returns the
// zookie of the new revision.
func (e *Engine) WriteRelationships(ctx context.Context, req WriteRequest) (zookie string, err error) {
	zookie, stale, err := e.writeRelationships(ctx, req)
	e.rebuildStale(ctx, stale)
	return zookie, err
}

// writeRelationships is WriteRelationships, returning also the relations
// whose nested-group index the write left stale.
func (e *Engine) writeRelationships(ctx context.Context, req WriteRequest) (zookie string, stale []*schema.Relation, err error) {
	if err := e.checkOpen(); err != nil {
		return "", nil, err
	}
	if len(req.Updates) == 0 {
		return "", nil, fmt.Errorf("%w: a write needs at least one update", ErrInvalidRequest)
	}
	if n := len(req.Updates); n > e.limits.MaxUpdatesPerWrite {
		return "", nil, &LimitError{Limit: "updates per write", Max: e.limits.MaxUpdatesPerWrite, Got: n}
	}
	if err := e.checkPreconditions(req.Preconditions); err != nil {
		return "", nil, err
	}
	seen := make(map[tuple.Key]int, len(req.Updates))
	for i, u := range req.Updates {
		k := u.Relationship.Key()
		if j, dup := seen[k]; dup {
			return "", nil, &DuplicateUpdateError{Key: k, First: j, Second: i}
		}
		seen[k] = i
		switch u.Op {
		case store.OpTouch, store.OpCreate, store.OpDelete:
		default:
			return "", nil, fmt.Errorf("%w: update %d: unknown operation %v", ErrInvalidRequest, i, u.Op)
		}
	}

	e.writeMu.RLock()
	defer e.writeMu.RUnlock()
	head, err := e.heads.head(ctx)
	if err != nil {
		return "", nil, err
	}
	v, err := e.openAt(ctx, head)
	if err != nil {
		return "", nil, err
	}
	if v.c == nil {
		return "", nil, fmt.Errorf("%w: write a schema before relationships", ErrNoSchema)
	}
	for i, u := range req.Updates {
		if u.Op == store.OpDelete {
			// Deletes need only a well-formed key: relationships that a
			// schema change orphaned must stay deletable.
			if err := u.Relationship.Validate(); err != nil {
				return "", nil, &RelationshipError{Index: i, Relationship: u.Relationship, Reason: err}
			}
			if reservedKey(u.Relationship.Key()) {
				return "", nil, &RelationshipError{Index: i, Relationship: u.Relationship, Reason: ErrUnknownRelation}
			}
			continue
		}
		if err := e.validateRelationship(v.c.schema, i, u.Relationship); err != nil {
			return "", nil, err
		}
	}
	uses := make([]use, 0, len(req.Updates))
	for _, u := range req.Updates {
		if u.Op != store.OpDelete { // deleting is how data leaves a deprecated relation
			uses = append(uses, use{u.Relationship.Resource.Type, u.Relationship.Relation})
		}
	}
	if err := e.noteDeprecated(ctx, v.c.schema, "write", uses...); err != nil {
		return "", nil, err
	}
	meta, err := writeMeta(ctx, req.Caller, OpNameWriteRelationships)
	if err != nil {
		return "", nil, err
	}
	if stale, err = e.markStaleFirst(ctx, meta, v.c.nested, req.Updates); err != nil {
		return "", nil, err
	}
	now := e.now()
	changes := v.c.invariants.updateChanges(req.Updates)
	rev, err := e.st.Update(ctx, meta, func(ctx context.Context, raw store.Tx) error {
		tx := hiddenTx{raw}
		if err := evalPreconditions(ctx, tx, req.Preconditions, now); err != nil {
			return err
		}
		// Judged before the updates are applied: tx reads the state the
		// write builds on, and the check lays the updates over it.
		if err := v.c.invariants.checkInvariants(ctx, tx, changes, now); err != nil {
			return err
		}
		nb := nestedBatch{ix: v.c.nested}
		for i, u := range req.Updates {
			nb.note(u.Relationship.Key(), u.Op != store.OpDelete)
			var err error
			switch u.Op {
			case store.OpTouch:
				err = tx.Touch(ctx, u.Relationship)
			case store.OpCreate:
				err = tx.Create(ctx, u.Relationship)
			case store.OpDelete:
				err = tx.Delete(ctx, u.Relationship.Key())
			}
			if err != nil {
				return fmt.Errorf("update %d (%s %s): %w", i, u.Op, u.Relationship.Key(), err)
			}
		}
		s, err := nb.apply(ctx, e, tx, e.batchOps()-len(req.Updates))
		stale = append(stale, s...)
		return err
	})
	if err != nil {
		return "", nil, e.wrapWrite(err)
	}
	return e.zookieOf(rev), stale, nil
}

// DeleteRelationships deletes what req.Filter matches (see DeleteRequest
// for its Limit) atomically, returning the new revision's zookie and how
// many relationships were deleted.
//
// The datastore deletes at most a limit but cannot refuse when more
// match, so a limited delete without AllowPartial counts the matches
// first, at the head revision, outside the delete's transaction: a
// concurrent write can still make the delete partial, which the response
// then reports.
func (e *Engine) DeleteRelationships(ctx context.Context, req DeleteRequest) (DeleteResponse, error) {
	if err := e.checkOpen(); err != nil {
		return DeleteResponse{}, err
	}
	if req.Filter.ResourceType == "" {
		return DeleteResponse{}, fmt.Errorf("%w: a delete filter needs a resource type", ErrInvalidRequest)
	}
	if err := validateFilter(req.Filter); err != nil {
		return DeleteResponse{}, err
	}
	if req.Limit < 0 {
		return DeleteResponse{}, fmt.Errorf("%w: negative delete limit %d", ErrInvalidRequest, req.Limit)
	}
	if err := e.checkPreconditions(req.Preconditions); err != nil {
		return DeleteResponse{}, err
	}
	if req.Limit > 0 && !req.AllowPartial {
		more, err := e.matchMoreThan(ctx, FullyConsistent(), req.Filter, req.Limit)
		if err != nil {
			return DeleteResponse{}, err
		}
		if more {
			return DeleteResponse{}, &DeleteLimitError{Limit: req.Limit}
		}
	}
	rev, deleted, err := e.deleteMatching(ctx, req)
	if err != nil {
		return DeleteResponse{}, err
	}
	resp := DeleteResponse{Zookie: e.zookieOf(rev), Deleted: deleted}
	if req.Limit > 0 && deleted == req.Limit {
		if resp.Partial, err = e.matchMoreThan(ctx, AtExactSnapshot(resp.Zookie), req.Filter, 0); err != nil {
			return DeleteResponse{}, err
		}
	}
	return resp, nil
}

// deleteMatching deletes, in one transaction after req's preconditions
// hold, at most req.Limit (0: all) of the relationships matching its
// filter.
func (e *Engine) deleteMatching(ctx context.Context, req DeleteRequest) (store.Revision, int, error) {
	rev, deleted, stale, err := e.deleteMatchingLocked(ctx, req)
	e.rebuildStale(ctx, stale)
	return rev, deleted, err
}

// deleteMatchingLocked is deleteMatching under the write lock, returning
// also the relations whose nested-group index the delete left stale.
func (e *Engine) deleteMatchingLocked(ctx context.Context, req DeleteRequest) (_ store.Revision, deleted int, stale []*schema.Relation, err error) {
	e.writeMu.RLock()
	defer e.writeMu.RUnlock()
	meta, err := writeMeta(ctx, req.Caller, OpNameDeleteRelationships)
	if err != nil {
		return 0, 0, nil, err
	}
	ix, nested, err := e.headIndexes(ctx)
	if err != nil {
		return 0, 0, nil, err
	}
	now := e.now()
	rev, err := e.st.Update(ctx, meta, func(ctx context.Context, raw store.Tx) error {
		tx := hiddenTx{raw}
		if err := evalPreconditions(ctx, tx, req.Preconditions, now); err != nil {
			return err
		}
		if nb := (nestedBatch{ix: nested}); ix.affects(req.Filter.ResourceType, req.Filter.Relation) || nb.mayMatch(req.Filter) {
			keys, err := deleteChecked(ctx, tx, ix, req.Filter, req.Limit, now)
			deleted = len(keys)
			if err != nil {
				return err
			}
			for _, k := range keys {
				nb.note(k, false)
			}
			stale, err = nb.apply(ctx, e, tx, e.batchOps())
			return err
		}
		n, err := tx.DeleteMatching(ctx, req.Filter, req.Limit)
		if err != nil {
			return fmt.Errorf("engine: delete %s: %w", formatFilter(req.Filter), err)
		}
		deleted = n
		return nil
	})
	if err != nil {
		return 0, 0, nil, e.wrapWrite(err)
	}
	return rev, deleted, stale, nil
}

// matchMoreThan reports whether more than n unexpired relationships match
// f at the revision c selects.
func (e *Engine) matchMoreThan(ctx context.Context, c Consistency, f tuple.Filter, n int) (bool, error) {
	v, err := e.open(ctx, c)
	if err != nil {
		return false, err
	}
	seen := 0
	for _, err := range v.reader.QueryRelationships(ctx, f, store.QueryOptions{Limit: n + 1, Now: e.now()}) {
		if err != nil {
			return false, fmt.Errorf("engine: count relationships to delete: %w", err)
		}
		seen++
	}
	return seen > n, nil
}

func (e *Engine) checkPreconditions(ps []Precondition) error {
	if len(ps) > e.limits.MaxPreconditions {
		return &LimitError{Limit: "preconditions per write", Max: e.limits.MaxPreconditions, Got: len(ps)}
	}
	for i, p := range ps {
		if p.Filter.ResourceType == "" {
			return fmt.Errorf("%w: precondition %d: the filter needs a resource type", ErrInvalidRequest, i)
		}
		if err := validateFilter(p.Filter); err != nil {
			return fmt.Errorf("precondition %d: %w", i, err)
		}
	}
	return nil
}

// evalPreconditions runs inside the write transaction, so they are judged
// against exactly the state the write builds on.
func evalPreconditions(ctx context.Context, tx store.Tx, ps []Precondition, now time.Time) error {
	for i, p := range ps {
		found := false
		for _, err := range tx.QueryRelationships(ctx, p.Filter, store.QueryOptions{Limit: 1, Now: now}) {
			if err != nil {
				return fmt.Errorf("engine: precondition %d: %w", i, err)
			}
			found = true
			break
		}
		if found != p.MustExist {
			return &PreconditionError{Index: i, Precondition: p}
		}
	}
	return nil
}

// validateFilter checks the names in a filter (empty fields are wildcards).
func validateFilter(f tuple.Filter) error {
	if f.ResourceType != "" {
		if err := tuple.ValidateType("resource type", f.ResourceType); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
	}
	if f.ResourceID != "" {
		if err := tuple.ValidateID("resource id", f.ResourceID, false); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
	}
	if f.Relation != "" {
		if err := tuple.ValidateRelation("relation", f.Relation); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
	}
	if s := f.Subject; s != nil {
		if err := tuple.ValidateType("subject type", s.Type); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		if s.ID != "" {
			if err := tuple.ValidateID("subject id", s.ID, true); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
			}
		}
		if s.Relation != "" && s.Relation != tuple.Ellipsis {
			if err := tuple.ValidateRelation("subject relation", s.Relation); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
			}
		}
	}
	return nil
}

// wrapWrite returns engine errors from a write as they are and gives
// store errors context.
func (e *Engine) wrapWrite(err error) error {
	var (
		re *RelationshipError
		pe *PreconditionError
		ue *UnsafeSchemaChangeError
		ie *InvariantError
	)
	if errors.As(err, &re) || errors.As(err, &pe) || errors.As(err, &ue) || errors.As(err, &ie) {
		return err
	}
	if errors.Is(err, store.ErrBatchTooLarge) {
		return fmt.Errorf("%w: %w", ErrLimitExceeded, err)
	}
	return fmt.Errorf("engine: write: %w", err)
}
