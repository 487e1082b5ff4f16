package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// StatsReader is implemented by readers whose store keeps Statistics, for
// the evaluator's planner. Statistics does no I/O and may return nil (no
// counts taken yet); the counts are approximate and may be older than
// the reader's revision, so they may steer how an answer is computed but
// never what it is.
type StatsReader interface {
	Statistics() *Statistics
}

// StatsKeeper is implemented by stores that keep Statistics: counted by a
// scan of every live relationship at the head revision, when the store
// opens and again once enough changes were committed since the last count
// (see StatsCounter). RefreshStatistics counts now and waits for it.
type StatsKeeper interface {
	Statistics() *Statistics
	RefreshStatistics(ctx context.Context) (*Statistics, error)
}

// RelationKind names a kind of relation end: a resource type and relation
// (Statistics.Resources), or a subject type and subject relation, with
// tuple.Ellipsis for plain subjects (Statistics.Subjects).
type RelationKind struct {
	Type, Relation string
}

// Count counts the relationships of one RelationKind and the distinct
// objects that hold them: resources for Statistics.Resources (exact at
// the time of the count), subjects for Statistics.Subjects (an estimate,
// within a few percent past a thousand; exact below 256).
type Count struct {
	Relationships int64
	Objects       int64
}

// Fanout is the mean number of relationships per object: 0 when there
// are none.
func (c Count) Fanout() float64 {
	if c.Objects == 0 {
		return 0
	}
	return float64(c.Relationships) / float64(c.Objects)
}

// Statistics counts a store's live (unexpired) relationships by the kind
// of their resource and of their subject, as of Revision. They are
// approximate by design: a count is taken by one scan and then kept until
// enough changes accumulate (see StatsCounter), and relationships that
// expire after the count stay counted.
type Statistics struct {
	// Revision is the revision the counts were taken at.
	Revision Revision
	// Total is the number of relationships counted.
	Total int64
	// Resources counts by (resource type, relation).
	Resources map[RelationKind]Count
	// Subjects counts by (subject type, subject relation), the relation
	// tuple.Ellipsis for plain subjects and wildcards.
	Subjects map[RelationKind]Count
}

// Resource returns the count of (typ, relation); zero when there is none
// or s is nil.
func (s *Statistics) Resource(typ, relation string) Count {
	if s == nil {
		return Count{}
	}
	return s.Resources[RelationKind{typ, relation}]
}

// Subject returns the count of subjects of (typ, relation), relation ""
// meaning plain subjects; zero when there is none or s is nil.
func (s *Statistics) Subject(typ, relation string) Count {
	if s == nil {
		return Count{}
	}
	if relation == "" {
		relation = tuple.Ellipsis
	}
	return s.Subjects[RelationKind{typ, relation}]
}

// CountStatistics counts the relationships r sees, unexpired at now, in
// one forward scan. Resources are counted exactly (the forward index
// keeps each resource's relationships together); distinct subjects are
// estimated with a k-minimum-values sketch of 256 hashes per kind, so the
// scan's memory does not grow with the data.
func CountStatistics(ctx context.Context, r Reader, now time.Time) (*Statistics, error) {
	st := &Statistics{Revision: r.Revision(), Resources: map[RelationKind]Count{}, Subjects: map[RelationKind]Count{}}
	sketches := map[RelationKind]*kmv{}
	var prev tuple.Relationship
	for rel, err := range r.QueryRelationships(ctx, tuple.Filter{}, QueryOptions{Now: now}) {
		if err != nil {
			return nil, fmt.Errorf("store: count statistics: %w", err)
		}
		st.Total++
		if st.Total%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("store: count statistics: %w", err)
			}
		}
		rk := RelationKind{rel.Resource.Type, rel.Relation}
		c := st.Resources[rk]
		c.Relationships++
		if st.Total == 1 || rel.Resource != prev.Resource || rel.Relation != prev.Relation {
			c.Objects++
		}
		st.Resources[rk] = c
		prev = rel

		srel := rel.Subject.Relation
		if srel == "" {
			srel = tuple.Ellipsis
		}
		sk := RelationKind{rel.Subject.Type, srel}
		sc := st.Subjects[sk]
		sc.Relationships++
		st.Subjects[sk] = sc
		m := sketches[sk]
		if m == nil {
			m = &kmv{}
			sketches[sk] = m
		}
		m.add(hashID(rel.Subject.ID))
	}
	for k, m := range sketches {
		c := st.Subjects[k]
		c.Objects = m.estimate()
		st.Subjects[k] = c
	}
	return st, nil
}

// kmvSize is the number of hashes a kmv keeps.
const kmvSize = 256

// kmv estimates the number of distinct values from the kmvSize smallest
// distinct hashes seen (Bar-Yossef et al.'s k-minimum-values estimator).
type kmv struct {
	h []uint64 // ascending, distinct, at most kmvSize
}

func (m *kmv) add(h uint64) {
	if len(m.h) == kmvSize && h >= m.h[kmvSize-1] {
		return
	}
	i, found := slices.BinarySearch(m.h, h)
	if found {
		return
	}
	if len(m.h) == kmvSize {
		m.h = m.h[:kmvSize-1]
	}
	m.h = slices.Insert(m.h, i, h)
}

// hashID hashes an object id for kmv: FNV-1a, then the finalizer of
// splitmix64 to spread it over all 64 bits. It is fixed, so counts are
// deterministic.
func hashID(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

func (m *kmv) estimate() int64 {
	if len(m.h) < kmvSize {
		return int64(len(m.h)) // every distinct hash is kept: exact
	}
	frac := float64(m.h[kmvSize-1]) / math.MaxUint64
	return int64(math.Round(float64(kmvSize-1) / frac))
}

// StatsCounter keeps a store's Statistics: backends embed one, call Start
// when they open, Observe after every commit and Stop before they close.
// It recounts (Count, on a goroutine of its own, one at a time) once the
// changes committed since the last count exceed a tenth of the
// relationships counted, or 1,000 when that is more. It is safe for
// concurrent use.
type StatsCounter struct {
	// Count counts the relationships at the head revision (for most
	// backends, CountStatistics over a reader at head). Set it before
	// Start.
	Count func(ctx context.Context) (*Statistics, error)

	cur     atomic.Pointer[Statistics]
	changes atomic.Int64 // committed since the last count started
	running atomic.Bool
	mu      sync.Mutex // held by a count; serialises them

	// lmu guards the life cycle: ctx is set by Start and canceled by
	// Stop, and no count starts after Stop.
	lmu    sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start begins keeping counts. With saved counts (a backend's copy of an
// earlier count, nil when it has none or they are older than the head) it
// serves them until enough changes accumulate; without, it counts in the
// background, and Statistics returns nil until that ends.
func (c *StatsCounter) Start(saved *Statistics) {
	c.lmu.Lock()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.lmu.Unlock()
	if saved != nil {
		c.cur.Store(saved)
		return
	}
	c.recount()
}

// Stop cancels a count in progress and waits for it; no count starts
// after it.
func (c *StatsCounter) Stop() {
	c.lmu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.lmu.Unlock()
	c.wg.Wait()
}

// Statistics returns the latest counts; nil before the first count ends.
func (c *StatsCounter) Statistics() *Statistics { return c.cur.Load() }

// Observe records n committed changes, starting a recount when enough
// accumulated.
func (c *StatsCounter) Observe(n int) {
	total := c.changes.Add(int64(n))
	var counted int64
	if st := c.cur.Load(); st != nil {
		counted = st.Total
	}
	if total > max(1000, counted/10) {
		c.recount()
	}
}

// ObservedImport passes rels through, counting in *n those that are not
// reserved rows (tuple.Reserved): what a bulk load tells Observe. The
// nested-group index's rebuild loads millions of reserved rows, which
// the statistics do not need to follow, in many loads; counted, they
// would start a recount of the whole store after every few of them.
func ObservedImport(rels iter.Seq2[tuple.Relationship, error], n *int) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for r, err := range rels {
			if err == nil && !tuple.Reserved(r.Relation) {
				*n++
			}
			if !yield(r, err) {
				return
			}
		}
	}
}

// recount starts a background count unless one is running or the counter
// was not started.
func (c *StatsCounter) recount() {
	c.lmu.Lock()
	defer c.lmu.Unlock()
	if c.ctx == nil || c.ctx.Err() != nil || !c.running.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.running.Store(false)
		// A failed background count (a store closing, a compacted
		// snapshot) leaves the last counts; the next commits retry.
		_, _ = c.Refresh(c.ctx)
	}()
}

// Refresh counts now, at the head revision, and returns the new counts.
func (c *StatsCounter) Refresh(ctx context.Context) (*Statistics, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes.Store(0)
	st, err := c.Count(ctx)
	if err != nil {
		return nil, err
	}
	c.cur.Store(st)
	return st, nil
}

// statsFile is the encoding of Statistics (EncodeStatistics).
type statsFile struct {
	Revision  uint64      `json:"revision"`
	Total     int64       `json:"total"`
	Resources []kindCount `json:"resources"`
	Subjects  []kindCount `json:"subjects"`
}

type kindCount struct {
	Type          string `json:"type"`
	Relation      string `json:"relation"`
	Relationships int64  `json:"relationships"`
	Objects       int64  `json:"objects"`
}

func kindCounts(m map[RelationKind]Count) []kindCount {
	out := make([]kindCount, 0, len(m))
	for k, c := range m {
		out = append(out, kindCount{k.Type, k.Relation, c.Relationships, c.Objects})
	}
	slices.SortFunc(out, func(a, b kindCount) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Relation, b.Relation))
	})
	return out
}

// EncodeStatistics encodes st (as JSON, kinds sorted), for backends that
// keep their last count across restarts.
func EncodeStatistics(st *Statistics) []byte {
	b, err := json.Marshal(statsFile{uint64(st.Revision), st.Total, kindCounts(st.Resources), kindCounts(st.Subjects)})
	if err != nil {
		panic(fmt.Sprintf("store: encode statistics: %v", err)) // plain strings and integers
	}
	return b
}

// DecodeStatistics decodes what EncodeStatistics encoded.
func DecodeStatistics(b []byte) (*Statistics, error) {
	var f statsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("store: decode statistics: %w", err)
	}
	st := &Statistics{Revision: Revision(f.Revision), Total: f.Total,
		Resources: make(map[RelationKind]Count, len(f.Resources)), Subjects: make(map[RelationKind]Count, len(f.Subjects))}
	for _, k := range f.Resources {
		st.Resources[RelationKind{k.Type, k.Relation}] = Count{k.Relationships, k.Objects}
	}
	for _, k := range f.Subjects {
		st.Subjects[RelationKind{k.Type, k.Relation}] = Count{k.Relationships, k.Objects}
	}
	return st, nil
}
