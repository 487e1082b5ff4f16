package backend_test

import (
	"errors"
	"testing"

	"github.com/pemba-authz/pemba/engine/store/backend"
)

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, o := range []backend.Options{
		{Kind: "mysql"},
		{Kind: ""},
		{Kind: backend.Pebble},
		{Kind: backend.Postgres},
	} {
		st, err := backend.Open(t.Context(), o)
		if !errors.Is(err, backend.ErrUsage) {
			t.Errorf("Open(%+v) = %v, %v; want ErrUsage", o, st, err)
		}
	}
}

func TestOpenEachKind(t *testing.T) {
	for _, o := range []backend.Options{
		{Kind: backend.Memory},
		{Kind: backend.Pebble, Dir: t.TempDir()},
	} {
		st, err := backend.Open(t.Context(), o)
		if err != nil {
			t.Fatalf("Open(%+v): %v", o, err)
		}
		if st.Kind() != o.Kind {
			t.Errorf("Open(%+v) opened a %q store", o, st.Kind())
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
