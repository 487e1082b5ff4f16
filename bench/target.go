package bench

import (
	"context"
	"fmt"
	"iter"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Target is a system under test.
type Target interface {
	// Load writes the schema and imports the relationships, returning how
	// many were imported.
	Load(ctx context.Context, schema string, rels iter.Seq2[tuple.Relationship, error]) (int, error)
	// Do sends one request and waits for the whole answer (every result
	// of a lookup).
	Do(ctx context.Context, req *workload.Request) (Outcome, error)
	// Stats returns the target's cumulative counters.
	Stats() TargetStats
	// Close releases the target.
	Close() error
}

// settler is a target whose requests start background work of its own
// (an in-process engine loading the nested-group index's closures into
// memory after the first checks) that Measure lets finish between the
// warm-up and the measured phase, as it lets the store's statistics
// settle, so that the phase is not charged for a one-time cost; the
// report still tells the work (Report.NestedMemory).
type settler interface {
	settle(ctx context.Context) error
}

// Outcome is what a request returned.
type Outcome struct {
	// Allowed is a check's answer (conditional counts as not allowed).
	Allowed bool
	// Results is the number of results of a lookup.
	Results int
}

// TargetStats are counters a target may expose.
type TargetStats struct {
	CacheEnabled bool
	CacheHits    uint64
	CacheMisses  uint64
	// Plans counts the planner's decisions by plan (in-process targets;
	// see engine.Stats.Plans).
	Plans map[string]uint64
	// NestedMemoryBytes, NestedMemoryLoads and NestedMemoryLoadSeconds
	// are the engine's in-memory closures (in-process targets; see
	// engine.Stats.NestedMemoryBytes).
	NestedMemoryBytes       int64
	NestedMemoryLoads       uint64
	NestedMemoryLoadSeconds float64
}

// Consistency is the freshness a run asks for on every read.
type Consistency uint8

// Consistencies a run can ask for.
const (
	MinimizeLatency Consistency = iota
	FullyConsistent
)

func (c Consistency) String() string {
	if c == FullyConsistent {
		return "fully_consistent"
	}
	return "minimize_latency"
}

// ParseConsistency reads "minimize_latency" or "fully_consistent".
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "minimize_latency":
		return MinimizeLatency, nil
	case "fully_consistent":
		return FullyConsistent, nil
	}
	return 0, fmt.Errorf("%w: consistency %q (want minimize_latency or fully_consistent)", ErrUsage, s)
}
