package memstore_test

import (
	"context"
	"fmt"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Example writes two relationships and reads them back at the committed
// revision, forward by resource and in reverse by subject.
func Example() {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close()

	rev, err := st.Update(ctx, store.WriteMeta{Caller: "example"}, func(ctx context.Context, tx store.Tx) error {
		for _, s := range []string{"doc:readme#viewer@user:anne", "doc:readme#viewer@group:eng#member"} {
			r, err := tuple.Parse(s)
			if err != nil {
				return err
			}
			if err := tx.Touch(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := st.Snapshot(ctx, rev)
	if err != nil {
		fmt.Println(err)
		return
	}
	for rel, err := range r.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc", ResourceID: "readme"}, store.QueryOptions{}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(rev, rel)
	}
	anne := tuple.ReverseFilter{Subject: tuple.SubjectFilter{Type: "user", ID: "anne", Relation: tuple.Ellipsis}}
	for rel, err := range r.ReverseQueryRelationships(ctx, anne, store.QueryOptions{}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("anne:", rel)
	}
	// Output:
	// 1 doc:readme#viewer@group:eng#member
	// 1 doc:readme#viewer@user:anne
	// anne: doc:readme#viewer@user:anne
}
