package engine_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/examples/enterprise"
	"github.com/pemba-authz/pemba/schema"
)

// randomRelationships returns n relationships that fit s, drawn from small
// pools of IDs so that they connect: every allowed subject type of every
// relation (subject sets, wildcards, caveats without a stored context,
// expirations an hour either side of now), no key twice, in random order.
func randomRelationships(rng *rand.Rand, s *schema.Schema, n int, now time.Time) []tuple.Relationship {
	type slot struct {
		def string
		rel *schema.Relation
		as  *schema.AllowedSubject
	}
	var slots []slot
	for _, name := range slices.Sorted(maps.Keys(s.Definitions)) {
		for _, r := range s.Definitions[name].Ordered {
			if r.IsPermission {
				continue
			}
			for _, as := range r.Allowed {
				slots = append(slots, slot{name, r, as})
			}
		}
	}
	seen := map[tuple.Key]bool{}
	var out []tuple.Relationship
	for tries := 0; len(out) < n && tries < 20*n; tries++ {
		sl := slots[rng.IntN(len(slots))]
		r := tuple.Relationship{
			Resource: tuple.ObjectRef{Type: sl.def, ID: fmt.Sprintf("%s%d", sl.def[:1], rng.IntN(3))},
			Relation: sl.rel.Name,
			Subject:  tuple.SubjectRef{Type: sl.as.Type, ID: fmt.Sprintf("%s%d", sl.as.Type[:1], rng.IntN(3)), Relation: sl.as.Relation},
		}
		if sl.as.Wildcard {
			r.Subject.ID = tuple.Wildcard
		}
		if sl.as.Caveat != nil {
			r.Caveat = &tuple.Caveat{Name: sl.as.Caveat.Name}
		}
		if sl.as.Expiration {
			r.Expiration = now.Add(time.Duration(rng.IntN(3)-1) * time.Hour).Add(time.Minute)
		}
		if seen[r.Key()] {
			continue
		}
		seen[r.Key()] = true
		out = append(out, r)
	}
	return out
}

// openWith returns an engine over a fresh memstore holding text and rels,
// on clock clk.
func openWith(t testing.TB, text string, rels []tuple.Relationship, clk *clock, cacheBytes int64) *engine.Engine {
	t.Helper()
	eng, _ := openCounting(t, text, rels, clk, cacheBytes)
	return eng
}

// openCounting is openWith over a store that counts the queries of its
// readers.
func openCounting(t testing.TB, text string, rels []tuple.Relationship, clk *clock, cacheBytes int64) (*engine.Engine, *countingStore) {
	t.Helper()
	ctx := t.Context()
	st := &countingStore{Store: memstore.New(memstore.Options{Now: clk.Now})}
	t.Cleanup(func() { st.Close() })
	// No closure in memory: its background load would read the store at
	// times of its own, and the counts must be the requests'.
	eng, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: cacheBytes, NestedMemoryBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if _, _, err := eng.WriteSchema(ctx, "test", text); err != nil {
		t.Fatal(err)
	}
	for chunk := range slices.Chunk(rels, 500) {
		ups := make([]engine.Update, len(chunk))
		for i, r := range chunk {
			ups[i] = engine.Update{Op: engine.OpTouch, Relationship: r}
		}
		if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "test", Updates: ups}); err != nil {
			t.Fatal(err)
		}
	}
	return eng, st
}

// TestPermissionSetDifferential compares permission sets (matrices of
// every permission and relation over random resources, some of the data
// moved into the request as contextual relationships) with brute force:
// one uncached Check per cell on a store that holds all the data.
func TestPermissionSetDifferential(t *testing.T) {
	// Random data keeps no invariant (an enterprise without its creator):
	// the schema without them.
	schemas := map[string]string{"test": testSchema, "enterprise": enterprise.SchemaWithoutInvariants()}
	ctx := t.Context()
	for _, name := range slices.Sorted(maps.Keys(schemas)) {
		text := schemas[name]
		s, err := schema.Compile(name, text)
		if err != nil {
			t.Fatal(err)
		}
		answers := map[engine.Permissionship]int{}
		for seed := range uint64(12) {
			rng := rand.New(rand.NewPCG(seed, 21))
			clk := newClock()
			all := randomRelationships(rng, s, 40+rng.IntN(80), clk.Now())
			var stored, contextual []tuple.Relationship
			for _, r := range all {
				if seed%2 == 1 && rng.IntN(3) == 0 {
					contextual = append(contextual, r)
				} else {
					stored = append(stored, r)
				}
			}
			ref := openWith(t, text, all, clk, -1)
			sets := openWith(t, text, stored, clk, 1<<20)
			for _, typ := range slices.Sorted(maps.Keys(s.Definitions)) {
				def := s.Definitions[typ]
				var resources []tuple.ObjectRef
				for i := range 3 {
					if i == 0 || rng.IntN(2) == 0 {
						resources = append(resources, tuple.ObjectRef{Type: typ, ID: fmt.Sprintf("%s%d", typ[:1], i)})
					}
				}
				// A plain subject of a type some relation accepts, or a
				// subject set.
				subjects := []tuple.SubjectRef{}
				for _, r := range def.Ordered {
					for _, as := range r.Allowed {
						subjects = append(subjects, tuple.SubjectRef{Type: as.Type, ID: fmt.Sprintf("%s%d", as.Type[:1], rng.IntN(3)), Relation: as.Relation})
					}
				}
				if len(subjects) == 0 {
					continue
				}
				for range 2 {
					sub := subjects[rng.IntN(len(subjects))]
					req := engine.PermissionSetRequest{Consistency: engine.FullyConsistent(), Resources: resources, IncludeRelations: true, Subject: sub, Contextual: contextual}
					for pass := range 2 { // the second pass meets a warm cache
						got, err := sets.CheckPermissionSet(ctx, req)
						if err != nil {
							t.Fatalf("%s seed %d: CheckPermissionSet(%v, %s): %v", name, seed, resources, sub, err)
						}
						if len(got.Permissions) != len(def.Ordered) || len(got.Results) != len(resources) {
							t.Fatalf("%s seed %d: %d columns and %d rows, want %d and %d", name, seed, len(got.Permissions), len(got.Results), len(def.Ordered), len(resources))
						}
						for i, res := range resources {
							for j, perm := range got.Permissions {
								want, err := ref.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{Resource: res, Permission: perm, Subject: sub}})
								cell := got.Results[i][j]
								answers[cell.Permissionship]++
								if (err != nil) != (cell.Err != nil) || cell.Permissionship != want.Permissionship || !slices.Equal(cell.MissingContext, want.MissingContext) {
									t.Fatalf("%s seed %d pass %d (%d contextual): %s#%s@%s: set says %v %v (err %v), Check says %v %v (err %v)",
										name, seed, pass, len(contextual), res, perm, sub, cell.Permissionship, cell.MissingContext, cell.Err, want.Permissionship, want.MissingContext, err)
								}
							}
						}
					}
				}
			}
		}
		// Data that answers everything "no" would prove nothing.
		if answers[engine.HasPermission] == 0 || answers[engine.NoPermission] == 0 || (name == "test" && answers[engine.ConditionalPermission] == 0) {
			t.Fatalf("%s: answers %v: the random data decides too little", name, answers)
		}
		t.Logf("%s: answers %v", name, answers)
	}
}

// TestPermissionSet pins down the request's shape: which columns an empty
// list means, what is refused and with which error.
func TestPermissionSet(t *testing.T) {
	f := newFixture(t, engine.Options{})
	f.touch("document:d1#viewer@user:anne", "document:d1#banned@user:bob", "document:d1#viewer@user:bob",
		"document:d2#conditional@user:anne[ip_allowed]")
	doc := func(ids ...string) []tuple.ObjectRef {
		var out []tuple.ObjectRef
		for _, id := range ids {
			out = append(out, tuple.ObjectRef{Type: "document", ID: id})
		}
		return out
	}
	anne := tuple.SubjectRef{Type: "user", ID: "anne"}
	tooMany := make([]tuple.ObjectRef, engine.DefaultMaxPermissionSetResources+1)
	for i := range tooMany {
		tooMany[i] = tuple.ObjectRef{Type: "document", ID: fmt.Sprint(i)}
	}
	tests := []struct {
		name    string
		req     engine.PermissionSetRequest
		columns []string
		cells   string // rows separated by "|", one letter per cell: y, n, c(onditional)
		err     error
	}{
		{name: "every permission", req: engine.PermissionSetRequest{Resources: doc("d1"), Subject: anne}, columns: []string{"view"}, cells: "y"},
		{name: "relations too", req: engine.PermissionSetRequest{Resources: doc("d1", "d2"), Subject: anne, IncludeRelations: true},
			columns: []string{"viewer", "conditional", "banned", "view"}, cells: "ynny|ncnn"},
		{name: "a subset, in its order", req: engine.PermissionSetRequest{Resources: doc("d2", "d1"), Subject: anne, Permissions: []string{"conditional", "view"}},
			columns: []string{"conditional", "view"}, cells: "cn|ny"},
		{name: "exclusion", req: engine.PermissionSetRequest{Resources: doc("d1"), Subject: tuple.SubjectRef{Type: "user", ID: "bob"}, Permissions: []string{"viewer", "banned", "view"}},
			columns: []string{"viewer", "banned", "view"}, cells: "yyn"},
		{name: "caveat context", req: engine.PermissionSetRequest{Resources: doc("d2"), Subject: anne, Permissions: []string{"conditional"},
			Context: map[string]any{"ip": "1.2.3.4", "allowed": []any{"1.2.3.4"}}}, columns: []string{"conditional"}, cells: "y"},
		{name: "contextual", req: engine.PermissionSetRequest{Resources: doc("d2"), Subject: anne, Contextual: []tuple.Relationship{mustParse(t, "document:d2#viewer@user:anne")}},
			columns: []string{"view"}, cells: "y"},
		{name: "no resource", req: engine.PermissionSetRequest{Subject: anne}, err: engine.ErrInvalidRequest},
		{name: "too many resources", req: engine.PermissionSetRequest{Resources: tooMany, Subject: anne}, err: engine.ErrInvalidRequest},
		{name: "two types", req: engine.PermissionSetRequest{Resources: []tuple.ObjectRef{{Type: "document", ID: "d1"}, {Type: "group", ID: "g"}}, Subject: anne}, err: engine.ErrInvalidRequest},
		{name: "resource twice", req: engine.PermissionSetRequest{Resources: doc("d1", "d1"), Subject: anne}, err: engine.ErrInvalidRequest},
		{name: "permission twice", req: engine.PermissionSetRequest{Resources: doc("d1"), Subject: anne, Permissions: []string{"view", "view"}}, err: engine.ErrInvalidRequest},
		{name: "unknown permission", req: engine.PermissionSetRequest{Resources: doc("d1"), Subject: anne, Permissions: []string{"edit"}}, err: engine.ErrUnknownRelation},
		{name: "unknown type", req: engine.PermissionSetRequest{Resources: []tuple.ObjectRef{{Type: "folder", ID: "f"}}, Subject: anne}, err: engine.ErrUnknownDefinition},
		{name: "unknown subject type", req: engine.PermissionSetRequest{Resources: doc("d1"), Subject: tuple.SubjectRef{Type: "robot", ID: "r"}}, err: engine.ErrUnknownDefinition},
		{name: "empty resource id", req: engine.PermissionSetRequest{Resources: doc(""), Subject: anne}, err: engine.ErrInvalidRequest},
		{name: "invalid contextual", req: engine.PermissionSetRequest{Resources: doc("d1"), Subject: anne, Contextual: []tuple.Relationship{mustParse(t, "document:d1#view@user:anne")}}, err: engine.ErrWriteToPermission},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Consistency = engine.FullyConsistent()
			got, err := f.eng.CheckPermissionSet(f.ctx, tc.req)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Permissions, tc.columns) {
				t.Fatalf("columns %v, want %v", got.Permissions, tc.columns)
			}
			var rows []string
			for _, row := range got.Results {
				var b strings.Builder
				for _, c := range row {
					if c.Err != nil {
						t.Fatalf("cell error %v", c.Err)
					}
					b.WriteByte("nyc"[c.Permissionship])
				}
				rows = append(rows, b.String())
			}
			if s := strings.Join(rows, "|"); s != tc.cells {
				t.Fatalf("cells %s, want %s", s, tc.cells)
			}
			if got.Zookie == "" {
				t.Fatal("no zookie")
			}
		})
	}
}

// countingStore counts the queries of every reader it hands out.
type countingStore struct {
	*memstore.Store
	queries atomic.Int64
}

func (c *countingStore) Snapshot(ctx context.Context, rev store.Revision) (store.Reader, error) {
	r, err := c.Store.Snapshot(ctx, rev)
	if err != nil {
		return nil, err
	}
	return countingReader{r, &c.queries}, nil
}

type countingReader struct {
	store.Reader
	n *atomic.Int64
}

func (r countingReader) QueryRelationships(ctx context.Context, f tuple.Filter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	r.n.Add(1)
	return r.Reader.QueryRelationships(ctx, f, opts)
}

func (r countingReader) ReverseQueryRelationships(ctx context.Context, f tuple.ReverseFilter, opts store.QueryOptions) iter.Seq2[tuple.Relationship, error] {
	r.n.Add(1)
	return r.Reader.ReverseQueryRelationships(ctx, f, opts)
}

// TestPermissionSetSharesSubproblems: the cells of a set are one
// evaluation, so the relations several permissions are built from are
// read once for the set: with no result cache, a set of four permissions
// reads the store less than half as often as four separate checks.
func TestPermissionSetSharesSubproblems(t *testing.T) {
	clk := newClock()
	text := `
definition user {}
definition group {
	relation member: user | group#member
}
definition doc {
	relation viewer: group#member
	relation editor: group#member
	permission view = viewer + edit
	permission edit = editor + admin
	permission admin = viewer & editor
	permission comment = view
}`
	ctx := t.Context()
	st := &countingStore{Store: memstore.New(memstore.Options{Now: clk.Now})}
	t.Cleanup(func() { st.Close() })
	// No closure in memory: as openCounting.
	eng, err := engine.Open(ctx, st, engine.Options{Now: clk.Now, CacheBytes: -1, NestedMemoryBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(ctx, "test", text); err != nil {
		t.Fatal(err)
	}
	var ups []engine.Update
	for i := range 20 {
		ups = append(ups, engine.Update{Op: engine.OpTouch, Relationship: mustParse(t, fmt.Sprintf("group:g%d#member@group:g%d#member", i, i+1))})
	}
	for _, s := range []string{"group:g20#member@user:u", "doc:d#viewer@group:g0#member", "doc:d#editor@group:g0#member"} {
		ups = append(ups, engine.Update{Op: engine.OpTouch, Relationship: mustParse(t, s)})
	}
	if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Updates: ups}); err != nil {
		t.Fatal(err)
	}
	sub := tuple.SubjectRef{Type: "user", ID: "u"}
	d := tuple.ObjectRef{Type: "doc", ID: "d"}
	st.queries.Store(0)
	set, err := eng.CheckPermissionSet(ctx, engine.PermissionSetRequest{Consistency: engine.FullyConsistent(), Resources: []tuple.ObjectRef{d}, Subject: sub})
	if err != nil {
		t.Fatal(err)
	}
	setReads := st.queries.Load()
	st.queries.Store(0)
	for j, perm := range set.Permissions {
		if c := set.Results[0][j]; c.Permissionship != engine.HasPermission || c.Err != nil {
			t.Fatalf("%s: %v %v", perm, c.Permissionship, c.Err)
		}
		if _, err := eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{Resource: d, Permission: perm, Subject: sub}}); err != nil {
			t.Fatal(err)
		}
	}
	separate := st.queries.Load()
	if len(set.Permissions) != 4 || setReads*2 > separate {
		t.Fatalf("a set of %v read the store %d times, separate checks %d: not shared", set.Permissions, setReads, separate)
	}
	t.Logf("set: %d reads; %d separate checks: %d reads", setReads, len(set.Permissions), separate)
}

// TestPermissionSetWarm: cells whose answer is in the result cache are
// answered from it without reading the store, in their own places among
// cells that are not (some cells warmed by single checks first), and a
// cell that a contextual relationship reaches is never answered from it.
func TestPermissionSetWarm(t *testing.T) {
	clk := newClock()
	text := `
definition user {}
definition group {
	relation member: user | group#member
}
definition doc {
	relation viewer: group#member | user
	relation editor: group#member
	relation owner: user
	permission view = viewer + edit
	permission edit = editor + owner
	permission admin = owner
}`
	var rels []tuple.Relationship
	for _, s := range []string{"group:g1#member@user:u", "group:g0#member@group:g1#member", "doc:d1#viewer@group:g0#member", "doc:d2#editor@group:g0#member", "doc:d3#owner@user:v"} {
		rels = append(rels, mustParse(t, s))
	}
	ctx := t.Context()
	ref := openWith(t, text, rels, clk, -1)
	eng, st := openCounting(t, text, rels, clk, 1<<20)
	sub := tuple.SubjectRef{Type: "user", ID: "u"}
	docs := []tuple.ObjectRef{{Type: "doc", ID: "d1"}, {Type: "doc", ID: "d2"}, {Type: "doc", ID: "d3"}}
	check := func(t *testing.T, eng *engine.Engine, res tuple.ObjectRef, perm string, contextual []tuple.Relationship) engine.CheckResponse {
		t.Helper()
		got, err := eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), Contextual: contextual, CheckRequest: engine.CheckQuery{Resource: res, Permission: perm, Subject: sub}})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// set asks for every permission on docs and compares each cell with
	// an uncached Check on ref (which holds extra as stored data); it
	// returns the store reads and the cells answered by a cache hit.
	set := func(t *testing.T, contextual []tuple.Relationship, ref *engine.Engine) (reads int64, hits int) {
		t.Helper()
		st.queries.Store(0)
		got, err := eng.CheckPermissionSet(ctx, engine.PermissionSetRequest{Consistency: engine.FullyConsistent(), Resources: docs, Subject: sub, Contextual: contextual})
		if err != nil {
			t.Fatal(err)
		}
		reads = st.queries.Load()
		for i, res := range docs {
			for j, perm := range got.Permissions {
				cell := got.Results[i][j]
				if want := check(t, ref, res, perm, nil); cell.Err != nil || cell.Permissionship != want.Permissionship {
					t.Errorf("%s#%s: set says %v (err %v), Check says %v", res, perm, cell.Permissionship, cell.Err, want.Permissionship)
				}
				if cell.Dispatches == 1 && cell.Depth == 0 {
					hits++
				}
			}
		}
		return reads, hits
	}
	// Warm two cells in the middle of the matrix (d1#edit, d2#view):
	// the set answers them from the cache and evaluates the rest.
	check(t, eng, docs[0], "edit", nil)
	check(t, eng, docs[1], "view", nil)
	if _, hits := set(t, nil, ref); hits < 2 {
		t.Errorf("partly warm: %d cells from the cache, want at least the 2 warmed", hits)
	}
	// Now every cell is warm: no store read at all.
	if reads, hits := set(t, nil, ref); reads != 0 || hits != 9 {
		t.Errorf("warm: %d store reads and %d cells from the cache, want 0 and 9", reads, hits)
	}
	// A contextual owner of d3 reaches every permission: no cell is
	// answered from the cache, and the answers are those of a store
	// holding it.
	extra := []tuple.Relationship{mustParse(t, "doc:d3#owner@user:u")}
	withExtra := openWith(t, text, append(slices.Clone(rels), extra...), clk, -1)
	if reads, hits := set(t, extra, withExtra); reads == 0 || hits != 0 {
		t.Errorf("contextual owner: %d store reads and %d cells from the cache, want some and 0", reads, hits)
	}
	// And nothing of it stayed behind for a request without it.
	if reads, hits := set(t, nil, ref); reads != 0 || hits != 9 {
		t.Errorf("warm again: %d store reads and %d cells from the cache, want 0 and 9", reads, hits)
	}
}
