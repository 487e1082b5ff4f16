package server_test

import (
	"context"
	"log"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// Serving an engine: open a store and an engine, assemble the server,
// serve until stopped.
func ExampleNew() {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	eng, err := engine.Open(ctx, st, engine.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	reg := prometheus.NewRegistry() // expose it with promhttp.HandlerFor
	srv, err := server.New(eng, server.Config{
		Keys:              []server.Key{{Name: "crm-service", Secret: "a-long-random-secret"}},
		HealthWithoutAuth: true,
		Registerer:        reg,
	})
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		// Serve returns nil after GracefulStop or Stop.
		if err := srv.Serve(lis); err != nil {
			log.Print(err)
		}
	}()

	// ... and on shutdown (say, when signal.NotifyContext's context is
	// done): refuse new calls, finish those in flight.
	srv.GracefulStop()
}
