package workload_test

import (
	"fmt"

	"github.com/pemba-authz/pemba/bench/workload"
)

// A workload is a schema, a stream of relationships and per-worker request
// sources, all derived from the seed.
func ExampleNew() {
	w, err := workload.New("deep-chain", workload.Small, 1)
	if err != nil {
		panic(err)
	}
	fmt.Println(w.Name(), w.Scale(), w.Size())
	n := 0
	for r, err := range w.Relationships() {
		if err != nil {
			panic(err)
		}
		fmt.Println(r)
		if n++; n == 3 {
			break
		}
	}
	src := w.Source(0)
	fmt.Println(src.Next(workload.OpCheck))
	// Output:
	// deep-chain small 9996
	// group:c0-g0#member@group:c0-g1#member
	// group:c0-g0#member@user:udo1vutlmoau
	// group:c0-g1#member@group:c0-g2#member
	// check document:cz-d4#view@user:ufdfmxodar7m (expect allowed)
}
