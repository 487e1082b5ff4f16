package server

import (
	"context"
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// smallWindow is a client that takes no more than 64 KiB of a stream
// before its application reads (gRPC's BDP estimation, which grows the
// window to 16 MiB, is off with a fixed window): the server's Sends block
// soon after the client stops reading.
var smallWindow = []grpc.DialOption{grpc.WithInitialWindowSize(64 << 10), grpc.WithInitialConnWindowSize(64 << 10)}

// owners yields doc:ID#owner@user:uNNNNNNN for n users: edit = owner is a
// lookup the engine streams.
func owners(id string, n int) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for i := range n {
			r := tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "doc", ID: id}, Relation: "owner",
				Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%07d", i)},
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

// fakeTimer is a stall timer that fires when the test sends on fire.
type fakeTimer struct{ fire chan time.Time }

func (f fakeTimer) C() <-chan time.Time { return f.fire }
func (fakeTimer) Reset(time.Duration)   {}
func (fakeTimer) Stop()                 {}

// TestStreamStall: a lookup whose client stops reading is cut off when
// its stall timer fires, with DEADLINE_EXCEEDED (STREAM_STALLED) after
// the results the client had taken, counted; its stream slot is free
// again at once. The timer is the test's: it fires only while a Send is
// waiting, so no sleep decides the outcome.
func TestStreamStall(t *testing.T) {
	f := newFixture(t, Config{Overload: Overload{MaxStreams: 1, StreamStallTimeout: time.Hour}}, smallWindow...)
	fire := make(chan time.Time)
	f.srv.guards.newTimer = func(time.Duration) stallTimer { return fakeTimer{fire} }
	f.writeSchema()
	const n = 20_000 // about 3 MB of responses: far more than the windows
	if _, _, err := f.eng.Import(context.Background(), "test", owners("big", n)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := &pb.LookupSubjectsRequest{Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "big"}, Permission: "edit", SubjectObjectType: "user"}
	stream, err := f.perms.LookupSubjects(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the handler runs
		t.Fatal(err)
	}
	select {
	case fire <- time.Now():
	case <-ctx.Done():
		t.Fatal("the lookup sent no message after its first")
	}
	got := 1
	for {
		_, err := stream.Recv()
		if err != nil {
			wantCode(t, err, codes.DeadlineExceeded, ReasonStreamStalled)
			break
		}
		got++
	}
	if got >= n {
		t.Errorf("received all %d results of a stalled stream", got)
	}
	if v := testutil.ToFloat64(f.srv.guards.stalled.WithLabelValues("PermissionsService/LookupSubjects")); v != 1 {
		t.Errorf("streams_stalled_total = %v, want 1", v)
	}
	// The slot is free: a lookup that reads runs to its end.
	req.OptionalLimit = 3
	all, err := collect(t, lookupSubjects(t, f, ctx, req).Recv)
	if err != nil || len(all) != 3 {
		t.Errorf("a lookup after the stall: %d results, %v", len(all), err)
	}
}

// lookupSubjects opens a LookupSubjects stream.
func lookupSubjects(t *testing.T, f *fixture, ctx context.Context, req *pb.LookupSubjectsRequest) pb.PermissionsService_LookupSubjectsClient {
	t.Helper()
	s, err := f.perms.LookupSubjects(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMaxStreamsPerKey: a key holding its one stream is refused a second
// (RESOURCE_EXHAUSTED, KEY_LIMIT_EXCEEDED, counted under its name) while
// another key's stream runs; once the first ends, the key streams again.
// The limit of one is the server's (-max-streams-per-key), or the key's
// own (streams in the keys file) on a server without one.
func TestMaxStreamsPerKey(t *testing.T) {
	for _, c := range []struct {
		name   string
		server int
		key    KeyLimits
	}{
		{"server's", 1, KeyLimits{}},
		{"key's own", 0, KeyLimits{Streams: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			maxStreamsPerKey(t, Config{
				Keys: []Key{
					{Name: "a", Secret: secretA, Scopes: ScopeAdmin, Limits: c.key},
					{Name: "b", Secret: secretB, Scopes: ScopeAdmin},
				},
				Overload: Overload{MaxStreamsPerKey: c.server},
			})
		})
	}
}

func maxStreamsPerKey(t *testing.T, cfg Config) {
	f := newFixture(t, cfg, smallWindow...)
	idle := make(chan string, 10)
	f.srv.guards.perKey.idle = func(caller string) { idle <- caller }
	if _, err := f.schema.WriteSchema(bearer(secretA), &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	if _, _, err := f.eng.Import(context.Background(), "test", owners("big", n)); err != nil {
		t.Fatal(err)
	}
	req := &pb.LookupSubjectsRequest{Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "big"}, Permission: "edit", SubjectObjectType: "user"}
	actx, cancel := context.WithCancel(bearer(secretA))
	held := lookupSubjects(t, f, actx, req)
	if _, err := held.Recv(); err != nil { // running, and not read further
		t.Fatal(err)
	}
	small := &pb.LookupSubjectsRequest{Resource: req.Resource, Permission: "edit", SubjectObjectType: "user", OptionalLimit: 2}
	_, err := collect(t, lookupSubjects(t, f, bearer(secretA), small).Recv)
	wantCode(t, err, codes.ResourceExhausted, ReasonKeyLimit)
	if got, err := collect(t, lookupSubjects(t, f, bearer(secretB), small).Recv); err != nil || len(got) != 2 {
		t.Errorf("key b beside a's stream: %d results, %v", len(got), err)
	}
	if v := testutil.ToFloat64(f.srv.guards.refused.WithLabelValues("a")); v != 1 {
		t.Errorf("key_streams_refused_total{caller=a} = %v, want 1", v)
	}
	cancel()              // the held stream ends; the server gives its slot back
	for c := range idle { // "b" came first, when b's stream ended
		if c == "a" {
			break
		}
	}
	if got, err := collect(t, lookupSubjects(t, f, bearer(secretA), small).Recv); err != nil || len(got) != 2 {
		t.Errorf("key a after its stream ended: %d results, %v", len(got), err)
	}
}
