package bench

import (
	"context"
	"net"
	"testing"

	"github.com/pemba-authz/pemba/api/authzed"
	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// serve starts a gRPC server over a fresh in-memory engine, serving
// pemba.v1 and authzed.api.v1 as pemba serve does, and returns its address.
func serve(t testing.TB, keys []server.Key) string {
	t.Helper()
	return serveConfig(t, server.Config{Keys: keys})
}

// serveConfig is serve with a whole server configuration.
func serveConfig(t testing.TB, cfg server.Config) string {
	t.Helper()
	st := memstore.New(memstore.Options{})
	e, err := engine.Open(context.Background(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	authzed.Register(srv, e)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.GracefulStop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		e.Close()
		st.Close()
	})
	return lis.Addr().String()
}

func TestGRPCMode(t *testing.T) {
	addr := serve(t, nil)
	o := Options{
		Workload: "enterprise", Scale: workload.Small, Seed: 1, Mode: "grpc", Addr: addr,
		Run: RunConfig{Concurrency: 2, Ops: 300, Mix: allOps},
	}
	ctx := context.Background()
	rep, err := Execute(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	wl, _ := workload.New("enterprise", workload.Small, 1)
	if rep.Load.Relationships != wl.Size() || rep.Target != "grpc/"+addr {
		t.Errorf("load %+v, target %s; want %d relationships", rep.Load, rep.Target, wl.Size())
	}
	checkReport(t, rep, 300)
	if rep.Total.Errors != 0 || rep.Total.Unexpected != 0 {
		t.Errorf("%d errors, %d unexpected answers; samples %q", rep.Total.Errors, rep.Total.Unexpected, rep.Samples)
	}
	// The data is on the server now: a second run can skip the load.
	o.SkipLoad = true
	o.Consistency = FullyConsistent
	rep, err = Execute(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Load.Reused || rep.Total.Errors != 0 || rep.Total.Unexpected != 0 {
		t.Errorf("second run: load %+v, %d errors, %d unexpected; samples %q", rep.Load, rep.Total.Errors, rep.Total.Unexpected, rep.Samples)
	}
}

func TestGRPCKey(t *testing.T) {
	addr := serve(t, []server.Key{{Name: "bench", Secret: "s3cret-s3cret-s3cret"}})
	tests := []struct {
		key     string
		wantErr bool
	}{
		{"s3cret-s3cret-s3cret", false},
		{"wrong", true},
		{"", true},
	}
	for _, tc := range tests {
		o := Options{
			Workload: "deep-chain", Scale: workload.Small, Seed: 1, Mode: "grpc", Addr: addr, Key: tc.key,
			Run: RunConfig{Concurrency: 1, Ops: 20},
		}
		_, err := Execute(context.Background(), o)
		if (err != nil) != tc.wantErr {
			t.Errorf("key %q: error %v, want error %v", tc.key, err, tc.wantErr)
		}
	}
}
