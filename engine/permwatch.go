package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// DefaultPermissionWatchPoll is how often a permission watch looks at the
// clock for expirations while no write arrives.
const DefaultPermissionWatchPoll = time.Second

// PermissionWatchRequest registers a permission watch.
type PermissionWatchRequest struct {
	// Scope is the permission watched (ResourceID and SubjectID are
	// optional narrowings).
	Scope PermissionScope
	// After resumes after the state at this zookie ("": the head); Time,
	// when set, is the clock instant that state was computed at (the
	// Time of the last event or checkpoint the consumer applied), so that
	// expirations while it was away are delivered too.
	After string
	Time  time.Time
	// Context supplies caveat parameters.
	Context map[string]any
	// Poll is how often the clock is read for expirations when no write
	// arrives (0: DefaultPermissionWatchPoll).
	Poll time.Duration
}

// PermissionEvent is one change of an effective permission, or a
// checkpoint. The stream's state moves in steps; each step is either the
// change set of one revision (Cause "write") or the clock moving at the
// current revision (Cause "expiry"), and its events are followed by a
// checkpoint with the same Zookie and Time.
type PermissionEvent struct {
	// PermissionChange is the change (zero in a checkpoint): After is
	// the new answer, Revoked() when it is NoPermission.
	PermissionChange
	// Zookie is the revision the new answer holds at and Time the clock
	// instant it was evaluated at. (Zookie, Time, Resource, Subject)
	// identifies an event: a resumed stream may deliver it again.
	Zookie string
	Time   time.Time
	// Cause is "write" or "expiry"; empty in a checkpoint.
	Cause string
	// Checkpoint marks the end of a step: the consumer's state is the
	// permission at (Zookie, Time); resume from here.
	Checkpoint bool
}

// Causes of permission events.
const (
	CauseWrite  = "write"
	CauseExpiry = "expiry"
)

// WatchPermissions streams the changes of one permission's results as
// writes and time change them, starting after req.After (a checkpoint)
// and running until ctx is done or an error ends it.
//
// Every step is a permission diff (the machinery of DiffPermissions): for
// a write, between the revision before it and its own, both at the
// clock's now; for expiry, at the current revision between the previous
// instant and now, seeded by the relationships whose expiration lies in
// between (read from the relations that allow expiration and can alter
// the permission). The clock is read when a write arrives and every Poll;
// expirations are delivered in the first step after the clock passes
// them, before that step's write.
//
// Delivery is at least once: resume from the last checkpoint applied,
// and events after it are delivered again. Memory is bounded by one
// step's candidate resources: nothing is buffered for a slow consumer,
// whose position instead ages in the store's change log; when it falls
// out of the GC window the stream ends with ErrSnapshotExpired, never a
// gap, and the consumer must resync (LookupResources at a new zookie, then
// watch from it). A schema write that changes the schema ends it with
// ErrSchemaChanged.
func (e *Engine) WatchPermissions(ctx context.Context, req PermissionWatchRequest) iter.Seq2[PermissionEvent, error] {
	return func(yield func(PermissionEvent, error) bool) {
		w, err := e.newPermWatch(ctx, req)
		if err != nil {
			yield(PermissionEvent{}, err)
			return
		}
		if err := w.run(ctx, yield); err != nil {
			yield(PermissionEvent{}, err)
		}
	}
}

type permWatch struct {
	e     *Engine
	req   PermissionWatchRequest
	pos   store.Revision
	t     time.Time
	poll  time.Duration
	yield func(PermissionEvent, error) bool
	done  bool // the consumer stopped
}

func (e *Engine) newPermWatch(ctx context.Context, req PermissionWatchRequest) (*permWatch, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if err := req.Scope.validate(); err != nil {
		return nil, err
	}
	if err := e.checkContextSize(req.Context); err != nil {
		return nil, err
	}
	if req.Poll < 0 {
		return nil, fmt.Errorf("%w: negative poll interval %s", ErrInvalidRequest, req.Poll)
	}
	w := &permWatch{e: e, req: req, poll: req.Poll}
	if w.poll == 0 {
		w.poll = DefaultPermissionWatchPoll
	}
	var err error
	if req.After == "" {
		w.pos, err = e.heads.head(ctx)
	} else {
		w.pos, err = e.resolve(ctx, AtExactSnapshot(req.After))
	}
	if err != nil {
		return nil, fmt.Errorf("engine: watch permissions: %w", err)
	}
	// Validate the scope against the schema at the start.
	v, err := e.openAt(ctx, w.pos)
	if err != nil {
		return nil, w.lagged(err)
	}
	if v.c == nil {
		return nil, fmt.Errorf("%w (at revision %d)", ErrNoSchema, v.rev)
	}
	if err := v.c.eval.ValidateSubjectKind(req.Scope.ResourceType, ""); err != nil {
		return nil, fmt.Errorf("engine: watch permissions: %w", err)
	}
	if !hasPermission(v.c.eval, req.Scope.ResourceType, req.Scope.Permission) {
		return nil, fmt.Errorf("engine: watch permissions: %w", v.c.eval.ValidateSubjectKind(req.Scope.ResourceType, req.Scope.Permission))
	}
	if req.Scope.SubjectType != "" {
		if err := v.c.eval.ValidateSubjectKind(req.Scope.SubjectType, req.Scope.SubjectRelation); err != nil {
			return nil, fmt.Errorf("engine: watch permissions subject: %w", err)
		}
	}
	w.t = req.Time
	return w, nil
}

// change is one item from the store's watch.
type change struct {
	cs  store.ChangeSet
	err error
}

func (w *permWatch) run(ctx context.Context, yield func(PermissionEvent, error) bool) error {
	w.yield = yield
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := w.e.now()
	if w.t.IsZero() || w.t.After(now) {
		w.t = now
	} else if err := w.expire(ctx, now); err != nil || w.done {
		return err
	}
	if !w.checkpoint() {
		return nil
	}
	// The store's watch runs ahead by at most one change set.
	changes := make(chan change)
	go func() {
		for cs, err := range w.e.watchStore(ctx, w.pos) {
			select {
			case changes <- change{cs, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(w.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-changes:
			if c.err != nil {
				if errors.Is(c.err, context.Canceled) && ctx.Err() != nil {
					return ctx.Err()
				}
				return w.lagged(c.err)
			}
			if err := w.expire(ctx, w.e.now()); err != nil || w.done {
				return err
			}
			if err := w.apply(ctx, c.cs); err != nil || w.done {
				return err
			}
		case <-tick.C:
			now := w.e.now()
			if !now.After(w.t) {
				continue
			}
			if err := w.expire(ctx, now); err != nil || w.done {
				return err
			}
		}
		if !w.checkpoint() {
			return nil
		}
	}
}

// lagged explains a compacted revision: the consumer fell behind.
func (w *permWatch) lagged(err error) error {
	if errors.Is(err, store.ErrRevisionCompacted) {
		return fmt.Errorf("engine: watch permissions fell behind the GC window at revision %d (resync: look the permission up at a new zookie and watch from it): %w", w.pos, err)
	}
	return fmt.Errorf("engine: watch permissions at revision %d: %w", w.pos, err)
}

func (w *permWatch) checkpoint() bool {
	if !w.yield(PermissionEvent{Zookie: w.e.zookieOf(w.pos), Time: w.t, Checkpoint: true}, nil) {
		w.done = true
	}
	return !w.done
}

// emit yields the changes of d as events of one step.
func (w *permWatch) emit(d *Diff, cause string) error {
	for c, err := range d.Changes {
		if err != nil {
			return w.lagged(err)
		}
		if !w.yield(PermissionEvent{PermissionChange: c, Zookie: d.ToZookie, Time: w.t, Cause: cause}, nil) {
			w.done = true
			return nil
		}
	}
	return nil
}

// apply moves the stream to the revision of cs.
func (w *permWatch) apply(ctx context.Context, cs store.ChangeSet) error {
	a, err := w.e.openAt(ctx, w.pos)
	if err != nil {
		return w.lagged(err)
	}
	b, err := w.e.openAt(ctx, cs.Revision)
	if err != nil {
		return w.lagged(err)
	}
	if err := sameSchema(a, b); err != nil {
		return err
	}
	changed := appendChanged(nil, map[tuple.SubjectRef]bool{}, cs.Changes)
	d, err := w.e.diffViews(ctx, permSide{v: a, now: w.t, ctx: w.req.Context}, permSide{v: b, now: w.t, ctx: w.req.Context}, w.req.Scope, changed, len(cs.Changes))
	if err != nil {
		return w.lagged(err)
	}
	w.pos = cs.Revision
	return w.emit(d, CauseWrite)
}

// expire moves the stream's clock to now at its revision, delivering the
// changes of relationships that expired in between.
func (w *permWatch) expire(ctx context.Context, now time.Time) error {
	if !now.After(w.t) {
		return nil
	}
	v, err := w.e.openAt(ctx, w.pos)
	if err != nil {
		return w.lagged(err)
	}
	var changed []tuple.SubjectRef
	seen := map[tuple.SubjectRef]bool{}
	if v.c != nil {
		for _, k := range v.c.eval.ExpiringRelations(w.req.Scope.ResourceType, w.req.Scope.Permission) {
			f := tuple.Filter{ResourceType: k.Type, Relation: k.Relation}
			for r, err := range v.reader.QueryRelationships(ctx, f, store.QueryOptions{Now: w.t}) {
				if err != nil {
					return w.lagged(err)
				}
				if r.ExpiredAt(now) {
					changed = appendChanged(changed, seen, []store.Change{{Op: OpDelete, Relationship: r}})
				}
			}
		}
	}
	before := permSide{v: v, now: w.t, ctx: w.req.Context}
	w.t = now
	if len(changed) == 0 {
		return nil
	}
	d, err := w.e.diffViews(ctx, before, permSide{v: v, now: now, ctx: w.req.Context}, w.req.Scope, changed, len(changed))
	if err != nil {
		return w.lagged(err)
	}
	return w.emit(d, CauseExpiry)
}
