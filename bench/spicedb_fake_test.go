package bench

import (
	"context"
	"errors"
	"io"
	"iter"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// fakeSpiceDB is an authzed.api.v1 server that records what the SpiceDB
// target sends and answers from a script: it tests the driver's side of
// the wire (batching, fallback, paging, consistency, bearer token) without
// an engine. The end-to-end tests run the driver against Pemba's server.
type fakeSpiceDB struct {
	v1.UnimplementedPermissionsServiceServer
	v1.UnimplementedSchemaServiceServer
	// noImport answers ImportBulkRelationships with UNIMPLEMENTED, as
	// SpiceDB before v1.35 does.
	noImport bool
	// lookupResults is how many results LookupResources has in all.
	lookupResults int

	mu       sync.Mutex
	auth     []string // authorization header of every call
	schema   string
	streams  [][]int // per import stream, the size of each message
	imported []*v1.Relationship
	writes   []*v1.WriteRelationshipsRequest
	checks   []*v1.CheckPermissionRequest
	lookups  []*v1.LookupResourcesRequest
}

func (r *fakeSpiceDB) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.auth = append(r.auth, md.Get("authorization")...)
}

func (r *fakeSpiceDB) WriteSchema(ctx context.Context, req *v1.WriteSchemaRequest) (*v1.WriteSchemaResponse, error) {
	r.record(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.schema = req.GetSchema()
	return &v1.WriteSchemaResponse{}, nil
}

func (r *fakeSpiceDB) ImportBulkRelationships(stream grpc.ClientStreamingServer[v1.ImportBulkRelationshipsRequest, v1.ImportBulkRelationshipsResponse]) error {
	r.record(stream.Context())
	if r.noImport {
		return status.Error(codes.Unimplemented, "unknown method ImportBulkRelationships")
	}
	var sizes []int
	var rels []*v1.Relationship
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err // abandoned: nothing is committed
		}
		sizes = append(sizes, len(msg.GetRelationships()))
		rels = append(rels, msg.GetRelationships()...)
	}
	r.mu.Lock()
	r.streams = append(r.streams, sizes)
	r.imported = append(r.imported, rels...)
	r.mu.Unlock()
	return stream.SendAndClose(&v1.ImportBulkRelationshipsResponse{NumLoaded: uint64(len(rels))})
}

func (r *fakeSpiceDB) WriteRelationships(ctx context.Context, req *v1.WriteRelationshipsRequest) (*v1.WriteRelationshipsResponse, error) {
	r.record(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, req)
	return &v1.WriteRelationshipsResponse{WrittenAt: &v1.ZedToken{Token: "w"}}, nil
}

func (r *fakeSpiceDB) CheckPermission(ctx context.Context, req *v1.CheckPermissionRequest) (*v1.CheckPermissionResponse, error) {
	r.record(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, req)
	p := v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
	if req.GetSubject().GetObject().GetObjectId() == "yes" {
		p = v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	}
	return &v1.CheckPermissionResponse{Permissionship: p}, nil
}

// LookupResources answers doc:0 .. doc:N-1 in pages of the request's
// limit, the cursor being the index of the next result.
func (r *fakeSpiceDB) LookupResources(req *v1.LookupResourcesRequest, stream grpc.ServerStreamingServer[v1.LookupResourcesResponse]) error {
	r.record(stream.Context())
	r.mu.Lock()
	r.lookups = append(r.lookups, req)
	r.mu.Unlock()
	from := 0
	if c := req.GetOptionalCursor(); c != nil {
		var err error
		if from, err = strconv.Atoi(c.GetToken()); err != nil {
			return status.Error(codes.InvalidArgument, "bad cursor")
		}
	}
	end := r.lookupResults
	if l := int(req.GetOptionalLimit()); l > 0 {
		end = min(end, from+l)
	}
	for i := from; i < end; i++ {
		if err := stream.Send(&v1.LookupResourcesResponse{
			ResourceObjectId:  strconv.Itoa(i),
			Permissionship:    v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION,
			AfterResultCursor: &v1.Cursor{Token: strconv.Itoa(i + 1)},
		}); err != nil {
			return err
		}
	}
	return nil
}

// serveFakeSpiceDB serves r on loopback and returns its address.
func serveFakeSpiceDB(t *testing.T, r *fakeSpiceDB) string {
	t.Helper()
	srv := grpc.NewServer()
	v1.RegisterPermissionsServiceServer(srv, r)
	v1.RegisterSchemaServiceServer(srv, r)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// numbered yields n relationships doc:I#viewer@user:I.
func numbered(n int) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for i := range n {
			id := strconv.Itoa(i)
			if !yield(tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: id}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: id}}, nil) {
				return
			}
		}
	}
}

// ids returns the resource IDs of rels, in order.
func ids(rels []*v1.Relationship) []string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = r.GetResource().GetObjectId()
	}
	return out
}

func wantIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

// TestSpiceDBLoad loads through ImportBulkRelationships and, on a server
// without it, through WriteRelationships: every relationship arrives
// exactly once, in batches SpiceDB's default limits accept.
func TestSpiceDBLoad(t *testing.T) {
	tests := []struct {
		name        string
		n           int
		noImport    bool
		wantStreams [][]int // import streams, message sizes
		wantWrites  []int   // WriteRelationships calls, update counts
	}{
		{"import", 2500, false, [][]int{{1000}, {1000, 500}}, nil},
		{"import, one batch", 1000, false, [][]int{{1000}}, nil},
		{"import, less than a batch", 3, false, [][]int{{3}}, nil},
		{"nothing to import", 0, false, nil, nil},
		{"no ImportBulkRelationships", 2500, true, nil, []int{1000, 1000, 500}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeSpiceDB{noImport: tc.noImport}
			tg, err := NewSpiceDB(GRPCOptions{Addr: serveFakeSpiceDB(t, r), Key: "k3y"})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			n, err := tg.Load(t.Context(), "definition user {}", numbered(tc.n))
			if err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if n != tc.n || r.schema != "definition user {}" {
				t.Errorf("loaded %d, schema %q; want %d", n, r.schema, tc.n)
			}
			if !slices.EqualFunc(r.streams, tc.wantStreams, slices.Equal) {
				t.Errorf("import streams %v, want %v", r.streams, tc.wantStreams)
			}
			var writes []int
			got := r.imported
			for _, w := range r.writes {
				writes = append(writes, len(w.GetUpdates()))
				for _, u := range w.GetUpdates() {
					if u.GetOperation() != v1.RelationshipUpdate_OPERATION_TOUCH {
						t.Fatalf("import wrote with %v, want TOUCH", u.GetOperation())
					}
					got = append(got, u.GetRelationship())
				}
			}
			if !slices.Equal(writes, tc.wantWrites) {
				t.Errorf("writes %v, want %v", writes, tc.wantWrites)
			}
			if !slices.Equal(ids(got), wantIDs(tc.n)) {
				t.Errorf("server received %d relationships, not each of the %d once, in order", len(got), tc.n)
			}
			if len(r.auth) == 0 {
				t.Error("no authorization header sent")
			}
			for _, a := range r.auth {
				if a != "Bearer k3y" {
					t.Errorf("authorization %q, want Bearer k3y", a)
				}
			}
		})
	}
}

// TestSpiceDBLoadSourceError: a failing source abandons the import stream,
// so the server commits none of it, and the error is returned.
func TestSpiceDBLoadSourceError(t *testing.T) {
	r := &fakeSpiceDB{}
	tg, err := NewSpiceDB(GRPCOptions{Addr: serveFakeSpiceDB(t, r)})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	boom := errors.New("boom")
	src := func(yield func(tuple.Relationship, error) bool) {
		for r, err := range numbered(2500) {
			if r.Resource.ID == "2100" {
				yield(tuple.Relationship{}, boom)
				return
			}
			if !yield(r, err) {
				return
			}
		}
	}
	if _, err := tg.Load(t.Context(), "definition user {}", src); !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The first stream (one batch) committed; the second was abandoned:
	// its handler sees a cancellation, never the end of the stream.
	if len(r.streams) != 1 || len(r.imported) != 1000 {
		t.Errorf("committed streams %v (%d relationships), want only the first batch", r.streams, len(r.imported))
	}
}

// TestSpiceDBDo sends each operation and checks what went on the wire.
func TestSpiceDBDo(t *testing.T) {
	for _, c := range []Consistency{MinimizeLatency, FullyConsistent} {
		t.Run(c.String(), func(t *testing.T) {
			r := &fakeSpiceDB{lookupResults: 2*spicedbLookupPage + 7}
			tg, err := NewSpiceDB(GRPCOptions{Addr: serveFakeSpiceDB(t, r), Consistency: c, Conns: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			ctx := t.Context()
			for _, tc := range []struct {
				subject string
				allowed bool
			}{{"yes", true}, {"no", false}} {
				out, err := tg.Do(ctx, &workload.Request{
					Op: workload.OpCheck, Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view",
					Subject: tuple.SubjectRef{Type: "user", ID: tc.subject}, Context: map[string]any{"ip": "10.0.0.1"},
				})
				if err != nil || out.Allowed != tc.allowed {
					t.Errorf("check %s: %+v, %v; want allowed %v", tc.subject, out, err, tc.allowed)
				}
			}
			out, err := tg.Do(ctx, &workload.Request{
				Op: workload.OpLookupResources, ResourceType: "doc", Permission: "view",
				Subject: tuple.SubjectRef{Type: "group", ID: "g", Relation: "member"},
			})
			if err != nil || out.Results != r.lookupResults {
				t.Errorf("lookup: %+v, %v; want %d results", out, err, r.lookupResults)
			}
			rel := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "u"}}
			if _, err := tg.Do(ctx, &workload.Request{Op: workload.OpWrite, Updates: []workload.Update{
				{Relationship: rel}, {Delete: true, Relationship: rel},
			}}); err != nil {
				t.Fatal(err)
			}

			want := spicedbConsistency(c)
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, ch := range r.checks {
				if !proto.Equal(ch.GetConsistency(), want) || ch.GetContext().GetFields()["ip"].GetStringValue() != "10.0.0.1" {
					t.Errorf("check sent %v", ch)
				}
			}
			// Three pages; each after the first resumes at the cursor of
			// the last result before it.
			var cursors []string
			for _, l := range r.lookups {
				if !proto.Equal(l.GetConsistency(), want) || l.GetOptionalLimit() != spicedbLookupPage ||
					l.GetSubject().GetOptionalRelation() != "member" {
					t.Errorf("lookup sent %v", l)
				}
				cursors = append(cursors, l.GetOptionalCursor().GetToken())
			}
			if want := []string{"", "1000", "2000"}; !slices.Equal(cursors, want) {
				t.Errorf("lookup cursors %q, want %q", cursors, want)
			}
			if len(r.writes) != 1 {
				t.Fatalf("%d writes, want 1", len(r.writes))
			}
			var ops []v1.RelationshipUpdate_Operation
			for _, u := range r.writes[0].GetUpdates() {
				ops = append(ops, u.GetOperation())
			}
			if want := []v1.RelationshipUpdate_Operation{v1.RelationshipUpdate_OPERATION_TOUCH, v1.RelationshipUpdate_OPERATION_DELETE}; !slices.Equal(ops, want) {
				t.Errorf("write operations %v, want %v", ops, want)
			}
			if len(r.auth) != 0 {
				t.Errorf("authorization %q sent without a key", r.auth)
			}
		})
	}
}

func TestSpiceDBRelationship(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ctx, _ := structpb.NewStruct(map[string]any{"n": 1})
	tests := []struct {
		rel  string
		mod  func(*tuple.Relationship)
		want *v1.Relationship
	}{
		{"doc:1#viewer@user:tom", nil, &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Relation: "viewer",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "tom"}},
		}},
		{"doc:1#viewer@group:eng#member", nil, &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Relation: "viewer",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "group", ObjectId: "eng"}, OptionalRelation: "member"},
		}},
		{"doc:1#viewer@user:*", func(r *tuple.Relationship) {
			r.Caveat = &tuple.Caveat{Name: "small", Context: map[string]any{"n": 1}}
			r.Expiration = exp
		}, &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Relation: "viewer",
			Subject:           &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "*"}},
			OptionalCaveat:    &v1.ContextualizedCaveat{CaveatName: "small", Context: ctx},
			OptionalExpiresAt: timestamppb.New(exp),
		}},
	}
	for _, tc := range tests {
		r, err := tuple.Parse(tc.rel)
		if err != nil {
			t.Fatal(err)
		}
		if tc.mod != nil {
			tc.mod(&r)
		}
		got, err := spicedbRelationship(r)
		if err != nil || !proto.Equal(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.rel, got, err, tc.want)
		}
	}
	// An explicit "..." subject relation is the empty one on the wire.
	if s := spicedbSubject(tuple.SubjectRef{Type: "user", ID: "u", Relation: tuple.Ellipsis}); s.GetOptionalRelation() != "" {
		t.Errorf("ellipsis sent as %q", s.GetOptionalRelation())
	}
	bad := tuple.Relationship{Caveat: &tuple.Caveat{Name: "c", Context: map[string]any{"f": func() {}}}}
	if _, err := spicedbRelationship(bad); !errors.Is(err, ErrUsage) {
		t.Errorf("unrepresentable context: %v, want %v", err, ErrUsage)
	}
}

// TestSpiceDBUsage: bad options fail before anything is sent.
func TestSpiceDBUsage(t *testing.T) {
	ctx := context.Background()
	for _, o := range []Options{
		{Mode: "grpc", API: "zanzibar", Addr: "127.0.0.1:1"},
		{Mode: "inprocess", API: "spicedb"},
		{Mode: "grpc", API: "spicedb"},
	} {
		o.Workload, o.Scale, o.Seed = "enterprise", workload.Small, 1
		if _, err := Execute(ctx, o); !errors.Is(err, ErrUsage) {
			t.Errorf("mode %s, api %s, addr %q: error %v, want %v", o.Mode, o.API, o.Addr, err, ErrUsage)
		}
	}
}
