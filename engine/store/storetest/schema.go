package storetest

import (
	"context"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
)

func (s *suite) testSchema(t *testing.T) {
	ctx := context.Background()
	st, _ := s.open(t, Config{})
	rel := MustParse(t, "doc:1#viewer@user:1")
	const first, second = "definition user {}\n", "definition user {}\n\ndefinition doc {\n\trelation viewer: user\n}\n"
	writeSchema := func(text string) store.Revision {
		return MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error { return tx.WriteSchema(ctx, text) })
	}
	type want struct {
		text    string
		written store.Revision
	}
	wants := []want{{"", 0}} // by revision
	MustTouch(t, st, rel...)
	wants = append(wants, want{"", 0})
	rev := writeSchema(first)
	wants = append(wants, want{first, rev})
	MustTouch(t, st, rel...)
	wants = append(wants, wants[len(wants)-1])
	rev = writeSchema(second)
	wants = append(wants, want{second, rev})
	// The last WriteSchema in a transaction wins, and writes can come with it.
	rev = MustUpdate(t, st, func(ctx context.Context, tx store.Tx) error {
		if err := tx.WriteSchema(ctx, "discarded"); err != nil {
			return err
		}
		if err := tx.Touch(ctx, rel[0]); err != nil {
			return err
		}
		return tx.WriteSchema(ctx, first)
	})
	wants = append(wants, want{first, rev})
	// An empty schema text is a schema too.
	rev = writeSchema("")
	wants = append(wants, want{"", rev})
	// A failed transaction writes no schema.
	if _, err := st.Update(ctx, store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
		if err := tx.WriteSchema(ctx, second); err != nil {
			return err
		}
		return errAbort
	}); err == nil {
		t.Fatal("Update returning an error succeeded")
	}
	MustTouch(t, st, rel...)
	wants = append(wants, wants[len(wants)-1])

	for i, w := range wants {
		text, written, err := MustSnapshot(t, st, store.Revision(i)).ReadSchema(ctx)
		if err != nil || text != w.text || written != w.written {
			t.Errorf("ReadSchema at %d = (%q, %d, %v), want (%q, %d, nil)", i, text, written, err, w.text, w.written)
		}
	}
}
