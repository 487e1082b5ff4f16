package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// pageFunc makes one call of a streaming read with a limit (0: none) and a
// cursor (nil: from the start) and returns the results' keys and the
// cursor to continue from (nil when the call returned nothing to resume
// after).
type pageFunc func(t *testing.T, limit uint32, cursor *pb.Cursor) ([]string, *pb.Cursor, error)

func lookupResourcesPage(f *fixture) pageFunc {
	return func(t *testing.T, limit uint32, cursor *pb.Cursor) ([]string, *pb.Cursor, error) {
		s, err := f.perms.LookupResources(context.Background(), &pb.LookupResourcesRequest{
			Consistency: full(), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "anne", ""),
			OptionalLimit: limit, OptionalCursor: cursor,
		})
		if err != nil {
			return nil, nil, err
		}
		msgs, err := collect(t, s.Recv)
		var ids []string
		for _, m := range msgs {
			ids, cursor = append(ids, m.GetResourceObjectId()), m.GetAfterResultCursor()
		}
		return ids, cursor, err
	}
}

func lookupSubjectsPage(f *fixture) pageFunc {
	return func(t *testing.T, limit uint32, cursor *pb.Cursor) ([]string, *pb.Cursor, error) {
		s, err := f.perms.LookupSubjects(context.Background(), &pb.LookupSubjectsRequest{
			Consistency: full(), Resource: obj("doc", "shared"), Permission: "view", SubjectObjectType: "user",
			OptionalLimit: limit, OptionalCursor: cursor,
		})
		if err != nil {
			return nil, nil, err
		}
		msgs, err := collect(t, s.Recv)
		var ids []string
		for _, m := range msgs {
			ids, cursor = append(ids, m.GetSubject().GetSubjectObjectId()), m.GetAfterResultCursor()
		}
		return ids, cursor, err
	}
}

func readPage(f *fixture) pageFunc {
	return func(t *testing.T, limit uint32, cursor *pb.Cursor) ([]string, *pb.Cursor, error) {
		req := &pb.ReadRelationshipsRequest{
			RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}, OptionalLimit: limit, OptionalCursor: cursor,
		}
		if cursor == nil {
			req.Consistency = full()
		}
		s, err := f.perms.ReadRelationships(context.Background(), req)
		if err != nil {
			return nil, nil, err
		}
		msgs, err := collect(t, s.Recv)
		var keys []string
		for _, m := range msgs {
			r := m.GetRelationship()
			keys = append(keys, r.GetResource().GetObjectId()+"@"+r.GetSubject().GetObject().GetObjectId())
			cursor = m.GetAfterResultCursor()
		}
		return keys, cursor, err
	}
}

// exportAll runs one ExportRelationships call with a batch size and
// returns every relationship's key and the size of each batch.
func exportAll(t *testing.T, f *fixture, batch uint32) ([]string, []int, error) {
	s, err := f.perms.ExportRelationships(context.Background(), &pb.ExportRelationshipsRequest{Consistency: full(), OptionalBatchSize: batch})
	if err != nil {
		return nil, nil, err
	}
	msgs, err := collect(t, s.Recv)
	var (
		keys  []string
		sizes []int
	)
	for _, m := range msgs {
		sizes = append(sizes, len(m.GetRelationships()))
		for _, r := range m.GetRelationships() {
			keys = append(keys, r.GetResource().GetObjectId()+"@"+r.GetSubject().GetObject().GetObjectId())
		}
	}
	return keys, sizes, err
}

// pageThrough calls page with limit until a call returns fewer results
// than the limit, resuming each from the last cursor, and fails the test
// when a call returns more than the limit.
func pageThrough(t *testing.T, page pageFunc, limit uint32) []string {
	t.Helper()
	var (
		all    []string
		cursor *pb.Cursor
	)
	for calls := 0; ; calls++ {
		if calls > 1000 {
			t.Fatal("paging does not end")
		}
		got, next, err := page(t, limit, cursor)
		if err != nil {
			t.Fatalf("page %d (limit %d): %v", calls, limit, err)
		}
		if len(got) > int(limit) {
			t.Fatalf("page %d: %d results, limit %d", calls, len(got), limit)
		}
		all = append(all, got...)
		if len(got) < int(limit) {
			return all
		}
		cursor = next
	}
}

// limitsFixture is a server whose engine has small caps, with n documents
// that user:anne views (doc:dNN) and n users who view doc:shared.
func limitsFixture(t *testing.T, lim engine.Limits, n int) (*fixture, []string, []string, []string) {
	f := newFixtureEngine(t, memstore.New(memstore.Options{}), engine.Options{Limits: lim}, Config{})
	f.writeSchema()
	var docs, users, rels []string
	for i := range n {
		docs = append(docs, fmt.Sprintf("d%02d", i))
		users = append(users, fmt.Sprintf("u%02d", i))
	}
	var all []string
	for _, d := range docs {
		all = append(all, "doc:"+d+"#viewer@user:anne")
		rels = append(rels, d+"@anne")
	}
	for _, u := range users {
		all = append(all, "doc:shared#viewer@user:"+u)
		rels = append(rels, "shared@"+u)
	}
	for i := 0; i < len(all); i += lim.MaxUpdatesPerWrite {
		f.write(all[i:min(i+lim.MaxUpdatesPerWrite, len(all))]...)
	}
	slices.Sort(rels)
	return f, docs, users, rels
}

// Every streaming read returns every result when the caller gives no
// limit, however small the server's internal caps; paging with any caller
// limit returns each result exactly once; a caller limit above a cap
// fails with RESOURCE_EXHAUSTED naming the cap, never a shorter answer.
func TestStreamsAreNeverCutSilently(t *testing.T) {
	const n = 11
	lim := engine.Limits{MaxLookupLimit: 3, MaxReadPageSize: 4, MaxUpdatesPerWrite: 100}
	f, docs, users, rels := limitsFixture(t, lim, n)
	calls := []struct {
		name string
		page pageFunc
		want []string
		max  int // the largest caller limit accepted (0: any)
	}{
		{"LookupResources", lookupResourcesPage(f), docs, lim.MaxLookupLimit},
		{"LookupSubjects", lookupSubjectsPage(f), users, 0},
		{"ReadRelationships", readPage(f), rels, 0},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := c.page(t, 0, nil)
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("without a limit: %v, %v; want all %d: %v", got, err, len(c.want), c.want)
			}
			top := c.max
			if top == 0 {
				top = len(c.want) + 1
			}
			for limit := 1; limit <= top; limit++ {
				if got := pageThrough(t, c.page, uint32(limit)); !slices.Equal(got, c.want) {
					t.Errorf("pages of %d: %v, want each of %v once", limit, got, c.want)
				}
			}
			if c.max > 0 {
				_, _, err := c.page(t, uint32(c.max+1), nil)
				wantCode(t, err, codes.ResourceExhausted, ReasonLimitExceeded)
				if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("limit of %d", c.max)) || !strings.Contains(msg, "cursor") {
					t.Errorf("error %q does not name the limit and how to page", msg)
				}
			}
		})
	}
	t.Run("ExportRelationships", func(t *testing.T) {
		all := rels
		for _, batch := range []uint32{0, 1, 3, 4} {
			got, sizes, err := exportAll(t, f, batch)
			if err != nil || !slices.Equal(got, all) {
				t.Fatalf("batch %d: %v, %v; want all %d", batch, got, err, len(all))
			}
			max := int(batch)
			if batch == 0 {
				max = lim.MaxReadPageSize
			}
			for _, s := range sizes {
				if s > max {
					t.Errorf("batch %d: a message of %d relationships", batch, s)
				}
			}
		}
		_, _, err := exportAll(t, f, uint32(lim.MaxReadPageSize+1))
		wantCode(t, err, codes.ResourceExhausted, ReasonLimitExceeded)
	})
}

// At the real default cap (10,000 lookup results): 10,005 matches come
// back whole without a limit, and paging with the largest allowed limit
// returns each exactly once.
func TestLookupResourcesPastTheDefaultCap(t *testing.T) {
	f := newFixture(t, Config{})
	f.writeSchema()
	n := engine.DefaultMaxLookupLimit + 5
	importDocs(t, f, n)
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("d%06d", i)
	}
	page := lookupResourcesPage(f)
	got, _, err := page(t, 0, nil)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("without a limit: %d results, %v; want %d", len(got), err, n)
	}
	if got := pageThrough(t, page, engine.DefaultMaxLookupLimit); !slices.Equal(got, want) {
		t.Errorf("paged: %d results, want each of %d once", len(got), n)
	}
}
