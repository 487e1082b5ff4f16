package bench

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
)

// TestPebbleAndPostgresAgree loads the same generated data sets into
// Pebble and PostgreSQL and asks both engines the same questions, drawn
// from the workload's request streams: Check, CheckBulk,
// LookupResources, LookupSubjects and Expand. No answer may differ.
func TestPebbleAndPostgresAgree(t *testing.T) {
	// One fixed clock for both, so expiring grants expire alike; no cache,
	// so every answer is computed from the store.
	now := time.Now()
	opts := engine.Options{Now: func() time.Time { return now }, CacheBytes: -1}
	cases := []struct {
		name                 string
		checks, lookups, exp int
	}{
		{"enterprise", 1500, 60, 150},
		{"deep-chain", 300, 20, 40},
		{"wide-group", 200, 10, 10},
		// Documents in 10,000 folders: the arrow planner's shape.
		{"wide-arrow", 300, 3, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			wl, err := workload.New(tc.name, workload.Small, 7)
			if err != nil {
				t.Fatal(err)
			}
			uri, _ := pgtest.NewDatabase(t)
			var engines [2]*engine.Engine
			for i, o := range []InProcessOptions{
				{Store: "pebble", Dir: t.TempDir(), Engine: opts},
				{Store: "postgres", URI: uri, Engine: opts},
			} {
				tg, err := NewInProcess(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { tg.Close() })
				if _, err := Load(ctx, tg, wl, nil); err != nil {
					t.Fatalf("load into %s: %v", o.Store, err)
				}
				engines[i] = tg.e
			}
			peb, pg := engines[0], engines[1]
			full := engine.FullyConsistent()
			src := wl.Source(99)
			var bulk []engine.BulkCheckItem
			for range tc.checks {
				q := src.Next(workload.OpCheck)
				req := engine.CheckRequest{Consistency: full, CheckRequest: engine.CheckQuery{Resource: q.Resource, Permission: q.Permission, Subject: q.Subject}, Context: q.Context}
				a, aerr := peb.Check(ctx, req)
				b, berr := pg.Check(ctx, req)
				if fmt.Sprint(aerr) != fmt.Sprint(berr) || a.Permissionship != b.Permissionship || !slices.Equal(a.MissingContext, b.MissingContext) {
					t.Fatalf("%s: Pebble %v %v (%v), PostgreSQL %v %v (%v)", q, a.Permissionship, a.MissingContext, aerr, b.Permissionship, b.MissingContext, berr)
				}
				bulk = append(bulk, engine.BulkCheckItem{CheckRequest: engine.CheckQuery{Resource: q.Resource, Permission: q.Permission, Subject: q.Subject}, Context: q.Context})
			}
			for start := 0; start < len(bulk); start += 50 {
				items := bulk[start:min(start+50, len(bulk))]
				ar, aerr := peb.CheckBulk(ctx, engine.BulkCheckRequest{Consistency: full, Items: items})
				br, berr := pg.CheckBulk(ctx, engine.BulkCheckRequest{Consistency: full, Items: items})
				if aerr != nil || berr != nil {
					t.Fatalf("CheckBulk: Pebble %v, PostgreSQL %v", aerr, berr)
				}
				a, b := ar.Results, br.Results
				for i := range items {
					if a[i].Permissionship != b[i].Permissionship || fmt.Sprint(a[i].Err) != fmt.Sprint(b[i].Err) {
						t.Fatalf("CheckBulk item %v: Pebble %v (%v), PostgreSQL %v (%v)", items[i], a[i].Permissionship, a[i].Err, b[i].Permissionship, b[i].Err)
					}
				}
			}
			for range tc.lookups {
				q := src.Next(workload.OpLookupResources)
				req := engine.LookupResourcesRequest{Consistency: full, LookupResourcesRequest: engine.LookupResourcesQuery{ResourceType: q.ResourceType, Permission: q.Permission, Subject: q.Subject}}
				a, b := lookupResources(t, peb, req), lookupResources(t, pg, req)
				if a != b {
					t.Fatalf("%s:\nPebble     %s\nPostgreSQL %s", q, a, b)
				}
			}
			for range tc.lookups {
				q := src.Next(workload.OpLookupSubjects)
				req := engine.LookupSubjectsRequest{Consistency: full, LookupSubjectsRequest: engine.LookupSubjectsQuery{Resource: q.Resource, Permission: q.Permission, SubjectType: q.SubjectType}}
				a, b := lookupSubjects(t, peb, req), lookupSubjects(t, pg, req)
				if a != b {
					t.Fatalf("%s:\nPebble     %s\nPostgreSQL %s", q, a, b)
				}
			}
			for range tc.exp {
				q := src.Next(workload.OpCheck)
				req := engine.ExpandRequest{Consistency: full, ExpandRequest: engine.ExpandQuery{Resource: q.Resource, Permission: q.Permission}}
				a, _, aerr := peb.Expand(ctx, req)
				b, _, berr := pg.Expand(ctx, req)
				if aerr != nil || berr != nil {
					t.Fatalf("Expand %s#%s: Pebble %v, PostgreSQL %v", q.Resource, q.Permission, aerr, berr)
				}
				if sa, sb := treeString(a), treeString(b); sa != sb {
					t.Fatalf("Expand %s#%s:\nPebble\n%s\nPostgreSQL\n%s", q.Resource, q.Permission, sa, sb)
				}
			}
		})
	}
}

func lookupResources(t *testing.T, e *engine.Engine, req engine.LookupResourcesRequest) string {
	t.Helper()
	seq, _, err := e.LookupResources(context.Background(), req)
	return render(seq, err, func(r engine.ResourceResult) string {
		return fmt.Sprintf("%s:%v%v", r.ResourceID, r.Permissionship, r.MissingContext)
	})
}

func lookupSubjects(t *testing.T, e *engine.Engine, req engine.LookupSubjectsRequest) string {
	t.Helper()
	seq, _, err := e.LookupSubjects(context.Background(), req)
	return render(seq, err, func(r engine.SubjectResult) string {
		return fmt.Sprintf("%s-%v:%v%v", r.SubjectID, r.ExcludedIDs, r.Permissionship, r.MissingContext)
	})
}

// render lists a lookup's results, and the error that ended it, as text.
func render[T any](seq iter.Seq2[T, error], err error, show func(T) string) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for r, err := range seq {
		if err != nil {
			return b.String() + " error: " + err.Error()
		}
		b.WriteString(show(r))
		b.WriteByte(' ')
	}
	return b.String()
}

// treeString renders an expansion with each node's subjects sorted, so
// that trees equal up to the order of stored subjects render alike.
func treeString(t *engine.Tree) string {
	var b strings.Builder
	var walk func(t *engine.Tree, indent string)
	walk = func(t *engine.Tree, indent string) {
		subs := make([]string, len(t.Subjects))
		for i, s := range t.Subjects {
			subs[i] = fmt.Sprintf("%s[%v %v]", s.Subject, s.Caveat, s.Expiration.UnixNano())
		}
		slices.Sort(subs)
		fmt.Fprintf(&b, "%s%v %s#%s truncated=%v %v\n", indent, t.Kind, t.Object, t.Relation, t.Truncated, subs)
		for _, c := range t.Children {
			walk(c, indent+"  ")
		}
	}
	walk(t, "")
	return b.String()
}
