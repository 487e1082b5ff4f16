package engine_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

func TestWriteValidation(t *testing.T) {
	tests := []struct {
		name string
		rel  string
		op   store.Op
		want error  // nil: the write succeeds
		msg  string // a substring the error must contain
	}{
		{name: "plain user", rel: "document:1#viewer@user:anne"},
		{name: "wildcard", rel: "document:1#viewer@user:*"},
		{name: "subject set", rel: "document:1#viewer@group:eng#member"},
		{name: "nested group", rel: "group:eng#member@group:backend#member"},
		{name: "caveated", rel: `document:1#viewer@user:anne[ip_allowed:{"allowed":["10.0.0.1"]}]`},
		{name: "caveat without context", rel: "document:1#conditional@user:anne[ip_allowed]"},
		{name: "expiring", rel: "document:1#viewer@user:anne[expiration:2030-01-01T00:00:00Z]"},

		{name: "unknown resource type", rel: "folder:1#viewer@user:anne", want: engine.ErrUnknownDefinition, msg: `no definition "folder"`},
		{name: "unknown subject type", rel: "document:1#viewer@robot:r2", want: engine.ErrUnknownDefinition, msg: `"robot"`},
		{name: "unknown relation", rel: "document:1#owner@user:anne", want: engine.ErrUnknownRelation, msg: `no relation "owner"`},
		{name: "write to a permission", rel: "document:1#view@user:anne", want: engine.ErrWriteToPermission, msg: "document#view is a permission"},
		{name: "subject type not allowed", rel: "document:1#viewer@group:eng", want: engine.ErrSubjectNotAllowed, msg: "not group"},
		{name: "subject relation not allowed", rel: "document:1#viewer@group:eng#owner", want: engine.ErrSubjectNotAllowed, msg: "not group#owner"},
		{name: "wildcard not allowed", rel: "document:1#banned@user:*", want: engine.ErrSubjectNotAllowed, msg: "not user:*"},
		{name: "userset of user not allowed", rel: "group:eng#member@user:anne#member", want: engine.ErrSubjectNotAllowed},
		{name: "caveat required", rel: "document:1#conditional@user:anne", want: engine.ErrCaveatRequired, msg: "only with a caveat"},
		{name: "unknown caveat", rel: "document:1#viewer@user:anne[nope]", want: engine.ErrUnknownCaveat, msg: `no caveat "nope"`},
		{name: "caveat not allowed here", rel: "document:1#banned@user:anne[ip_allowed]", want: engine.ErrCaveatNotAllowed, msg: `not with caveat "ip_allowed"`},
		{name: "other caveat", rel: "document:1#viewer@user:anne[over]", want: engine.ErrCaveatNotAllowed},
		{name: "expiration not allowed", rel: "document:1#banned@user:anne[expiration:2030-01-01T00:00:00Z]", want: engine.ErrExpirationNotAllowed, msg: "with expiration"},
		{name: "expiration not allowed with caveat", rel: `document:1#viewer@user:anne[ip_allowed][expiration:2030-01-01T00:00:00Z]`, want: engine.ErrExpirationNotAllowed},
		{name: "context wrong type", rel: `document:1#viewer@user:anne[ip_allowed:{"ip":42}]`, want: engine.ErrCaveatContext, msg: `"ip"`},
		{name: "context wrong list element", rel: `document:1#viewer@user:anne[ip_allowed:{"allowed":[1]}]`, want: engine.ErrCaveatContext},
		{name: "context unknown parameter", rel: `document:1#viewer@user:anne[ip_allowed:{"port":1}]`, want: engine.ErrCaveatContext, msg: `no parameter "port"`},
		{name: "partial context", rel: `document:1#viewer@user:anne[ip_allowed:{"ip":"10.0.0.1"}]`},
		// Deletes need only a well-formed key, so orphaned relationships stay deletable.
		{name: "delete needs no schema match", rel: "document:1#view@robot:r2", op: store.OpDelete},
	}
	f := newFixture(t, engine.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := tt.op
			if op == 0 {
				op = store.OpTouch
			}
			_, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Updates: []engine.Update{
				{Op: store.OpTouch, Relationship: mustParse(t, "document:9#viewer@user:ok")},
				{Op: op, Relationship: mustParse(t, tt.rel)},
			}})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("write %s: %v", tt.rel, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, engine.ErrInvalidRelationship) {
				t.Fatalf("write %s: got %v, want %v", tt.rel, err, tt.want)
			}
			var re *engine.RelationshipError
			if !errors.As(err, &re) || re.Index != 1 {
				t.Errorf("error %v does not name update 1", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
	// ValidateRelationship, for clients that check their input first,
	// refuses exactly what a write refuses, for the same reason.
	s, err := schema.Compile("test.zed", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if tt.op == store.OpDelete {
			continue
		}
		err := engine.ValidateRelationship(s, mustParse(t, tt.rel))
		var re *engine.RelationshipError
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("ValidateRelationship(%s) = %v, want nil", tt.rel, err)
		case tt.want != nil && (!errors.Is(err, tt.want) || !errors.As(err, &re) || re.Index != -1 || !strings.Contains(err.Error(), tt.msg)):
			t.Errorf("ValidateRelationship(%s) = %v, want %v without an index", tt.rel, err, tt.want)
		}
	}
}

func TestWriteRequestErrors(t *testing.T) {
	f := newFixture(t, engine.Options{Limits: engine.Limits{MaxUpdatesPerWrite: 3, MaxPreconditions: 1, MaxContextBytes: 40}})
	f.touch("document:1#viewer@user:anne")
	up := func(op store.Op, s string) engine.Update { return engine.Update{Op: op, Relationship: mustParse(t, s)} }
	docFilter := func(id string) tuple.Filter { return tuple.Filter{ResourceType: "document", ResourceID: id} }
	tests := []struct {
		name string
		req  engine.WriteRequest
		want error
	}{
		{"empty", engine.WriteRequest{}, engine.ErrInvalidRequest},
		{"duplicate key", engine.WriteRequest{Updates: []engine.Update{
			up(store.OpTouch, "document:2#viewer@user:bob"),
			up(store.OpDelete, "document:2#viewer@user:bob"),
		}}, engine.ErrDuplicateUpdate},
		{"duplicate key with different caveat", engine.WriteRequest{Updates: []engine.Update{
			up(store.OpTouch, "document:2#viewer@user:bob"),
			up(store.OpTouch, "document:2#viewer@user:bob[ip_allowed]"),
		}}, engine.ErrDuplicateUpdate},
		{"too many updates", engine.WriteRequest{Updates: []engine.Update{
			up(store.OpTouch, "document:2#viewer@user:a"), up(store.OpTouch, "document:2#viewer@user:b"),
			up(store.OpTouch, "document:2#viewer@user:c"), up(store.OpTouch, "document:2#viewer@user:d"),
		}}, engine.ErrLimitExceeded},
		{"too many preconditions", engine.WriteRequest{
			Updates:       []engine.Update{up(store.OpTouch, "document:2#viewer@user:a")},
			Preconditions: []engine.Precondition{{Filter: docFilter("1")}, {Filter: docFilter("2")}},
		}, engine.ErrLimitExceeded},
		{"context too large", engine.WriteRequest{Updates: []engine.Update{
			up(store.OpTouch, `document:2#viewer@user:a[ip_allowed:{"allowed":["10.0.0.1","10.0.0.2","10.0.0.3"]}]`),
		}}, engine.ErrLimitExceeded},
		{"precondition must not exist", engine.WriteRequest{
			Updates:       []engine.Update{up(store.OpTouch, "document:2#viewer@user:a")},
			Preconditions: []engine.Precondition{{Filter: docFilter("1")}},
		}, engine.ErrPreconditionFailed},
		{"precondition must exist", engine.WriteRequest{
			Updates:       []engine.Update{up(store.OpTouch, "document:2#viewer@user:a")},
			Preconditions: []engine.Precondition{{Filter: docFilter("3"), MustExist: true}},
		}, engine.ErrPreconditionFailed},
		{"precondition without a resource type", engine.WriteRequest{
			Updates:       []engine.Update{up(store.OpTouch, "document:2#viewer@user:a")},
			Preconditions: []engine.Precondition{{Filter: tuple.Filter{ResourceID: "1"}}},
		}, engine.ErrInvalidRequest},
		{"create existing", engine.WriteRequest{Updates: []engine.Update{up(store.OpCreate, "document:1#viewer@user:anne")}}, store.ErrAlreadyExists},
		{"unknown op", engine.WriteRequest{Updates: []engine.Update{{Op: 77, Relationship: mustParse(t, "document:2#viewer@user:a")}}}, engine.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := f.st.HeadRevision(f.ctx)
			_, err := f.eng.WriteRelationships(f.ctx, tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if after, _ := f.st.HeadRevision(f.ctx); after != before {
				t.Errorf("a failed write committed revision %d", after)
			}
			// An error about one update names it, a context over the
			// limit included (clients place it in their input).
			var re *engine.RelationshipError
			if tt.name == "context too large" && (!errors.As(err, &re) || re.Index != 0) {
				t.Errorf("%v does not name update 0", err)
			}
		})
	}

	// Preconditions that hold let the write through, atomically.
	z, err := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{
		Updates:       []engine.Update{up(store.OpCreate, "document:2#viewer@user:a")},
		Preconditions: []engine.Precondition{{Filter: docFilter("1"), MustExist: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := f.check(engine.AtLeastAsFresh(z), "document:2#view@user:a"); got != eval.HasPermission {
		t.Errorf("after the conditional write: %v", got)
	}
}

func TestNoSchemaYet(t *testing.T) {
	st := memstore.New(memstore.Options{})
	defer st.Close()
	eng, err := engine.Open(t.Context(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = eng.WriteRelationships(t.Context(), engine.WriteRequest{Updates: []engine.Update{
		{Op: store.OpTouch, Relationship: mustParse(t, "document:1#viewer@user:anne")},
	}})
	if !errors.Is(err, engine.ErrNoSchema) {
		t.Errorf("write before a schema: %v", err)
	}
	if _, err := eng.ReadSchema(t.Context(), engine.FullyConsistent()); !errors.Is(err, engine.ErrNoSchema) {
		t.Errorf("read schema before one is written: %v", err)
	}
	r := mustParse(t, annView)
	if _, err := eng.Check(t.Context(), engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}}); !errors.Is(err, engine.ErrNoSchema) {
		t.Errorf("check before a schema: %v", err)
	}
	if _, _, err := eng.WriteSchema(t.Context(), "t", "definition user {"); !errors.Is(err, engine.ErrInvalidSchema) {
		t.Errorf("bad schema: %v", err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.WriteSchema(t.Context(), "t", testSchema); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	if _, err := st.HeadRevision(t.Context()); err != nil {
		t.Errorf("Close closed the store: %v", err)
	}
}

func TestDeleteRelationships(t *testing.T) {
	f := newFixture(t, engine.Options{})
	f.touch("document:1#viewer@user:a", "document:1#viewer@user:b", "document:1#viewer@user:c", "document:2#viewer@user:a")
	if _, err := f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{Filter: tuple.Filter{ResourceID: "1"}}); !errors.Is(err, engine.ErrInvalidRequest) {
		t.Errorf("delete without a resource type: %v", err)
	}
	if _, err := f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{Filter: tuple.Filter{ResourceType: "Bad Type"}}); !errors.Is(err, engine.ErrInvalidRequest) {
		t.Errorf("delete with a malformed type: %v", err)
	}
	doc1 := tuple.Filter{ResourceType: "document", ResourceID: "1"}
	// Three match: a limit of 2 is refused unless partial deletes are
	// allowed, and then the response says more remain.
	_, err := f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{Filter: doc1, Limit: 2})
	var dl *engine.DeleteLimitError
	if !errors.As(err, &dl) || dl.Limit != 2 || !errors.Is(err, engine.ErrPreconditionFailed) {
		t.Fatalf("delete of 2 where 3 match: %v, want a *DeleteLimitError matching ErrPreconditionFailed", err)
	}
	res, err := f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{Filter: doc1, Limit: 2, AllowPartial: true})
	if err != nil || res.Deleted != 2 || !res.Partial {
		t.Fatalf("partial delete: %+v, %v; want 2 deleted, partial", res, err)
	}
	// One is left: a limit of 1 deletes it, completely.
	if res, err := f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{Filter: doc1, Limit: 1}); err != nil || res.Deleted != 1 || res.Partial {
		t.Fatalf("delete of the last one: %+v, %v; want 1 deleted, not partial", res, err)
	}
	res, err = f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{
		Filter:        tuple.Filter{ResourceType: "document", Subject: &tuple.SubjectFilter{Type: "user", ID: "a"}},
		Preconditions: []engine.Precondition{{Filter: tuple.Filter{ResourceType: "document", ResourceID: "2"}, MustExist: true}},
	})
	if err != nil || res.Deleted != 1 || res.Partial {
		t.Fatalf("delete by subject: %+v, %v", res, err)
	}
	if got, _ := f.check(engine.AtLeastAsFresh(res.Zookie), "document:2#view@user:a"); got != eval.NoPermission {
		t.Errorf("after delete: %v", got)
	}
	_, err = f.eng.DeleteRelationships(f.ctx, engine.DeleteRequest{
		Filter:        tuple.Filter{ResourceType: "document"},
		Preconditions: []engine.Precondition{{Filter: tuple.Filter{ResourceType: "document", ResourceID: "2"}, MustExist: true}},
	})
	var pe *engine.PreconditionError
	if !errors.As(err, &pe) || pe.Index != 0 {
		t.Errorf("failed precondition: %v", err)
	}
}

func TestSchemaWritesAreLogged(t *testing.T) {
	var buf bytes.Buffer
	f := newFixture(t, engine.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	f.touch("document:1#banned@user:a")
	noBanned := strings.Replace(strings.Replace(testSchema, "relation banned: user\n", "", 1), "viewer - banned", "viewer", 1)
	if _, _, err := f.eng.WriteSchema(f.ctx, "alice", noBanned); err == nil {
		t.Fatal("unsafe schema accepted")
	}
	log := buf.String()
	for _, want := range []string{`msg="schema written" caller=test revision=1`, `msg="schema change refused" caller=alice uses=1`} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not contain %q:\n%s", want, log)
		}
	}
}

// TestStoreBatchLimit: a store opened with a lower per-transaction limit
// makes the engine reject a larger write up front, naming the limit, and
// nothing is written.
func TestStoreBatchLimit(t *testing.T) {
	st := memstore.New(memstore.Options{MaxBatchOps: 2})
	defer st.Close()
	eng, err := engine.Open(t.Context(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.WriteSchema(t.Context(), "t", testSchema); err != nil {
		t.Fatal(err)
	}
	head, _ := st.HeadRevision(t.Context())
	var updates []engine.Update
	for _, s := range []string{"document:1#viewer@user:a", "document:1#viewer@user:b", "document:1#viewer@user:c"} {
		updates = append(updates, engine.Update{Op: store.OpTouch, Relationship: mustParse(t, s)})
	}
	if _, err := eng.WriteRelationships(t.Context(), engine.WriteRequest{Updates: updates}); !errors.Is(err, engine.ErrLimitExceeded) {
		t.Fatalf("3 updates against a limit of 2: %v, want ErrLimitExceeded", err)
	}
	if after, _ := st.HeadRevision(t.Context()); after != head {
		t.Errorf("head moved from %d to %d: the rejected write committed", head, after)
	}
	if _, err := eng.WriteRelationships(t.Context(), engine.WriteRequest{Updates: updates[:2]}); err != nil {
		t.Errorf("2 updates within the limit: %v", err)
	}
}

// TestIdenticalSchemaWriteIsNoOp: writing the schema text already stored
// commits nothing (the head's zookie, no changes); the same schema with
// one more comment is a new revision with no changes.
func TestIdenticalSchemaWriteIsNoOp(t *testing.T) {
	f := newFixture(t, engine.Options{})
	z1 := f.touch("document:1#viewer@user:anne")
	z2, changes, err := f.eng.WriteSchema(f.ctx, "test", testSchema)
	if err != nil || len(changes) != 0 || revisionOf(t, f, z2) != revisionOf(t, f, z1) {
		t.Fatalf("identical schema: zookie at %d (head %d), changes %v, err %v", revisionOf(t, f, z2), revisionOf(t, f, z1), changes, err)
	}
	z3, changes, err := f.eng.WriteSchema(f.ctx, "test", testSchema+"// a comment\n")
	if err != nil || len(changes) != 0 || revisionOf(t, f, z3) != revisionOf(t, f, z1)+1 {
		t.Fatalf("schema with a new comment: zookie at %d (head was %d), changes %v, err %v", revisionOf(t, f, z3), revisionOf(t, f, z1), changes, err)
	}
}
