package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/bench/workload"
)

// TestSpiceDBMode runs the workloads through authzed.api.v1 against a real
// Pemba server (pemba.v1 and authzed.api.v1 on one listener): loaded with
// ImportBulkRelationships, every operation, no errors and no unexpected
// answers, then again on the loaded data at fully_consistent.
func TestSpiceDBMode(t *testing.T) {
	ops := map[string]int64{"enterprise": 300, "deep-chain": 100, "wide-group": 200, "wide-arrow": 6}
	for _, name := range workload.Names() {
		t.Run(name, func(t *testing.T) {
			n, ok := ops[name]
			if !ok {
				t.Fatalf("no operation count for workload %q: add one", name)
			}
			addr := serve(t, nil)
			o := Options{
				Workload: name, Scale: workload.Small, Seed: 1, Mode: "grpc", API: "spicedb", Addr: addr,
				Run: RunConfig{Concurrency: 2, Ops: n, Mix: allOps},
			}
			ctx := context.Background()
			rep, err := Execute(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			wl, _ := workload.New(name, workload.Small, 1)
			if rep.Load.Relationships != wl.Size() || rep.Target != "grpc-spicedb/"+addr {
				t.Errorf("load %+v, target %s; want %d relationships", rep.Load, rep.Target, wl.Size())
			}
			checkReport(t, rep, n)
			if rep.Total.Errors != 0 || rep.Total.Unexpected != 0 {
				t.Errorf("%d errors, %d unexpected answers; samples %q", rep.Total.Errors, rep.Total.Unexpected, rep.Samples)
			}
			o.SkipLoad, o.Consistency = true, FullyConsistent
			if rep, err = Execute(ctx, o); err != nil {
				t.Fatal(err)
			}
			if !rep.Load.Reused || rep.Total.Errors != 0 || rep.Total.Unexpected != 0 {
				t.Errorf("second run: load %+v, %d errors, %d unexpected; samples %q", rep.Load, rep.Total.Errors, rep.Total.Unexpected, rep.Samples)
			}
		})
	}
}

// TestTLS runs both APIs over TLS with a key: verified against the
// server's CA the run succeeds; against the system's roots, or over
// plaintext, it fails before anything is loaded.
func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	addr := serveConfig(t, server.Config{
		Keys:        []server.Key{{Name: "bench", Secret: "tls-secret-tls-secret"}},
		GRPCOptions: []grpc.ServerOption{grpc.Creds(credentials.NewServerTLSFromCert(&cert))},
	})
	tests := []struct {
		api, name string
		tls       *tls.Config
		wantErr   bool
	}{
		{"spicedb", "server's CA", &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, false},
		{"pemba", "server's CA", &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, false},
		{"spicedb", "system roots", &tls.Config{MinVersion: tls.VersionTLS12}, true},
		{"spicedb", "plaintext", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.api+", "+tc.name, func(t *testing.T) {
			rep, err := Execute(context.Background(), Options{
				Workload: "deep-chain", Scale: workload.Small, Seed: 1, Mode: "grpc", API: tc.api, Addr: addr,
				Key: "tls-secret-tls-secret", TLS: tc.tls, SkipLoad: tc.api == "pemba", // spicedb's run loads
				Run: RunConfig{Concurrency: 1, Ops: 20},
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (rep.Total.Errors != 0 || rep.Total.Unexpected != 0) {
				t.Errorf("%d errors, %d unexpected answers; samples %q", rep.Total.Errors, rep.Total.Unexpected, rep.Samples)
			}
		})
	}
}

// selfSigned returns a TLS certificate for 127.0.0.1 and a pool holding it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pemba bench test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestSpiceDBKey(t *testing.T) {
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
			Workload: "deep-chain", Scale: workload.Small, Seed: 1, Mode: "grpc", API: "spicedb", Addr: addr, Key: tc.key,
			Run: RunConfig{Concurrency: 1, Ops: 20},
		}
		_, err := Execute(context.Background(), o)
		if (err != nil) != tc.wantErr {
			t.Errorf("key %q: error %v, want error %v", tc.key, err, tc.wantErr)
		}
	}
}

// TestAPIsAgree loads a data set through one API and asks the same
// questions through both: every check, lookup-resources and
// lookup-subjects answer must be the same.
func TestAPIsAgree(t *testing.T) {
	for _, name := range []string{"enterprise", "deep-chain", "wide-group"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			addr := serve(t, nil)
			wl, err := workload.New(name, workload.Small, 3)
			if err != nil {
				t.Fatal(err)
			}
			sp, err := NewSpiceDB(GRPCOptions{Addr: addr, Consistency: FullyConsistent})
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			pb, err := NewGRPC(GRPCOptions{Addr: addr, Consistency: FullyConsistent})
			if err != nil {
				t.Fatal(err)
			}
			defer pb.Close()
			if _, err := Load(ctx, sp, wl, nil); err != nil {
				t.Fatal(err)
			}
			src := wl.Source(5)
			allowed, results := 0, 0
			for _, tc := range []struct {
				op workload.Op
				n  int
			}{{workload.OpCheck, 300}, {workload.OpLookupResources, 20}, {workload.OpLookupSubjects, 20}} {
				for range tc.n {
					q := src.Next(tc.op)
					a, aerr := pb.Do(ctx, &q)
					b, berr := sp.Do(ctx, &q)
					if aerr != nil || berr != nil || a != b {
						t.Fatalf("%s: pemba.v1 %+v (%v), authzed.api.v1 %+v (%v)", q, a, aerr, b, berr)
					}
					if a.Allowed {
						allowed++
					}
					results += a.Results
				}
			}
			// Answers of both kinds, so that agreement means something.
			if allowed == 0 || allowed == 300 || results == 0 {
				t.Errorf("%d of 300 checks allowed, %d lookup results: the questions do not tell the APIs apart", allowed, results)
			}
		})
	}
}

// BenchmarkCheckAPIs sends the same enterprise checks (small data set,
// minimize_latency, so mostly answered from the result cache) one at a
// time through each API to one in-process server. Client and server share
// the process: allocs/op and cpu-ns/op count both sides, and the
// difference between the two is what authzed.api.v1 costs over pemba.v1
// (the compatibility layer, and authzed-go's client against the generated
// pemba.v1 stubs).
func BenchmarkCheckAPIs(b *testing.B) {
	ctx := context.Background()
	addr := serve(b, nil)
	wl, err := workload.New("enterprise", workload.Small, 1)
	if err != nil {
		b.Fatal(err)
	}
	targets := map[string]func(GRPCOptions) (Target, error){
		"pemba":   func(o GRPCOptions) (Target, error) { return NewGRPC(o) },
		"spicedb": func(o GRPCOptions) (Target, error) { return NewSpiceDB(o) },
	}
	loader, err := targets["pemba"](GRPCOptions{Addr: addr})
	if err != nil {
		b.Fatal(err)
	}
	defer loader.Close()
	if _, err := Load(ctx, loader, wl, nil); err != nil {
		b.Fatal(err)
	}
	src := wl.Source(1)
	reqs := make([]workload.Request, 256)
	for i := range reqs {
		reqs[i] = src.Next(workload.OpCheck)
	}
	// A target warmed up (connections, the server's cache) on every request.
	open := func(b *testing.B, api string, conns int) Target {
		tg, err := targets[api](GRPCOptions{Addr: addr, Conns: conns})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tg.Close() })
		for i := range reqs {
			if _, err := tg.Do(ctx, &reqs[i]); err != nil {
				b.Fatal(err)
			}
		}
		return tg
	}
	cpu := func(b *testing.B) time.Duration {
		u, err := readUsage()
		if err != nil {
			b.Fatal(err)
		}
		return u.user + u.sys
	}
	for _, api := range []string{"pemba", "spicedb"} {
		b.Run(api, func(b *testing.B) {
			tg := open(b, api, 1)
			b.ReportAllocs()
			cpu0 := cpu(b)
			i := 0
			for b.Loop() {
				if _, err := tg.Do(ctx, &reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(cpu(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
		// The shape of a load run: 64 callers over the default 4
		// connections, so calls share HTTP/2 frames and wake-ups.
		b.Run(api+"/parallel", func(b *testing.B) {
			tg := open(b, api, DefaultGRPCConns)
			var next atomic.Uint32
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			cpu0 := cpu(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1))
				for pb.Next() {
					if _, err := tg.Do(ctx, &reqs[i%len(reqs)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpu(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
