package server

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestMaxConnections: with Connections.Max 1, the fixture's connection is
// served and a second client's is closed on accept (UNAVAILABLE, counted);
// once the first closes, a new client is served.
func TestMaxConnections(t *testing.T) {
	f := newFixture(t, Config{Connections: Connections{Max: 1}})
	ctx := context.Background()
	if _, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	dial := func() *grpc.ClientConn {
		t.Helper()
		c, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	second := dial()
	if _, err := pb.NewSchemaServiceClient(second).ReadSchema(ctx, &pb.ReadSchemaRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("a second connection: %v, want UNAVAILABLE", err)
	}
	if n := testutil.ToFloat64(f.srv.connm.refused); n < 1 {
		t.Errorf("refused connections %v, want at least 1", n)
	}
	if n := testutil.ToFloat64(f.srv.connm.open); n != 1 {
		t.Errorf("open connections %v, want 1", n)
	}
	// Closed first: a refused client keeps reconnecting, and would take
	// the slot the first connection gives back.
	second.Close()
	f.conn.Close()
	third := dial()
	defer third.Close()
	// The first connection's slot is given back when the server sees it
	// close; the client's wait-for-ready retries until then.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := pb.NewSchemaServiceClient(third).ReadSchema(wctx, &pb.ReadSchemaRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Errorf("after the first connection closed: %v", err)
	}
}
