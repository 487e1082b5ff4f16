package workload

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestEnterpriseFactsMatchEngine loads small enterprise data sets into an
// engine and asks it, for every link, every grantee and some customers of
// the first enterprises, the questions whose answers the generator derives
// (link#active, link#usable_by, link#use_file_transfer under and over the
// size cap, crm_customer#view for department managers): each answer must
// equal the generator's. Several seeds, because a small data set has only a handful
// of links, and the test requires every stage of a link's life to occur.
func TestEnterpriseFactsMatchEngine(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	stages := map[string]int{}
	for seed := uint64(1); seed <= 6; seed++ {
		w := newEnterprise(base{scale: Small, seed: seed})
		st := memstore.New(memstore.Options{Now: func() time.Time { return now }})
		defer st.Close()
		eng, err := engine.Open(ctx, st, engine.Options{Now: func() time.Time { return now }, CacheBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		if _, _, err := eng.WriteSchema(ctx, "test", w.Schema()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := eng.Import(ctx, "test", w.Relationships()); err != nil {
			t.Fatal(err)
		}
		check := func(typ, id, perm string, k, i uint64, c map[string]any, want bool) {
			t.Helper()
			resp, err := eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(),
				CheckRequest: engine.CheckQuery{Resource: tuple.ObjectRef{Type: typ, ID: id}, Permission: perm, Subject: w.empRef(k, i)}, Context: c})
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Permissionship == eval.HasPermission; got != want {
				t.Errorf("seed %d: %s:%s#%s@%s %v = %v, generator says %v", seed, typ, id, perm, w.emp(k, i), c, got, want)
			}
		}
		for l := range uint64(len(w.links)) {
			from, to, platform, exp := w.linkApprovals(l)
			stages[fmt.Sprintf("from=%v to=%v platform=%v expired=%v", from, to, platform, !exp.IsZero() && exp.Before(now))]++
			lp := w.links[l]
			check("link", w.link(l), "active", lp.ends[0], 0, nil, w.linkApproved(l))
			for s := range 2 {
				for j := range w.grants(l, s) {
					i := w.grantee(l, s, j)
					check("link", w.link(l), "usable_by", lp.ends[s], i, nil, w.usable(l, s, i))
					for _, size := range []int64{1 << 20, 50 << 20} {
						check("link", w.link(l), "use_file_transfer", lp.ends[s], i, map[string]any{"size": size}, w.canTransfer(l, s, i, size))
					}
				}
			}
		}
		for k := range min(uint64(len(w.ents)), 3) {
			for c := range min(w.ents[k].customers, 30) {
				for j := range w.ents[k].depts {
					if m, ok := w.deptManager(k, j); ok {
						check("crm_customer", w.cust(k, c), "view", k, m, nil, w.canViewCustomer(k, c, m))
					}
				}
			}
		}
	}
	for _, want := range []string{
		"from=false to=false platform=false expired=false", // applied
		"from=true to=false platform=false expired=false",  // approved by the applicant
		"from=true to=true platform=false expired=false",   // awaiting the platform
		"from=true to=true platform=true expired=false",    // active
		"from=true to=true platform=true expired=true",     // ended with its project
	} {
		if stages[want] == 0 {
			t.Errorf("no link at stage %q in %v", want, stages)
		}
	}
	if stages["from=false to=true platform=true expired=false"]+stages["from=true to=false platform=true expired=false"] == 0 {
		t.Errorf("no link revoked by one side in %v", stages)
	}
}
