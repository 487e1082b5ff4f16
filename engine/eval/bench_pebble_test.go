package eval

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// BenchmarkCheckEnterprisePebble1M loads about a million relationships of
// the enterprise dataset into a Pebble store on disk through its bulk
// loader, then measures Check. Loading takes a while; run it on its own:
//
//	go test -run XXX -bench CheckEnterprisePebble1M -benchtime 2000x ./engine/eval
func BenchmarkCheckEnterprisePebble1M(b *testing.B) {
	const customers = 190000 // ~5 relationships each, plus the organisation
	ctx := context.Background()
	rels, emps := enterpriseData(rand.New(rand.NewPCG(1, 2)), customers)
	st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{NoSync: true, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	rev, n, err := st.Import(ctx, store.WriteMeta{Caller: "bench"}, func(yield func(tuple.Relationship, error) bool) {
		for _, r := range rels {
			if !yield(r, nil) {
				return
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	rd, err := st.Snapshot(ctx, rev)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("imported %d relationships", n)
	src := mustReadFile(b, "testdata/enterprise.zed")
	runEnterpriseChecks(b, mustCompile(b, src), Params{Reader: rd, Now: testNow}, emps, customers)
}

// BenchmarkCheckDeepFolderPebble is BenchmarkCheckDeepFolder over
// pebblestore (point reads by key, its block cache warm).
func BenchmarkCheckDeepFolderPebble(b *testing.B) {
	benchDeepFolder(b, func(rels []tuple.Relationship) store.Reader {
		st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{NoSync: true, GCInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		rev, _, err := st.Import(context.Background(), store.WriteMeta{Caller: "bench"}, func(yield func(tuple.Relationship, error) bool) {
			for _, r := range rels {
				if !yield(r, nil) {
					return
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		rd, err := st.Snapshot(context.Background(), rev)
		if err != nil {
			b.Fatal(err)
		}
		return rd
	})
}
