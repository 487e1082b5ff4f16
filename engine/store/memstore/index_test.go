package memstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

func testKey(i int) tuple.Key {
	return tuple.Key{
		Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i % 37)},
		Relation: []string{"editor", "viewer"}[i%2],
		Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprint(i)},
	}
}

// TestIndexOrder inserts keys in random order, enough to split chunks many
// times, and checks order, chunk bounds and search against a sorted slice.
func TestIndexOrder(t *testing.T) {
	for _, n := range []int{0, 1, 2*chunkSize - 1, 2 * chunkSize, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			for _, order := range []func(tuple.Key) fields{forwardFields, reverseFields} {
				// Insert in batches of random size, so that both insert
				// and the merge in insertAll run.
				ix := index{order: order}
				var want []fields
				perm := rng.Perm(n)
				for len(perm) > 0 {
					size := min(len(perm), 1+rng.IntN(300))
					var batch []*record
					for _, i := range perm[:size] {
						batch = append(batch, &record{key: testKey(i)})
						want = append(want, order(testKey(i)))
					}
					ix.insertAll(batch)
					perm = perm[size:]
				}
				slices.SortFunc(want, compareFields)
				var got []fields
				for _, ch := range ix.chunks {
					if len(ch) == 0 || len(ch) >= 2*chunkSize {
						t.Fatalf("chunk of %d records", len(ch))
					}
					for _, r := range ch {
						got = append(got, order(r.key))
					}
				}
				if !slices.Equal(got, want) || ix.len() != n {
					t.Fatalf("index holds %d keys out of order (want %d)", ix.len(), n)
				}
				// search agrees with a binary search over the sorted slice,
				// for present keys and for keys between them.
				for i := 0; i < n; i += 1 + n/50 {
					for _, probe := range []fields{want[i], between(want[i])} {
						for _, strict := range []bool{false, true} {
							wantPos, found := slices.BinarySearchFunc(want, probe, compareFields)
							if found && strict {
								wantPos++
							}
							p := ix.search(probe, strict)
							gotPos := 0
							for c := range p.c {
								gotPos += len(ix.chunks[c])
							}
							gotPos += p.i
							if gotPos != wantPos {
								t.Fatalf("search(%v, strict %v) = %d, want %d", probe, strict, gotPos, wantPos)
							}
						}
					}
				}
				// rebuild keeps exactly the chosen records, in order.
				keep := func(r *record) bool { return len(r.key.Subject.ID)%2 == 0 }
				wantKept := 0
				for i := range n {
					if keep(&record{key: testKey(i)}) {
						wantKept++
					}
				}
				ix.rebuild(keep)
				var kept []fields
				for _, ch := range ix.chunks {
					for _, r := range ch {
						kept = append(kept, order(r.key))
					}
				}
				if !slices.IsSortedFunc(kept, compareFields) || len(kept) != wantKept {
					t.Fatalf("rebuilt index holds %d keys (want %d) or is out of order", len(kept), wantKept)
				}
			}
		})
	}
}

// between returns fields that sort just after f and before any longer
// successor: f with "!" appended to its last field.
func between(f fields) fields {
	f[5] += "!"
	return f
}
