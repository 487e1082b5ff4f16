package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestAccessLog: with AccessLog, every call is one info line naming the
// method, the authenticated caller (none when refused), the code, the
// duration and the request id; without it, no line at info level.
func TestAccessLog(t *testing.T) {
	for _, on := range []bool{true, false} {
		var buf syncBuffer
		f := newFixture(t, Config{
			Keys:      []Key{{Name: "svc-a", Secret: secretA}},
			Logger:    slog.New(slog.NewJSONHandler(&buf, nil)), // info and up
			AccessLog: on,
		})
		ctx := metadata.AppendToOutgoingContext(bearer(secretA), "x-request-id", "req-42")
		if _, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
			t.Fatal(err)
		}
		s, err := f.perms.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := collect(t, s.Recv); err != nil {
			t.Fatal(err)
		}
		if _, err := f.schema.ReadSchema(context.Background(), &pb.ReadSchemaRequest{Consistency: full()}); err == nil {
			t.Fatal("ReadSchema without a key succeeded")
		}
		f.conn.Close() // the server logs a stream when it ends; make sure all have
		f.srv.GracefulStop()

		type line struct {
			Level, Msg, Method, Caller, Code, RequestID string
			Duration                                    float64
		}
		var calls []line
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var got struct {
				Level     string  `json:"level"`
				Msg       string  `json:"msg"`
				Method    string  `json:"method"`
				Caller    string  `json:"caller"`
				Code      string  `json:"code"`
				RequestID string  `json:"request_id"`
				Duration  float64 `json:"duration"`
			}
			if l == "" {
				continue
			}
			if err := json.Unmarshal([]byte(l), &got); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			if got.Msg == "call" {
				calls = append(calls, line{got.Level, got.Msg, got.Method, got.Caller, got.Code, got.RequestID, got.Duration})
			}
		}
		if !on {
			if len(calls) != 0 {
				t.Errorf("without AccessLog: %d call lines at info level: %+v", len(calls), calls)
			}
			continue
		}
		want := []struct{ method, caller, code, requestID string }{
			{"/pemba.v1.SchemaService/WriteSchema", "svc-a", "OK", "req-42"},
			{"/pemba.v1.PermissionsService/ReadRelationships", "svc-a", "OK", "req-42"},
			{"/pemba.v1.SchemaService/ReadSchema", "", "Unauthenticated", ""},
		}
		if len(calls) != len(want) {
			t.Fatalf("call lines: %+v; want %d", calls, len(want))
		}
		for i, w := range want {
			c := calls[i]
			if c.Level != "INFO" || c.Method != w.method || c.Caller != w.caller || c.Code != w.code || c.RequestID != w.requestID || c.Duration <= 0 {
				t.Errorf("line %d: %+v; want INFO %s caller %q code %s request id %q and a duration", i, c, w.method, w.caller, w.code, w.requestID)
			}
		}
	}
}
