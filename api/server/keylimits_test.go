package server

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// TestKeyRateLimit: a key's token bucket on an injected clock.
func TestKeyRateLimit(t *testing.T) {
	clk := &testClock{t: tokenEpoch}
	f := newFixture(t, Config{Clock: clk.Now, Keys: []Key{
		{Name: "admin", Secret: secretA},
		{Name: "slow", Secret: secretB, Scopes: ScopeReadSchema, Limits: KeyLimits{RequestsPerSecond: 2, Burst: 3}},
	}})
	if _, err := f.schema.WriteSchema(bearer(secretA), &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	read := func() error {
		_, err := f.schema.ReadSchema(bearer(secretB), &pb.ReadSchemaRequest{Consistency: full()})
		return err
	}
	steps := []struct {
		advance time.Duration
		ok      bool
		retry   string // in the refusal's message
	}{
		{0, true, ""}, {0, true, ""}, {0, true, ""}, // the burst
		{0, false, "retry after 500ms"},
		{250 * time.Millisecond, false, "retry after 250ms"},
		{250 * time.Millisecond, true, ""},
		{0, false, "retry after 500ms"},
		{10 * time.Second, true, ""}, {0, true, ""}, {0, true, ""}, // refilled to the burst, no more
		{0, false, ""},
	}
	for i, s := range steps {
		clk.Add(s.advance)
		err := read()
		if s.ok {
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			continue
		}
		if status.Code(err) != codes.ResourceExhausted || reasonOf(err) != ReasonKeyLimit || !strings.Contains(err.Error(), `caller "slow"`) || !strings.Contains(err.Error(), s.retry) {
			t.Fatalf("step %d: err = %v (reason %s), want RESOURCE_EXHAUSTED KEY_LIMIT_EXCEEDED saying %q", i, err, reasonOf(err), s.retry)
		}
		if s.retry != "" {
			// The same delay as data.
			want, _ := time.ParseDuration(strings.TrimPrefix(s.retry, "retry after "))
			if got := retryDelayOf(err); got != want {
				t.Errorf("step %d: RetryInfo delay %v, want %v", i, got, want)
			}
		}
	}
	// Other keys are not limited by it.
	for range 5 {
		if _, err := f.schema.ReadSchema(bearer(secretA), &pb.ReadSchemaRequest{Consistency: full()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeyConcurrencyLimit: a key with one concurrent call holds its slot
// while a Watch stream is open; its other calls are refused meanwhile.
func TestKeyConcurrencyLimit(t *testing.T) {
	f := newFixture(t, Config{Keys: []Key{
		{Name: "admin", Secret: secretA},
		{Name: "one", Secret: secretB, Scopes: ScopeWatch | ScopeReadSchema, Limits: KeyLimits{Concurrent: 1}},
	}})
	written, err := f.schema.WriteSchema(bearer(secretA), &pb.WriteSchemaRequest{Schema: testSchema})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bearer(secretB))
	defer cancel()
	// From the schema's revision: the write below is streamed whenever
	// the server starts the watch.
	w, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalStartCursor: written.GetWrittenAt()})
	if err != nil {
		t.Fatal(err)
	}
	// The watch is running once it streams a write.
	if _, err := f.perms.WriteRelationships(bearer(secretA), &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{{
		Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: &pb.Relationship{Resource: obj("doc", "1"), Relation: "viewer", Subject: sub("user", "a", "")}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	_, err = f.schema.ReadSchema(bearer(secretB), &pb.ReadSchemaRequest{Consistency: full()})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "1 concurrent requests") {
		t.Fatalf("a second call while the watch runs: %v", err)
	}
}

// TestKeyLimiterRelease: slots come back when calls end.
func TestKeyLimiterRelease(t *testing.T) {
	k := newKeyLimiter(KeyLimits{Concurrent: 2}, nil)
	h1, err1 := k.acquire("c")
	h2, err2 := k.acquire("c")
	_, err3 := k.acquire("c")
	if !h1 || !h2 || err1 != nil || err2 != nil || !errors.Is(err3, ErrKeyLimit) {
		t.Fatalf("acquire: %v %v %v %v %v", h1, h2, err1, err2, err3)
	}
	k.release()
	if _, err := k.acquire("c"); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if newKeyLimiter(KeyLimits{MaxLookupLimit: 5}, nil) != nil {
		t.Error("a limiter for limits without rate or concurrency")
	}
}

// TestKeyMaxLookupLimit: a key's lookups must give a limit no larger
// than its max_lookup_limit.
func TestKeyMaxLookupLimit(t *testing.T) {
	f := newFixture(t, Config{Keys: []Key{
		{Name: "admin", Secret: secretA},
		{Name: "small", Secret: secretB, Scopes: ScopeCheck, Limits: KeyLimits{MaxLookupLimit: 10}},
	}})
	if _, err := f.schema.WriteSchema(bearer(secretA), &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	drainErr := func(recv func() error) error {
		for {
			if err := recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	for _, tt := range []struct {
		limit uint32
		ok    bool
	}{{0, false}, {1, true}, {10, true}, {11, false}} {
		s, err := f.perms.LookupResources(bearer(secretB), &pb.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "a", ""), OptionalLimit: tt.limit})
		if err == nil {
			err = drainErr(func() error { _, err := s.Recv(); return err })
		}
		if tt.ok != (err == nil) || (!tt.ok && (status.Code(err) != codes.ResourceExhausted || reasonOf(err) != ReasonLimitExceeded || !strings.Contains(err.Error(), "optional_limit"))) {
			t.Errorf("LookupResources limit %d: %v", tt.limit, err)
		}
		ls, err := f.perms.LookupSubjects(bearer(secretB), &pb.LookupSubjectsRequest{Consistency: full(), Resource: obj("doc", "1"), Permission: "view", SubjectObjectType: "user", OptionalLimit: tt.limit})
		if err == nil {
			err = drainErr(func() error { _, err := ls.Recv(); return err })
		}
		if tt.ok != (err == nil) {
			t.Errorf("LookupSubjects limit %d: %v", tt.limit, err)
		}
	}
	// The admin key has no such limit.
	s, err := f.perms.LookupResources(bearer(secretA), &pb.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "a", "")})
	if err == nil {
		err = drainErr(func() error { _, err := s.Recv(); return err })
	}
	if err != nil {
		t.Errorf("admin lookup without a limit: %v", err)
	}
}

// TestSetKeys: reloading keys takes effect for the next call; invalid
// keys and turning authentication off are refused, keeping the keys in
// force; an unchanged key keeps its rate state.
func TestSetKeys(t *testing.T) {
	clk := &testClock{t: tokenEpoch}
	limited := Key{Name: "b", Secret: secretB, Scopes: ScopeReadSchema, Limits: KeyLimits{RequestsPerSecond: 1}}
	f := newFixture(t, Config{Clock: clk.Now, Keys: []Key{{Name: "a", Secret: secretA}, limited}})
	if _, err := f.schema.WriteSchema(bearer(secretA), &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	read := func(secret string) error {
		_, err := f.schema.ReadSchema(bearer(secret), &pb.ReadSchemaRequest{Consistency: full()})
		return err
	}
	if err := read(secretB); err != nil {
		t.Fatal(err)
	}
	const secretC = "secret-of-service-c-0123456789"
	if err := f.srv.SetKeys([]Key{limited, {Name: "c", Secret: secretC}}); err != nil {
		t.Fatal(err)
	}
	if err := read(secretA); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a removed key: %v", err)
	}
	if err := read(secretC); err != nil {
		t.Errorf("an added key: %v", err)
	}
	if err := read(secretB); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("an unchanged key's bucket was refilled by the reload: %v", err)
	}
	for _, bad := range [][]Key{nil, {{Name: "x", Secret: "short"}}, {{Name: "x", Secret: secretC, Tenant: "nope"}}} {
		if err := f.srv.SetKeys(bad); err == nil {
			t.Errorf("SetKeys(%v) accepted", bad)
		}
	}
	if err := read(secretC); err != nil {
		t.Errorf("after refused reloads: %v", err)
	}
	// Changed limits start a new bucket.
	limited.Limits.RequestsPerSecond = 5
	if err := f.srv.SetKeys([]Key{limited}); err != nil {
		t.Fatal(err)
	}
	if err := read(secretB); err != nil {
		t.Errorf("a key with new limits: %v", err)
	}
}

// retryDelayOf is the google.rpc.RetryInfo delay of err's status (0: none).
func retryDelayOf(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}
