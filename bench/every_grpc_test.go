package bench

import (
	"context"
	"testing"

	"github.com/pemba-authz/pemba/bench/workload"
)

// TestEveryWorkloadGRPC runs every workload at small scale against a real
// server on loopback: the report must be complete and consistent, with no
// errors and no unexpected answers.
func TestEveryWorkloadGRPC(t *testing.T) {
	ops := map[string]int64{"enterprise": 200, "deep-chain": 100, "wide-group": 200, "wide-arrow": 6}
	for _, name := range workload.Names() {
		t.Run(name, func(t *testing.T) {
			n, ok := ops[name]
			if !ok {
				t.Fatalf("no operation count for workload %q: add one", name)
			}
			rep, err := Execute(context.Background(), Options{
				Workload: name, Scale: workload.Small, Seed: 1, Mode: "grpc", Addr: serve(t, nil),
				Run: RunConfig{Concurrency: 2, Ops: n, Mix: allOps},
			})
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, n)
			if rep.Total.Errors != 0 || rep.Total.Unexpected != 0 {
				t.Errorf("%d errors, %d unexpected answers; samples %q", rep.Total.Errors, rep.Total.Unexpected, rep.Samples)
			}
		})
	}
}
