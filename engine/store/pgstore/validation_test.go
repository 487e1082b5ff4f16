package pgstore

import (
	"path/filepath"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/validation"
)

// TestValidationFiles runs the evaluator end to end on PostgreSQL: the
// showcase file and the semantics files of engine/validation (wildcards,
// cycles, caveats, expiration), each with its cross-checks, must pass as
// they do on the other backends.
func TestValidationFiles(t *testing.T) {
	serverURI(t)
	paths, err := filepath.Glob(filepath.Join("..", "..", "validation", "testdata", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no validation files: %v", err)
	}
	paths = append(paths, filepath.Join("..", "..", "..", "examples", "enterprise", "enterprise.yaml"))
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := validation.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := validation.Run(t.Context(), f, validation.Options{NewStore: func() (store.Store, error) {
				st, _ := openTest(t, Options{})
				return st, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			for _, fl := range res.Failures {
				t.Error(fl)
			}
			if res.Assertions == 0 {
				t.Error("no assertions ran")
			}
		})
	}
}
