package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/store"
)

// TestWatch: changes arrive in order, filtered by type, with the caller
// that made them; no sleeps, because the watch starts from a zookie taken
// before the writes.
func TestWatch(t *testing.T) {
	f := newFixture(t, Config{Keys: []Key{{Name: "hr-service", Secret: secretA}}})
	ctx, cancel := context.WithCancel(bearer(secretA))
	defer cancel()
	start, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: testSchema})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalObjectTypes: []string{"doc"}, OptionalStartCursor: start.GetWrittenAt()})
	if err != nil {
		t.Fatal(err)
	}
	withCheckpoints, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalObjectTypes: []string{"doc"}, OptionalStartCursor: start.GetWrittenAt(), OptionalIncludeCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	write := func(op pb.RelationshipUpdate_Operation, rels ...string) *pb.Zookie {
		t.Helper()
		req := &pb.WriteRelationshipsRequest{}
		for _, s := range rels {
			req.Updates = append(req.Updates, &pb.RelationshipUpdate{Operation: op, Relationship: mustRel(t, s)})
		}
		resp, err := f.perms.WriteRelationships(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetWrittenAt()
	}
	z0 := write(pb.RelationshipUpdate_OPERATION_TOUCH, "group:eng#member@user:anne") // filtered out
	z1 := write(pb.RelationshipUpdate_OPERATION_CREATE, "doc:1#viewer@user:anne", "group:eng#member@user:bob")
	z2 := write(pb.RelationshipUpdate_OPERATION_DELETE, "doc:1#viewer@user:anne")

	for _, want := range []struct {
		zk  *pb.Zookie
		ops []string
	}{
		{z1, []string{"OPERATION_CREATE doc:1#viewer@user:anne"}},
		{z2, []string{"OPERATION_DELETE doc:1#viewer@user:anne"}},
	} {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var ops []string
		for _, u := range msg.GetUpdates() {
			r, err := relationshipFromProto("r", u.GetRelationship())
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, fmt.Sprintf("%v %s", u.GetOperation(), r))
		}
		if !slices.Equal(ops, want.ops) {
			t.Errorf("updates = %q, want %q", ops, want.ops)
		}
		if msg.GetChangesThrough().GetToken() != want.zk.GetToken() {
			t.Errorf("changes_through = %v, want %v", msg.GetChangesThrough(), want.zk)
		}
		if msg.GetCaller() != "hr-service" {
			t.Errorf("caller = %q, want hr-service", msg.GetCaller())
		}
		if msg.GetCommittedAt().AsTime().IsZero() {
			t.Error("no commit time")
		}
	}

	// The checkpointing watch also reports the filtered transaction.
	for _, want := range []struct {
		zk      *pb.Zookie
		updates int
	}{{z0, 0}, {z1, 1}, {z2, 1}} {
		msg, err := withCheckpoints.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if msg.GetChangesThrough().GetToken() != want.zk.GetToken() || len(msg.GetUpdates()) != want.updates {
			t.Errorf("checkpointing watch: %v, want %d updates through %v", msg, want.updates, want.zk)
		}
	}
}

func TestImportExport(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	f.writeSchema()
	imp, err := f.perms.ImportRelationships(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	const n = 2500
	for start := 0; start < n; start += MaxImportBatch {
		msg := &pb.ImportRelationshipsRequest{}
		for i := start; i < min(n, start+MaxImportBatch); i++ {
			s := fmt.Sprintf("doc:d%05d#viewer@user:u%d", i, i%7)
			want = append(want, s)
			msg.Relationships = append(msg.Relationships, mustRel(t, s))
		}
		if err := imp.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	res, err := imp.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if res.GetNumLoaded() != n || res.GetWrittenAt().GetToken() == "" {
		t.Fatalf("import = %v", res)
	}

	export := func(req *pb.ExportRelationshipsRequest) ([]string, []*pb.ExportRelationshipsResponse) {
		t.Helper()
		s, err := f.perms.ExportRelationships(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		batches, err := collect(t, s.Recv)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, b := range batches {
			for _, r := range b.GetRelationships() {
				tr, err := relationshipFromProto("r", r)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, tr.String())
			}
		}
		return got, batches
	}
	got, batches := export(&pb.ExportRelationshipsRequest{Consistency: fresh(res.GetWrittenAt())})
	if !slices.Equal(got, want) {
		t.Fatalf("export differs: %d relationships, want %d", len(got), len(want))
	}
	if len(batches) != 3 || batches[2].GetAfterBatchCursor() != nil {
		t.Errorf("%d batches (last cursor %v), want 3 ending without a cursor", len(batches), batches[len(batches)-1].GetAfterBatchCursor())
	}
	// Resume after the first batch.
	rest, _ := export(&pb.ExportRelationshipsRequest{OptionalCursor: batches[0].GetAfterBatchCursor()})
	if !slices.Equal(rest, want[MaxExportBatch:]) {
		t.Errorf("resumed export: %d relationships, want %d", len(rest), n-MaxExportBatch)
	}
	// A filtered export with small batches.
	some, _ := export(&pb.ExportRelationshipsRequest{
		Consistency:                fresh(res.GetWrittenAt()),
		OptionalBatchSize:          10,
		OptionalRelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc", OptionalSubjectFilter: &pb.SubjectFilter{SubjectType: "user", OptionalSubjectId: "u3"}},
	})
	if len(some) != (n+3)/7 {
		t.Errorf("filtered export: %d relationships, want %d", len(some), (n+3)/7)
	}
	// An empty export still says at which revision it was taken.
	none, batches := export(&pb.ExportRelationshipsRequest{OptionalRelationshipFilter: &pb.RelationshipFilter{ResourceType: "group"}})
	if len(none) != 0 || len(batches) != 1 || batches[0].GetExportedAt().GetToken() == "" {
		t.Errorf("empty export = %v", batches)
	}
}

// TestReadRelationshipsCursors resumes reads from every kind of position:
// mid-page, at a page end, across the engine's 1000-relationship pages,
// and after relationships written later (the cursor pins the revision).
func TestReadRelationshipsCursors(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	f.writeSchema()
	imp, err := f.perms.ImportRelationships(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	const n = 2300
	for start := 0; start < n; start += MaxImportBatch {
		msg := &pb.ImportRelationshipsRequest{}
		for i := start; i < min(n, start+MaxImportBatch); i++ {
			s := fmt.Sprintf("doc:d%05d#viewer@user:u", i)
			want = append(want, s)
			msg.Relationships = append(msg.Relationships, mustRel(t, s))
		}
		if err := imp.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	res, err := imp.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	filter := &pb.RelationshipFilter{ResourceType: "doc"}
	read := func(limit uint32, cur *pb.Cursor, c *pb.Consistency) ([]string, *pb.Cursor) {
		t.Helper()
		s, err := f.perms.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: c, RelationshipFilter: filter, OptionalLimit: limit, OptionalCursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := collect(t, s.Recv)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return nil, nil
		}
		return relStrings(t, msgs), msgs[len(msgs)-1].GetAfterResultCursor()
	}
	for _, limits := range [][]uint32{
		{1, 1, 0},
		{999, 1, 1000, 0},
		{1000, 0},
		{1001, 1299, 0},
		{7, 993, 1000, 300, 1},
	} {
		t.Run(fmt.Sprint(limits), func(t *testing.T) {
			var got []string
			var cur *pb.Cursor
			for i, l := range limits {
				c := fresh(res.GetWrittenAt())
				if i == 1 {
					// Writes after the first call are not seen by the
					// resumed ones: d99999 would sort last.
					f.write(fmt.Sprintf("doc:d99999#viewer@user:x%d", len(limits)))
					c = full()
				}
				page, next := read(l, cur, c)
				got = append(got, page...)
				cur = next
				if cur == nil {
					break
				}
			}
			if len(got) != len(want) || !slices.Equal(got, want) {
				t.Errorf("read %d relationships, want %d", len(got), len(want))
			}
		})
	}
}

// TestWatchSplitsBigTransactions: an import of 2500 relationships at one
// revision arrives as 1000 + 1000 + 500 updates, the last part with the
// zookie.
func TestWatchSplitsBigTransactions(t *testing.T) {
	f := newFixture(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := f.writeSchema()
	stream, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalStartCursor: start})
	if err != nil {
		t.Fatal(err)
	}
	imp, err := f.perms.ImportRelationships(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2500
	for begin := 0; begin < n; begin += MaxImportBatch {
		msg := &pb.ImportRelationshipsRequest{}
		for i := begin; i < min(n, begin+MaxImportBatch); i++ {
			msg.Relationships = append(msg.Relationships, mustRel(t, fmt.Sprintf("doc:d%05d#viewer@user:u", i)))
		}
		if err := imp.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	res, err := imp.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	_, oneTransaction := f.st.(store.BulkLoader)
	total, parts := 0, 0
	for part := 0; ; part++ {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		total += len(msg.GetUpdates())
		parts++
		if len(msg.GetUpdates()) > MaxWatchUpdates {
			t.Errorf("part %d has %d updates", part, len(msg.GetUpdates()))
		}
		if msg.GetMoreInTransaction() {
			if msg.GetChangesThrough() != nil {
				t.Errorf("part %d carries changes_through before the end", part)
			}
			continue
		}
		// With a bulk loader the import is one transaction; without,
		// batches are transactions of their own.
		if total == n {
			if msg.GetChangesThrough().GetToken() != res.GetWrittenAt().GetToken() {
				t.Errorf("last part through %v, want %v", msg.GetChangesThrough(), res.GetWrittenAt())
			}
			if oneTransaction && parts != 3 {
				t.Errorf("one transaction of %d arrived in %d parts, want 3", n, parts)
			}
			return
		}
	}
}

// TestWatchUnknownType: a Watch filtered to a type the schema does not
// define is refused at once, naming the type, instead of waiting forever.
func TestWatchUnknownType(t *testing.T) {
	f := newFixture(t, Config{Keys: []Key{{Name: "hr-service", Secret: secretA}}})
	ctx := bearer(secretA)
	if _, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	stream, err := f.watch.Watch(ctx, &pb.WatchRequest{OptionalObjectTypes: []string{"doc", "nosuch"}})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `optional_object_types: unknown definition "nosuch"`) {
		t.Errorf("watch of an unknown type: %v, want InvalidArgument naming it", err)
	}
}
