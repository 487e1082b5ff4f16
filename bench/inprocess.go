package bench

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// InProcessOptions configure an in-process target.
type InProcessOptions struct {
	// Store is "pebble" (Dir required), "postgres" (URI required) or
	// "memory".
	Store string
	// Dir is the Pebble data directory.
	Dir string
	// URI is the PostgreSQL connection URI; the database is migrated
	// when it is not yet.
	URI string
	// Consistency is asked for by every read.
	Consistency Consistency
	// Engine is passed to engine.Open.
	Engine engine.Options
	// Pebble configures a Pebble store.
	Pebble engine.PebbleOptions
}

// InProcess is a Target that calls an engine in this process.
type InProcess struct {
	st engine.Store
	e  *engine.Engine
	c  engine.Consistency
}

// caller names the benchmark in the changelog.
const caller = "pemba-bench"

// NewInProcess opens the store and an engine over it.
func NewInProcess(ctx context.Context, opts InProcessOptions) (*InProcess, error) {
	st, err := engine.OpenStore(ctx, engine.StoreOptions{Kind: opts.Store, Dir: opts.Dir, URI: opts.URI, Migrate: true, Pebble: opts.Pebble})
	if errors.Is(err, engine.ErrStoreUsage) {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	e, err := engine.Open(ctx, st, opts.Engine)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: open engine: %w", err), st.Close())
	}
	t := &InProcess{st: st, e: e, c: engine.MinimizeLatency()}
	if opts.Consistency == FullyConsistent {
		t.c = engine.FullyConsistent()
	}
	return t, nil
}

// Head returns the newest revision of the store (0: nothing written).
func (t *InProcess) Head(ctx context.Context) (engine.Revision, error) {
	return t.e.Head(ctx)
}

// Load writes the schema and imports rels in one bulk import.
func (t *InProcess) Load(ctx context.Context, schema string, rels iter.Seq2[tuple.Relationship, error]) (int, error) {
	if _, _, err := t.e.WriteSchema(ctx, caller, schema); err != nil {
		return 0, fmt.Errorf("bench: write schema: %w", err)
	}
	_, n, err := t.e.Import(ctx, caller, rels)
	if err != nil {
		return n, fmt.Errorf("bench: import: %w", err)
	}
	return n, nil
}

// Do sends req to the engine.
func (t *InProcess) Do(ctx context.Context, req *workload.Request) (Outcome, error) {
	switch req.Op {
	case workload.OpCheck:
		res, err := t.e.Check(ctx, engine.CheckRequest{
			Consistency:  t.c,
			CheckRequest: engine.CheckQuery{Resource: req.Resource, Permission: req.Permission, Subject: req.Subject},
			Context:      req.Context,
		})
		if err != nil {
			return Outcome{}, err
		}
		return Outcome{Allowed: res.Permissionship == engine.HasPermission}, nil
	case workload.OpLookupResources:
		return t.lookupResources(ctx, req)
	case workload.OpLookupSubjects:
		seq, _, err := t.e.LookupSubjects(ctx, engine.LookupSubjectsRequest{
			Consistency: t.c,
			LookupSubjectsRequest: engine.LookupSubjectsQuery{
				Resource: req.Resource, Permission: req.Permission, SubjectType: req.SubjectType,
			},
			Context: req.Context,
		})
		if err != nil {
			return Outcome{}, err
		}
		return drain(seq)
	case workload.OpWrite:
		w := engine.WriteRequest{Caller: caller, Updates: make([]engine.Update, len(req.Updates))}
		for i, u := range req.Updates {
			op := engine.OpTouch
			if u.Delete {
				op = engine.OpDelete
			}
			w.Updates[i] = engine.Update{Op: op, Relationship: u.Relationship}
		}
		_, err := t.e.WriteRelationships(ctx, w)
		return Outcome{}, err
	}
	return Outcome{}, fmt.Errorf("%w: operation %s", ErrUsage, req.Op)
}

// lookupResources pages through every result, as a client would: a page
// holds at most the engine's lookup limit.
func (t *InProcess) lookupResources(ctx context.Context, req *workload.Request) (Outcome, error) {
	limit := t.e.Limits().MaxLookupLimit
	total, cursor := 0, ""
	for {
		seq, _, err := t.e.LookupResources(ctx, engine.LookupResourcesRequest{
			Consistency: t.c,
			LookupResourcesRequest: engine.LookupResourcesQuery{
				ResourceType: req.ResourceType, Permission: req.Permission, Subject: req.Subject,
				Limit: limit,
			},
			Context: req.Context,
			Cursor:  cursor,
		})
		if err != nil {
			return Outcome{Results: total}, err
		}
		n := 0
		var last engine.ResourceResult
		for r, err := range seq {
			if err != nil {
				return Outcome{Results: total + n}, err
			}
			n++
			last = r
		}
		total += n
		if n < limit {
			return Outcome{Results: total}, nil
		}
		// Minted once a page, as a client keeps only the last cursor.
		cursor = last.Cursor()
	}
}

// drain consumes a lookup's results, counting them.
func drain[T any](seq iter.Seq2[T, error]) (Outcome, error) {
	n := 0
	for _, err := range seq {
		if err != nil {
			return Outcome{Results: n}, err
		}
		n++
	}
	return Outcome{Results: n}, nil
}

// Stats returns the engine's cache counters.
func (t *InProcess) Stats() TargetStats {
	s := t.e.Stats()
	return TargetStats{CacheEnabled: s.CacheEnabled, CacheHits: s.Cache.Hits, CacheMisses: s.Cache.Misses, Plans: s.Plans,
		NestedMemoryBytes: s.NestedMemoryBytes, NestedMemoryLoads: s.NestedMemoryLoads, NestedMemoryLoadSeconds: s.NestedMemoryLoadTime.Seconds()}
}

// settle waits for the closures' loads that the warm-up's checks
// started (settler).
func (t *InProcess) settle(ctx context.Context) error {
	if err := t.e.WaitNestedMemory(ctx); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// Close closes the engine and then the store.
func (t *InProcess) Close() error {
	return errors.Join(t.e.Close(), t.st.Close())
}
