package bench

import (
	"context"
	"errors"
	"testing"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
)

// TestExecutePostgres: a run on PostgreSQL migrates and loads an empty
// database, refuses a used one unless told to reuse it, and reuses it
// with SkipLoad.
func TestExecutePostgres(t *testing.T) {
	uri, _ := pgtest.NewDatabase(t)
	o := Options{
		Workload: "enterprise", Scale: workload.Small, Seed: 1, Store: "postgres", DatastoreURI: uri,
		Run: RunConfig{Concurrency: 2, Ops: 200, Mix: allOps},
	}
	ctx := context.Background()
	first, err := Execute(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if first.Load.Reused || first.Load.Relationships == 0 || first.Load.PerSecond <= 0 || first.Target != "inprocess/postgres" {
		t.Errorf("first run: load %+v, target %s", first.Load, first.Target)
	}
	checkReport(t, first, 200)
	for _, o := range first.Ops {
		if o.Errors != 0 || o.Unexpected != 0 {
			t.Errorf("%s: %d errors, %d unexpected answers", o.Op, o.Errors, o.Unexpected)
		}
	}
	if _, err := Execute(ctx, o); !errors.Is(err, ErrDataDir) {
		t.Errorf("a second load into the used database: error %v, want ErrDataDir", err)
	}
	o.SkipLoad = true
	second, err := Execute(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Load.Reused {
		t.Errorf("second run with SkipLoad: load %+v, want reused", second.Load)
	}
	checkReport(t, second, 200)

	empty, _ := pgtest.NewDatabase(t)
	o.DatastoreURI = empty
	if _, err := Execute(ctx, o); !errors.Is(err, ErrDataDir) {
		t.Errorf("SkipLoad on an empty database: error %v, want ErrDataDir", err)
	}
	o.DatastoreURI = ""
	if _, err := Execute(ctx, o); !errors.Is(err, ErrUsage) {
		t.Errorf("no URI: error %v, want ErrUsage", err)
	}
}
