package engine_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

const exampleSchema = `
definition user {}

definition document {
  relation viewer: user
  relation banned: user
  permission view = viewer - banned
}
`

// Write a schema and a relationship, then check at least as fresh as the
// write: the answer is guaranteed to see it.
func Example() {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close() // the engine does not own the store
	eng, err := engine.Open(ctx, st, engine.Options{})
	if err != nil {
		panic(err)
	}
	defer eng.Close()

	if _, _, err := eng.WriteSchema(ctx, "admin", exampleSchema); err != nil {
		panic(err)
	}
	rel, _ := tuple.Parse("document:readme#viewer@user:anne")
	z, err := eng.WriteRelationships(ctx, engine.WriteRequest{
		Caller:  "admin",
		Updates: []engine.Update{{Op: store.OpTouch, Relationship: rel}},
	})
	if err != nil {
		panic(err)
	}
	resp, err := eng.Check(ctx, engine.CheckRequest{
		Consistency: engine.AtLeastAsFresh(z),
		CheckRequest: engine.CheckQuery{
			Resource:   tuple.ObjectRef{Type: "document", ID: "readme"},
			Permission: "view",
			Subject:    tuple.SubjectRef{Type: "user", ID: "anne"},
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Permissionship == eval.HasPermission)
	// Output: true
}

// Writes are validated against the schema in force; errors say precisely
// what is wrong and match sentinels with errors.Is.
func ExampleEngine_WriteRelationships_validation() {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	eng, _ := engine.Open(ctx, st, engine.Options{})
	defer eng.Close()
	if _, _, err := eng.WriteSchema(ctx, "admin", exampleSchema); err != nil {
		panic(err)
	}

	rel, _ := tuple.Parse("document:readme#view@user:anne")
	_, err := eng.WriteRelationships(ctx, engine.WriteRequest{
		Updates: []engine.Update{{Op: store.OpTouch, Relationship: rel}},
	})
	fmt.Println(errors.Is(err, engine.ErrWriteToPermission))
	fmt.Println(err)
	// Output:
	// true
	// engine: update 0: relationship document:readme#view@user:anne: cannot write to a permission: document#view is a permission, computed from relations
}

// A schema change that would orphan stored relationships is refused and
// says how many use what it removes.
func ExampleEngine_WriteSchema_unsafe() {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	eng, _ := engine.Open(ctx, st, engine.Options{})
	defer eng.Close()
	if _, _, err := eng.WriteSchema(ctx, "admin", exampleSchema); err != nil {
		panic(err)
	}
	rel, _ := tuple.Parse("document:readme#banned@user:mallory")
	if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{
		Updates: []engine.Update{{Op: store.OpTouch, Relationship: rel}},
	}); err != nil {
		panic(err)
	}

	_, _, err := eng.WriteSchema(ctx, "admin", `
definition user {}
definition document {
  relation viewer: user
  permission view = viewer
}`)
	fmt.Println(err)
	// Output:
	// engine: schema change would orphan stored relationships: relation document#banned is removed but 1 relationships still use it (delete them first)
}

// ReadRelationships pages through a snapshot: the cursor keeps the
// revision of the first page.
func ExampleEngine_ReadRelationships() {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	eng, _ := engine.Open(ctx, st, engine.Options{})
	defer eng.Close()
	if _, _, err := eng.WriteSchema(ctx, "admin", exampleSchema); err != nil {
		panic(err)
	}
	var ups []engine.Update
	for _, s := range []string{"document:a#viewer@user:anne", "document:b#viewer@user:bob", "document:c#viewer@user:carl"} {
		r, _ := tuple.Parse(s)
		ups = append(ups, engine.Update{Op: store.OpTouch, Relationship: r})
	}
	if _, err := eng.WriteRelationships(ctx, engine.WriteRequest{Updates: ups}); err != nil {
		panic(err)
	}

	cursor := ""
	for {
		page, err := eng.ReadRelationships(ctx, engine.FullyConsistent(), tuple.Filter{ResourceType: "document"}, 2, cursor)
		if err != nil {
			panic(err)
		}
		fmt.Println(page.Relationships)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	// Output:
	// [document:a#viewer@user:anne document:b#viewer@user:bob]
	// [document:c#viewer@user:carl]
}
